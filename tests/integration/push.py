"""Push publishers for integration tests: FFmpeg (the wheel's) publishing a 720p30 test pattern
and a tone in real time to the service's own ingest (RTMP as ``-f flv``, SRT as ``-f mpegts``)."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from tests.integration.live import live_encode_argv, read_media


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


def first_media_start_s(rendition_folder: Path) -> float:
    """Where the oldest segment a rendition still lists starts, in seconds of FFmpeg's output
    timestamps (which follow its input's)."""
    playlist = (rendition_folder / "playlist.m3u8").read_text()
    first = min(int(n) for n in re.findall(r"^seg_(\d+)\.m4s$", playlist, re.MULTILINE))
    inits = sorted(rendition_folder.glob("init*.mp4"))
    init, fragments = read_media(inits[0], rendition_folder / f"seg_{first}.m4s")
    assert init is not None
    return fragments[0].decode_time_ticks / init.track.timescale


def video_start_s(stream_folder: Path, qualities: Iterable[str]) -> float:
    """Where the stream's video starts (the latest of its renditions), in its output timestamps.

    FFmpeg keeps its input's timestamps, and an RTMP publisher's start at 0 with a keyframe: an
    FFmpeg that dropped what it probed starts video only at the publisher's next keyframe."""
    return max(first_media_start_s(stream_folder / quality) for quality in qualities)
