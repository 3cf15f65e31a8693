"""Push publishers for integration tests: FFmpeg (the wheel's) publishing a 720p30 test pattern
and a tone in real time to the service's own ingest (RTMP as ``-f flv``, SRT as ``-f mpegts``)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from actors.ffmpeg.process import die_with_this_thread
from tests.integration.live import FFMPEG, live_encode_argv


def publish_argv(
    url: str, container: str, *, size: str = "1280x720", gop_frames: int = 30
) -> list[str]:
    width, height = (int(n) for n in size.split("x"))
    keyframes = ("-g", str(gop_frames))
    return [
        *live_encode_argv(width=width, height=height, keyframe_args=keyframes),
        "-f",
        container,
        url,
    ]


def start_publisher(url: str, container: str, **kwargs: Any) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        publish_argv(url, container, **kwargs),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
        preexec_fn=die_with_this_thread(),  # noqa: PLW1509 - prctl only
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
def publishing(url: str, container: str, **kwargs: Any) -> Iterator[subprocess.Popen[bytes]]:
    process = start_publisher(url, container, **kwargs)
    try:
        yield process
    finally:
        kill(process)


def one_keyframe_clip(path: Path, *, seconds: float = 8.0, size: str = "640x360") -> Path:
    """An FLV clip of a test pattern + AAC tone whose only keyframe is its first frame."""
    width, height = (int(n) for n in size.split("x"))
    argv = live_encode_argv(
        width=width, height=height, keyframe_args=("-g", "100000", "-sc_threshold", "0")
    )
    argv = [a for a in argv if a != "-re"]  # encode as fast as it goes
    subprocess.run(
        [*argv, "-t", f"{seconds:g}", "-f", "flv", "-y", str(path)], check=True, timeout=120
    )
    return path


@contextlib.contextmanager
def sending_clip(clip: Path, url: str) -> Iterator[subprocess.Popen[bytes]]:
    """Publish ``clip`` to ``url`` in real time as it is (``-c copy``): its timestamps and
    keyframes are the clip's, whatever the load on the machine."""
    argv = [FFMPEG, "-hide_banner", "-loglevel", "error", "-nostdin", "-re", "-i", str(clip)]
    process = subprocess.Popen(
        [*argv, "-c", "copy", "-f", "flv", url],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
        preexec_fn=die_with_this_thread(),  # noqa: PLW1509 - prctl only
    )
    try:
        yield process
    finally:
        kill(process)
