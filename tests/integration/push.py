"""Push publishers for integration tests: FFmpeg (the wheel's) publishing a 720p30 test pattern
and a tone in real time to the service's own ingest (RTMP as ``-f flv``, SRT as ``-f mpegts``)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Iterator

from tests.integration.live import live_encode_argv


def publish_argv(url: str, container: str, *, size: str = "1280x720") -> list[str]:
    width, height = (int(n) for n in size.split("x"))
    return [*live_encode_argv(width=width, height=height), "-f", container, url]


def start_publisher(url: str, container: str, **kwargs: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        publish_argv(url, container, **kwargs),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )


def kill(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL: the publisher vanishes without saying goodbye (a crash, a cable pulled)."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=10)
    if process.stderr is not None:
        process.stderr.close()


@contextlib.contextmanager
def publishing(url: str, container: str, **kwargs: str) -> Iterator[subprocess.Popen[bytes]]:
    process = start_publisher(url, container, **kwargs)
    try:
        yield process
    finally:
        kill(process)
