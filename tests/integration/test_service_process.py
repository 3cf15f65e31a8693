"""``hlsdash serve`` as a real process: example client, origin, SIGTERM and SIGKILL."""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil
import pytest

from tests.integration.live import LAVFI_SOURCE, free_port, service_env

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
HLSDASH = [sys.executable, "-m", "supervisor.cli"]


def get_json(url: str) -> dict[str, object]:
    with urllib.request.urlopen(url, timeout=5) as response:
        data: dict[str, object] = json.loads(response.read())
        return data


@contextmanager
def served(
    tmp_path: Path,
    *,
    nofile_limit: int | None = None,
    ports: tuple[int, int] | None = None,
    log_name: str = "service.log",
    **overrides: str,
) -> Iterator[tuple[subprocess.Popen[bytes], int, int]]:
    """``hlsdash serve`` on free ports (or ``ports``: API, origin, e.g. to start it again where
    players look); ``nofile_limit`` sets its RLIMIT_NOFILE (soft = hard)."""
    api_port, origin_port = ports if ports is not None else (free_port(), free_port())
    env = {
        **os.environ,
        **service_env(tmp_path / "streams"),
        "API_HOST": "127.0.0.1",
        "API_PORT": str(api_port),
        "ORIGIN_PORT": str(origin_port),
        **overrides,
    }

    def limit_fds() -> None:
        if nofile_limit is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (nofile_limit, nofile_limit))

    log = (tmp_path / log_name).open("wb")
    process = subprocess.Popen(
        [*HLSDASH, "serve"],
        env=env,
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        preexec_fn=limit_fds,  # noqa: PLW1509 - setrlimit only, before exec
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                get_json(f"http://127.0.0.1:{api_port}/health")
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise AssertionError(
                        "service did not come up:\n" + (tmp_path / log_name).read_text()
                    ) from None
                time.sleep(0.2)
        yield process, api_port, origin_port
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
        log.close()


def client(api_port: int, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            str(ROOT / "example_client.py"),
            "--api",
            f"http://127.0.0.1:{api_port}",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def wait_encoder_pid(api_port: int, stream_id: str, segments: int = 2) -> int:
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline:
        stream = get_json(f"http://127.0.0.1:{api_port}/streams/{stream_id}")
        encoder = stream["encoder"]
        assert isinstance(encoder, dict)
        produced = stream["segments_produced"]
        assert isinstance(produced, int)
        if encoder.get("pid") and produced >= segments:
            pid = encoder["pid"]
            assert isinstance(pid, int)
            return pid
        time.sleep(0.3)
    raise AssertionError("stream never produced segments")


def wait_gone(pid: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.1)
    return False


def test_serve_with_example_client_then_sigterm(tmp_path: Path) -> None:
    with served(tmp_path) as (process, api_port, origin_port):
        started = client(api_port, "start", "proc-demo", LAVFI_SOURCE, "--qualities", "240p")
        assert started.returncode == 0, started.stderr
        assert "proc-demo: starting" in started.stdout or "proc-demo:" in started.stdout
        assert f"http://127.0.0.1:{origin_port}/proc-demo/playlist.m3u8" in started.stdout
        pid = wait_encoder_pid(api_port, "proc-demo")
        assert psutil.Process(pid).nice() == 15  # ENCODER_NICE default: encoders yield to the API

        with urllib.request.urlopen(
            f"http://127.0.0.1:{origin_port}/proc-demo/240p/playlist.m3u8", timeout=5
        ) as response:
            playlist = response.read().decode()
        segment = next(line for line in playlist.splitlines() if line.startswith("seg_"))
        with urllib.request.urlopen(
            f"http://127.0.0.1:{origin_port}/proc-demo/240p/{segment}", timeout=5
        ) as response:
            assert response.headers["Cache-Control"] == "public, max-age=31536000, immutable"
            assert response.read()[4:8] in {b"moof", b"styp"}

        monitored = client(api_port, "monitor", "proc-demo", "2", "--interval", "1")
        assert monitored.returncode == 0, monitored.stderr
        assert "live" in monitored.stdout
        listed = client(api_port, "list")
        assert "proc-demo: live" in listed.stdout
        missing = client(api_port, "stop", "no-such-stream")
        assert missing.returncode == 1
        assert "404" in missing.stderr

        began = time.monotonic()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
        assert time.monotonic() - began < 10
        assert wait_gone(pid, 2)
        assert not (tmp_path / "streams" / "proc-demo").exists()


def test_sigkill_of_the_service_leaves_no_ffmpeg(tmp_path: Path) -> None:
    with served(tmp_path) as (process, api_port, _origin_port):
        started = client(api_port, "start", "orphan-check", LAVFI_SOURCE, "--qualities", "240p")
        assert started.returncode == 0, started.stderr
        pid = wait_encoder_pid(api_port, "orphan-check", segments=1)
        process.kill()  # SIGKILL: no cleanup code runs in the service
        process.wait(timeout=10)
        assert wait_gone(pid, 3), "FFmpeg outlived a SIGKILLed service (PR_SET_PDEATHSIG)"


def test_invalid_configuration_fails_fast_with_the_variable_named(tmp_path: Path) -> None:
    env = {**os.environ, "SEGMENT_DURATION": "lots"}
    result = subprocess.run(
        [*HLSDASH, "serve"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert "SEGMENT_DURATION" in result.stderr
    assert "Traceback" not in result.stderr


def test_version_and_help() -> None:
    version = subprocess.run(
        [*HLSDASH, "--version"], cwd=ROOT, capture_output=True, text=True, timeout=30, check=False
    )
    assert version.returncode == 0
    assert version.stdout.startswith("hlsdash ")
    helped = subprocess.run(
        [*HLSDASH, "serve", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert "--segment-duration" in helped.stdout
    assert "[STALE_THRESHOLD]" in helped.stdout
