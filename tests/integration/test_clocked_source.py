"""The glass-to-glass benchmark's clocked source, read back through real FFmpeg.

The source (``ops.bench.clocked_source``) serves live MPEG-TS over HTTP; a real FFmpeg client
pulls it, decodes and scales it (as a player would show it) and writes PNGs; the pixel reader
must read every frame's counter, in order, each one a frame the source recorded a capture time
for. A client that comes later joins the live stream: no backlog from before it connected.
"""

from __future__ import annotations

import itertools
import subprocess

import pytest

from ops.bench.clockcode import read_png_counter
from ops.bench.clocked_source import ClockedSource, clocked_source
from ops.bench.common import FFMPEG

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def pull_counters(source: ClockedSource, frames: int, size: str) -> list[int | None]:
    """``frames`` decoded frames of the live source, scaled to ``size``, read from their PNGs."""
    result = subprocess.run(
        [
            FFMPEG,
            *("-hide_banner", "-loglevel", "error", "-nostdin", "-i", source.url),
            *("-map", "0:v", "-fps_mode", "passthrough", "-vf", f"scale={size}"),
            *("-frames:v", str(frames), "-f", "image2pipe", "-c:v", "png", "pipe:1"),
        ],
        capture_output=True,
        timeout=60,
        check=True,
    )
    pngs = [PNG_SIGNATURE + p for p in result.stdout.split(PNG_SIGNATURE)[1:]]
    assert len(pngs) == frames
    return [read_png_counter(png) for png in pngs]


def test_every_frame_of_the_live_source_reads_back_in_order() -> None:
    with clocked_source(width=640, height=360) as source:
        first = pull_counters(source, 20, "480:270")  # a scaled picture, as in a player
        assert None not in first, first
        counters = [c for c in first if c is not None]
        assert all(b == a + 1 for a, b in itertools.pairwise(counters)), counters
        assert all(source.captured_at(c) is not None for c in counters)

        later = pull_counters(source, 5, "640:360")
        assert None not in later, later
        # the second client joined the running clock: newer frames, nothing kept for it
        assert min(c for c in later if c is not None) > counters[-1]


def test_a_frame_size_the_audio_rate_cannot_split_is_refused() -> None:
    with pytest.raises(ValueError, match="fps"):
        ClockedSource(320, 180, fps=7)
