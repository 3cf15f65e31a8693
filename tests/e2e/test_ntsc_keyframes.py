"""A 29.97 fps source through the real service: every segment starts at a keyframe, no holes.

30 frames at 30000/1001 fps are 1.001 s, so the keyframe FFmpeg forces at each 1 s grid line
comes up to a frame late; the timeline's length cap was exactly the target duration (1 s) and
cut such a segment a part early, without a keyframe, and every one after it too: 0.5 s
segments starting mid-GOP, renditions disagreeing, segments given up (holes dash.js jumped).
The segments are read back from disk with our own ISO-BMFF reader.
"""

from __future__ import annotations

import itertools
import time
from pathlib import Path

import pytest

from actors.packager.bmff.reader import split_stream
from actors.packager.model import Fragment
from tests.e2e.live_service import run_service

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

NTSC_SOURCE = (
    "lavfi:testsrc2=size=640x360:rate=30000/1001[out0];sine=frequency=440:sample_rate=48000[out1]"
)


def _fragments(rendition_dir: Path, segment: Path) -> list[Fragment]:
    init = (rendition_dir / "init_1.mp4").read_bytes()
    return [r for r in split_stream(init + segment.read_bytes()) if isinstance(r, Fragment)]


def test_a_29_97_fps_source_cuts_every_segment_at_a_keyframe() -> None:
    with run_service(segment_duration_s=1.0) as service:
        service.create_stream(
            "ntsc", low_latency=True, qualities=("360p", "240p"), source_url=NTSC_SOURCE
        )
        service.wait_segments("ntsc", at_least=12, timeout_s=60)
        time.sleep(1.0)
        status = service.status("ntsc")
        stream_dir = service.output_dir / "ntsc"
        starts: dict[str, list[tuple[int, int, int]]] = {}
        for rendition in ("360p", "240p", "audio"):
            rendition_dir = stream_dir / rendition
            segments = sorted(
                rendition_dir.glob("seg_*.m4s"), key=lambda p: int(p.stem.split("_")[1])
            )
            assert len(segments) >= 10, (rendition, segments)
            rows = []
            for segment in segments:
                fragments = _fragments(rendition_dir, segment)
                assert fragments, segment
                if rendition != "audio":
                    assert fragments[0].starts_with_sync, (rendition, segment.name)
                end = fragments[-1].end_time_ticks
                rows.append((int(segment.stem.split("_")[1]), fragments[0].decode_time_ticks, end))
            # contiguous numbers and media: no segment given up, no hole
            for before, after in itertools.pairwise(rows):
                assert after[0] == before[0] + 1, (rendition, before, after)
                assert after[1] == before[2], (rendition, before, after)
            starts[rendition] = rows
            if rendition != "audio":
                durations = {end - start for _n, start, end in rows}
                # 30 frames (1.001 s) or 29 (0.968 s) in the 30000 timescale FFmpeg keeps
                assert durations <= {30030, 29029}, (rendition, durations)
        assert starts["360p"] == starts["240p"]  # the rungs agree, segment for segment
        assert status["state"] == "live", status
