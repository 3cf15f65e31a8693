"""Ladder cost: bare FFmpeg vs hlsdash's pipeline vs one FFmpeg per rendition; cheaper ladders.

    python -m ops.bench.ladder                       # 1080p source, 5 rungs + AAC, 20 s each, x3
    python -m ops.bench.ladder --tiny                # a few seconds (the smoke test)

(a) one bare FFmpeg with exactly hlsdash's argv (``build_ffmpeg_argv``; checked equal to the
    service's own FFmpeg command line), outputs to /dev/null;
(b) the real service (``hlsdash serve`` subprocess) pulling the same lavfi source: FFmpeg CPU and
    the service's own CPU measured separately with psutil;
(c) one FFmpeg per rendition (N video + 1 audio, run concurrently).
(a), (b), (c) all read the same endless source at real time (``-re``, as the service does for
lavfi) and are measured over the same steady-state window: FFmpeg's own ``-progress`` frame count
(read from its pipe for (a)/(c), from the API's ``encoder.frames`` for (b)) skips the first
``--warmup`` media seconds, then CPU-seconds are taken over the next ``--seconds`` of media
(CPU-s per media-s). (c)'s processes are each measured over their own window of that media and
their rates added (on a loaded machine they drift apart). Each is repeated ``--repeat`` times
(default 3), interleaved a, b, c, a, b, c, … so a change in the machine's load hits all three
alike; the median is printed with the spread (min–max) and the ratios of medians with the spread
of the per-round ratios.

Then the ladder variants (naive/halving/hub/cascaded scaling × bicubic/fast_bilinear scaler; hub =
zscale, low rungs from the 2nd rung) run flat out (their speed is the realtime factor), also
``--repeat`` times round-robin, the first round writing their renditions to files: PSNR of every
rung against a lanczos-scaled copy of the source tells whether a cheaper ladder keeps the quality
(|ΔPSNR| ≤ 0.3 dB vs the naive ladder). Last, the largest ladder that stays realtime per preset
(one flat-out run per ladder size).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence

import psutil

from actors.ffmpeg.command import select_rungs
from ops.bench.common import (
    FPS,
    parse_size,
)
from ops.bench.ladder_abc import compare_abc
from ops.bench.ladder_variants import compare_variants, largest_realtime_ladders

ALL_RUNGS = ("1080p", "720p", "480p", "360p", "240p")
PRESETS = ("ultrafast", "superfast", "veryfast")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", default="1920x1080", help="source size (default 1920x1080)")
    parser.add_argument("--seconds", type=float, default=20, help="media seconds measured per run")
    parser.add_argument(
        "--warmup", type=float, default=4, help="media seconds skipped before (a)(b)(c)'s window"
    )
    parser.add_argument(
        "--repeat", type=int, default=None, help="rounds per variant, median (3; --tiny: 1)"
    )
    parser.add_argument("--rungs", default=",".join(ALL_RUNGS))
    parser.add_argument("--preset", default="veryfast", help="x264 preset for (a)(b)(c)")
    parser.add_argument("--segment", type=float, default=2.0, help="segment duration, s")
    parser.add_argument("--presets", default=",".join(PRESETS), help="presets for the table")
    parser.add_argument(
        "--tiny", action="store_true", help="640x360, 360p+240p, 2 s, one round (smoke)"
    )
    parser.add_argument(
        "--skip", default="", help="comma list of parts to skip: abc,variants,presets"
    )
    args = parser.parse_args(argv)
    if args.tiny:
        args.size, args.seconds, args.rungs, args.segment = "640x360", 2.0, "360p,240p", 1.0
        args.warmup, args.presets = 1.0, "ultrafast"
    if args.repeat is None:
        args.repeat = 1 if args.tiny else 3
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    args.width, args.height = parse_size(args.size)
    requested = [r for r in args.rungs.split(",") if r]
    rungs, dropped = select_rungs(requested, args.height)
    skip = set(args.skip.split(","))
    print(
        f"ladder bench: source testsrc2 {args.size}@{FPS} + AAC, rungs {[r.name for r in rungs]}"
        f"{f' (dropped {list(dropped)})' if dropped else ''}, preset {args.preset}, "
        f"{args.seconds:g} media-s per run, {args.repeat} round(s), {psutil.cpu_count()} CPUs, "
        f"load {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    if "abc" not in skip:
        compare_abc(args, rungs)
    if "variants" not in skip:
        compare_variants(args, rungs)
    if "presets" not in skip:
        largest_realtime_ladders(args, rungs)


if __name__ == "__main__":
    main()
