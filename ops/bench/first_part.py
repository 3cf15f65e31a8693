"""Start-up latency: POST /streams → first LL-HLS part servable → first full segment servable.

    python -m ops.bench.first_part              # 10 streams, one after the other, demo ladder
    python -m ops.bench.first_part --tiny       # 2 streams at 240p (the smoke test)

A real service (subprocess, default preset, 2 s segments, 0.5 s parts). For each stream: POST,
then poll the top rendition's media playlist on the origin every 10 ms; "first part" is when a
playlist lists an EXT-X-PART *and* that part is fetched (200), "first segment" when a segment is
listed and fetched. Source: lavfi testsrc2 + tone at real time (-re), the demo's source.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence

from ops.bench.common import (
    header,
    lavfi_source,
    median,
    parse_size,
    running_service,
    wait_first_part_and_segment,
)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--streams", type=int, default=10)
    parser.add_argument("--size", default="1280x720")
    parser.add_argument("--qualities", default="720p,480p,360p,240p")
    parser.add_argument("--preset", default="veryfast")
    parser.add_argument("--tiny", action="store_true")
    args = parser.parse_args(argv)
    if args.tiny:
        args.streams, args.size, args.qualities, args.preset = 2, "426x240", "240p", "ultrafast"
    width, height = parse_size(args.size)
    qualities = args.qualities.split(",")
    source = "lavfi:" + lavfi_source(width, height)
    firsts: list[float] = []
    segments: list[float] = []
    with running_service(ENCODER_PRESET=args.preset) as service:
        header(
            f"first part / first segment: {args.streams} streams, {args.size} → {qualities}, "
            f"preset {args.preset}, 2 s segments, 0.5 s parts"
        )
        for i in range(args.streams):
            sid = f"fp{i:02d}"
            base = f"{service.origin}/{sid}/{qualities[0]}"
            started = time.monotonic()
            service.create(sid, source, qualities=qualities, low_latency=True)
            first_part, first_segment = wait_first_part_and_segment(base, started)
            service.delete(sid)
            if first_part is None or first_segment is None:
                print(f"{sid}: timed out (part {first_part}, segment {first_segment})")
                continue
            firsts.append(first_part)
            segments.append(first_segment)
            print(
                f"{sid}: first part {first_part * 1000:.0f} ms, first segment "
                f"{first_segment * 1000:.0f} ms",
                flush=True,
            )
    print(
        f"p50 over {len(firsts)} streams: POST → first part {median(firsts) * 1000:.0f} ms, "
        f"→ first full segment {median(segments) * 1000:.0f} ms"
    )


if __name__ == "__main__":
    main()
