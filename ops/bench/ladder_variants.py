"""Ladder bench parts two and three: cheaper ladder variants (flat out, PSNR per rung against a
lanczos-scaled source) and the largest ladder that stays realtime per preset.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

import psutil

from actors.ffmpeg.command import (
    Rung,
    build_ffmpeg_argv,
)
from ops.bench.common import (
    FFMPEG,
    FPS,
    fmt_spread,
    header,
    median,
)
from ops.bench.ladder_ffmpeg import HAS_ZSCALE, bare, encode_spec, output_fds, run_processes
from ops.bench.steady import (
    Run,
    cpu_rates,
    per_round_ratios,
)

PSNR_TOLERANCE_DB = 0.3


_PSNR_RE = re.compile(r"average:([0-9.]+|inf)")


def psnr(path: Path, args: argparse.Namespace, rung: Rung) -> float:
    """PSNR (Y/U/V average) of an encoded rung against the source scaled with lanczos."""
    reference = (
        f"testsrc2=size={args.width}x{args.height}:rate={FPS}:duration={args.seconds:g},"
        f"format=yuv420p,scale={rung.width}:{rung.height}:flags=lanczos+accurate_rnd,setsar=1"
    )
    result = subprocess.run(
        [
            FFMPEG,
            "-hide_banner",
            "-nostdin",
            "-i",
            str(path),
            "-f",
            "lavfi",
            "-i",
            reference,
            "-lavfi",
            "[0:v]setpts=PTS-STARTPTS[a];[1:v]setpts=PTS-STARTPTS[b];[a][b]psnr",
            "-f",
            "null",
            "-",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    found = _PSNR_RE.findall(result.stderr)
    if not found:
        raise RuntimeError(f"psnr failed: {result.stderr[-800:]}")
    return float(found[-1]) if found[-1] != "inf" else 99.0


def variant(
    args: argparse.Namespace, rungs: Sequence[Rung], workdir: Path | None, name: str, **kw: object
) -> tuple[Run, list[float] | None]:
    """One flat-out run of a ladder variant; with ``workdir``, also PSNR of every rung."""
    if workdir is None:
        paths = ["/dev/null"] * (len(rungs) + 1)
    else:
        paths = [str(workdir / f"{name}_{r.name}.mp4") for r in rungs]
        paths.append(str(workdir / f"{name}_audio.mp4"))
    with output_fds(paths) as fds:
        spec = encode_spec(
            args.width, args.height, rungs, seconds=args.seconds, realtime=False,
            segment_s=args.segment, fds=fds, **kw,  # type: ignore[arg-type]
        )  # fmt: skip
        run = run_processes([(build_ffmpeg_argv(spec), fds)], args.seconds)
    if workdir is None:
        return run, None
    scores = [psnr(Path(p), args, r) for p, r in zip(paths, rungs, strict=False)]
    for p in paths:
        Path(p).unlink()
    return run, scores


def ladder_variants() -> list[tuple[str, dict[str, object]]]:
    # scaling variants keep x264's own veryfast (hexagon search) so they compare with the
    # naive ladder on scaling alone; the product's default adds diamond search on top
    naive: dict[str, object] = {
        "scaler": "bicubic",
        "cascade": False,
        "halving": False,
        "hub": False,
    }
    plain: dict[str, object] = {"diamond": False}
    return [
        ("naive/bicubic", {**naive, **plain}),
        ("halving/bicubic", {"scaler": "bicubic", "cascade": False, "hub": False, **plain}),
        *([("hub/zscale", {"hub": True, **plain})] if HAS_ZSCALE else []),
        ("naive + diamond ME", {**naive}),
        (
            "hub/zscale + diamond (default)" if HAS_ZSCALE else "halving + diamond (default)",
            {},
        ),
        ("naive/fast_bilinear", {**naive, "scaler": "fast_bilinear", **plain}),
        ("cascade/bicubic", {"scaler": "bicubic", "cascade": True, "hub": False, **plain}),
        ("cascade/bilinear", {"scaler": "bilinear", "cascade": True, "hub": False, **plain}),
        (
            "cascade/fast_bilinear",
            {"scaler": "fast_bilinear", "cascade": True, "hub": False, **plain},
        ),
    ]


def compare_variants(args: argparse.Namespace, rungs: Sequence[Rung]) -> None:
    header(
        f"cheaper ladder: flat out, {args.repeat} round(s) round-robin, PSNR per rung (first "
        f"round) vs a lanczos-scaled source"
    )
    variants = ladder_variants()
    runs: dict[str, list[Run]] = {name: [] for name, _ in variants}
    scores: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="hlsbench-ladder-") as tmp:
        for round_number in range(args.repeat):
            for name, kw in variants:
                workdir = Path(tmp) if round_number == 0 else None
                run, psnrs = variant(
                    args, rungs, workdir, name.replace("/", "_"), preset=args.preset, **kw
                )
                runs[name].append(run)
                if psnrs is not None:
                    scores[name] = psnrs
    base_name = variants[0][0]
    base_runs, base_scores = runs[base_name], scores[base_name]
    names = " ".join(f"{r.name:>7}" for r in rungs)
    print(
        f"{'variant':<31} {'CPU-s/m-s (min–max)':>26} {'xCPU (per round)':>22} {'speed':>6}  "
        f"PSNR dB {names}"
    )
    for name, _ in variants:
        deltas = [s - b for s, b in zip(scores[name], base_scores, strict=True)]
        ok = all(abs(d) <= PSNR_TOLERANCE_DB for d in deltas)
        ratios = per_round_ratios(runs[name], base_runs)
        cheaper = median(cpu_rates(runs[name])) / median(cpu_rates(base_runs))
        print(
            f"{name:<31} {fmt_spread(cpu_rates(runs[name])):>26} "
            f"{cheaper:6.3f} ({min(ratios):.3f}–{max(ratios):.3f}) "
            f"{median([r.speed for r in runs[name]]):5.2f}x  "
            + " ".join(f"{s:7.2f}" for s in scores[name])
            + (
                ""
                if name == base_name
                else f"  Δ {' '.join(f'{d:+.2f}' for d in deltas)} "
                f"{'equal quality' if ok else 'QUALITY LOSS'}"
                f"{', goal <= 0.85x met' if ok and cheaper <= 0.85 else ''}"
            )
        )


def largest_realtime_ladders(args: argparse.Namespace, rungs: Sequence[Rung]) -> None:
    header("largest realtime ladder per preset (flat out, one stream on this machine, one run)")
    for preset in args.presets.split(","):
        best = None
        for drop in range(len(rungs)):
            ladder = rungs[drop:]
            run = bare(args, ladder, preset=preset)
            top = ladder[0].name
            print(
                f"{preset:<10} top {top:>6} ({len(ladder)} rungs): "
                f"{run.cpu_per_media_s:.3f} CPU-s/media-s, speed {run.speed:.2f}x",
                flush=True,
            )
            if run.speed >= 1.0:
                best = (ladder, run)
                break
        if best is None:
            print(f"{preset:<10} -> no ladder is realtime")
        else:
            ladder, run = best
            streams = psutil.cpu_count() / run.cpu_per_media_s
            print(
                f"{preset:<10} -> largest realtime ladder: {ladder[0].name} and below "
                f"({len(ladder)} rungs), ~{streams:.1f} such streams per machine by CPU"
            )
