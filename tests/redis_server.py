"""A real ``redis-server`` (Debian's) on a free loopback port for the tests that need Redis.

Never skipped: without ``redis-server`` the test fails saying how to install it (``scripts/test``
and ``scripts/install-system-deps`` do), like ``tests/integration/tmpfs.py`` for tmpfs.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

REDIS_SERVER = "redis-server"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def redis_command(port: int, *words: str) -> bytes:
    """Blocking: send one command (RESP array) and return the raw reply line(s)."""
    payload = f"*{len(words)}\r\n".encode() + b"".join(
        f"${len(w.encode())}\r\n".encode() + w.encode() + b"\r\n" for w in words
    )
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(payload)
        return sock.recv(65536)


@contextlib.contextmanager
def running_redis(folder: Path) -> Iterator[int]:
    """Start ``redis-server`` on a free loopback port, no persistence; yields the port."""
    binary = shutil.which(REDIS_SERVER)
    if binary is None:
        pytest.fail(
            "redis-server is not installed: run scripts/install-system-deps (or "
            "apt-get install redis-server); the registry and cluster tests need a real Redis",
            pytrace=False,
        )
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = (folder / "redis.log").open("wb")
    process = subprocess.Popen(
        [
            binary,
            "--port", str(port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--dir", str(folder),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                if redis_command(port, "PING").startswith(b"+PONG"):
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
