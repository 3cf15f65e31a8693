"""What smaller LL parts cost: ladder CPU, bytes on the wire and requests per viewer.

    python -m ops.bench.parts                      # 720p source → 720p + 360p + AAC, 20 s, 3 rounds
    python -m ops.bench.parts --tiny               # a few seconds (the smoke test)

For each part target (``--parts``, default 0.5, 0.333, 0.25, 0.2 s) one bare FFmpeg with exactly
hlsdash's argv (``build_ffmpeg_argv``, the ladder of issue 10: 720p30 source, 720p + 360p + AAC,
2 s segments) encodes the same synthetic source flat out to files; rounds interleave the part
targets so load from other processes on this shared machine hits them alike. Printed per part
target: median CPU-s per media-s and its ratio to the first target (the baseline of the same run),
output bytes (each part adds a moof, a traf, a trun and an mdat header per rendition) and the
requests one low-latency viewer makes per second of playback, counted from the playlists'
arithmetic: LL-HLS (hls.js, Shaka) fetches every part of one video and the audio rendition and
makes one blocking playlist reload per part for each; LL-DASH fetches each segment once per
rendition (its chunks stream in one response) and reloads the MPD every ``minimumUpdatePeriod``.
The latency each target allows is the player-side floor: PART-HOLD-BACK = 3 × PART-TARGET.
This is a benchmark, not a test: it asserts nothing.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import tempfile
from collections.abc import Sequence
from pathlib import Path

from actors.ffmpeg.command import build_ffmpeg_argv, select_rungs
from ops.bench.common import fmt_ratio, header, parse_size
from ops.bench.ladder_ffmpeg import encode_spec, output_fds, run_processes


def hls_requests_per_s(part_s: float, renditions: int = 2) -> float:
    """Part GETs + blocking playlist reloads per second for one LL-HLS viewer."""
    return renditions * 2 / part_s


def dash_requests_per_s(segment_s: float, renditions: int = 2) -> float:
    """Segment GETs (chunks stream in one response) + MPD reloads per second, LL-DASH."""
    return renditions / segment_s + 1 / segment_s


def encode_once(args: argparse.Namespace, part_s: float, workdir: Path) -> tuple[float, int]:
    """(CPU-s per media-s, output bytes) of one flat-out run at ``part_s``."""
    rungs, _ = select_rungs(args.rungs.split(","), args.height)
    paths = [str(workdir / f"out{i}.mp4") for i in range(len(rungs) + 1)]
    with output_fds(paths) as fds:
        spec = encode_spec(
            args.width, args.height, rungs, seconds=args.seconds, realtime=False,
            preset=args.preset, segment_s=args.segment, fds=fds, fragment_s=part_s,
        )  # fmt: skip
        run = run_processes([(build_ffmpeg_argv(spec), fds)], args.seconds)
    size = sum(os.path.getsize(p) for p in paths)
    return run.cpu_per_media_s, size


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", default="1280x720", help="source size (default 1280x720)")
    parser.add_argument("--rungs", default="720p,360p")
    parser.add_argument("--seconds", type=float, default=20, help="media seconds per run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--preset", default="veryfast")
    parser.add_argument("--segment", type=float, default=2.0)
    parser.add_argument("--parts", default="0.5,0.333,0.25,0.2", help="part targets, s")
    parser.add_argument("--tiny", action="store_true", help="640x360, 360p, 2 s, 1 round")
    args = parser.parse_args(argv)
    if args.tiny:
        args.size, args.rungs, args.seconds, args.rounds = "640x360", "360p", 2.0, 1
        args.parts = "0.5,0.25"
    args.width, args.height = parse_size(args.size)
    targets = [float(p) for p in args.parts.split(",")]
    cpu: dict[float, list[float]] = {t: [] for t in targets}
    sizes: dict[float, list[int]] = {t: [] for t in targets}
    with tempfile.TemporaryDirectory(prefix="hlsdash-parts-") as tmp:
        for _ in range(args.rounds):
            for target in targets:
                per_media_s, size = encode_once(args, target, Path(tmp))
                cpu[target].append(per_media_s)
                sizes[target].append(size)
    base = targets[0]
    base_cpu = statistics.median(cpu[base])
    base_bytes = statistics.median(sizes[base])
    header(
        f"{args.size} → {args.rungs} + AAC, {args.preset}, {args.segment:g} s segments, "
        f"{args.seconds:g} media-s × {args.rounds} rounds (median)"
    )
    print(
        f"{'part s':>7} {'CPU-s/s':>8} {'× base':>7} {'bytes × base':>13} "
        f"{'HLS req/s':>10} {'DASH req/s':>11} {'hold-back s':>12}"
    )
    for target in targets:
        median_cpu = statistics.median(cpu[target])
        bytes_ratio = fmt_ratio(statistics.median(sizes[target]), base_bytes)
        print(
            f"{target:7.3f} {median_cpu:8.3f} {fmt_ratio(median_cpu, base_cpu):>7} "
            f"{bytes_ratio:>13} {hls_requests_per_s(target):10.1f} "
            f"{dash_requests_per_s(args.segment):11.1f} {3 * math.ceil(target * 1000) / 1000:12.3f}"
        )


if __name__ == "__main__":
    main()
