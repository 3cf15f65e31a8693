"""A real ``redis-server`` (Debian's) on a free loopback port for the tests that need Redis.

Never skipped: without ``redis-server`` the test fails saying how to install it (``scripts/test``
and ``scripts/install-system-deps`` do), like ``tests/integration/tmpfs.py`` for tmpfs.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from actors.ffmpeg.process import die_with_this_thread
from tests.ports import free_port

REDIS_SERVER = "redis-server"


def redis_command(port: int, *words: str, tls_ca: Path | None = None) -> bytes:
    """Blocking: send one command (RESP array) and return the raw reply line(s)."""
    payload = f"*{len(words)}\r\n".encode() + b"".join(
        f"${len(w.encode())}\r\n".encode() + w.encode() + b"\r\n" for w in words
    )
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        sock = raw
        if tls_ca is not None:
            sock = ssl.create_default_context(cafile=str(tls_ca)).wrap_socket(
                raw, server_hostname="127.0.0.1"
            )
        sock.sendall(payload)
        return sock.recv(65536)


def self_signed_certificate(folder: Path) -> tuple[Path, Path]:
    """Blocking: a certificate for 127.0.0.1 and its key (openssl), for a TLS redis-server."""
    cert, key = folder / "redis-cert.pem", folder / "redis-key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return cert, key


@contextlib.contextmanager
def running_redis(folder: Path, *, tls: bool = False, port: int | None = None) -> Iterator[int]:
    """Start ``redis-server`` on a free loopback port (or ``port``), no periodic snapshots (a
    ``SHUTDOWN SAVE`` leaves ``folder/dump.rdb``, which a server started on ``folder`` loads);
    yields the port.

    ``tls``: TLS only, with a self-signed certificate left in ``folder/redis-cert.pem`` (the CA a
    client must trust)."""
    binary = shutil.which(REDIS_SERVER)
    if binary is None:
        pytest.fail(
            "redis-server is not installed: run scripts/install-system-deps (or "
            "apt-get install redis-server); the registry and cluster tests need a real Redis",
            pytrace=False,
        )
    folder.mkdir(parents=True, exist_ok=True)
    port = port if port is not None else free_port()
    listen = ["--port", str(port)]
    tls_ca = None
    if tls:
        cert, key = self_signed_certificate(folder)
        tls_ca = cert
        listen = ["--port", "0", "--tls-port", str(port), "--tls-cert-file", str(cert),
                  "--tls-key-file", str(key), "--tls-ca-cert-file", str(cert),
                  "--tls-auth-clients", "no"]  # fmt: skip
    log = (folder / "redis.log").open("wb")
    process = subprocess.Popen(
        [
            binary,
            *listen,
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--dir", str(folder),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        preexec_fn=die_with_this_thread(),  # noqa: PLW1509 - prctl only
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                if redis_command(port, "PING", tls_ca=tls_ca).startswith(b"+PONG"):
                    break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(
                    "redis-server did not start: " + (folder / "redis.log").read_text(),
                    pytrace=False,
                )
            time.sleep(0.05)
        yield port
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
