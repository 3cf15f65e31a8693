"""Ladder cost: bare FFmpeg vs hlsdash's pipeline vs one FFmpeg per rendition; cheaper ladders.

    python -m ops.bench.ladder                       # 1080p source, 5 rungs + AAC, 20 s each
    python -m ops.bench.ladder --tiny                # a few seconds (the smoke test)

(a) one bare FFmpeg with exactly hlsdash's argv (``build_ffmpeg_argv``), outputs to /dev/null;
(b) the real service (``hlsdash serve`` subprocess) pulling the same lavfi source: FFmpeg CPU and
    the service's own CPU measured separately with psutil over a window of encoded frames;
(c) one FFmpeg per rendition (N video + 1 audio, run concurrently).
(a), (b), (c) all read the source at real time (``-re``, as the service does for lavfi), so the
CPU-seconds per media-second compare like with like. Then the ladder variants (naive/halving/hub/
cascaded scaling × bicubic/fast_bilinear scaler; hub = zscale, low rungs from the 2nd rung) run flat
out (their speed is the realtime factor) and write their renditions to files; PSNR of every rung
against a lanczos-scaled copy of the source tells whether a cheaper ladder keeps the quality
(|ΔPSNR| ≤ 0.3 dB vs the naive ladder). Last, the largest ladder that stays realtime per preset.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil

from actors.ffmpeg.command import (
    EncodeSpec,
    Rung,
    audio_fragment_duration_s,
    build_ffmpeg_argv,
    cmaf_output_args,
    select_rungs,
)
from ops.bench.common import (
    FFMPEG,
    FPS,
    children_cpu_seconds,
    cpu_seconds,
    fmt_ratio,
    header,
    lavfi_source,
    parse_size,
    running_service,
)
from supervisor.service import ffmpeg_has_filter

HAS_ZSCALE = ffmpeg_has_filter(FFMPEG, "zscale")
ALL_RUNGS = ("1080p", "720p", "480p", "360p", "240p")
PRESETS = ("ultrafast", "superfast", "veryfast")
PSNR_TOLERANCE_DB = 0.3


@dataclass
class Run:
    cpu_s: float
    wall_s: float
    media_s: float

    @property
    def cpu_per_media_s(self) -> float:
        return self.cpu_s / self.media_s

    @property
    def speed(self) -> float:
        return self.media_s / self.wall_s


def encode_spec(
    width: int,
    height: int,
    rungs: Sequence[Rung],
    *,
    seconds: float,
    realtime: bool,
    preset: str,
    segment_s: float,
    fds: Sequence[int],
    scaler: str | None = None,
    cascade: bool | None = None,
    halving: bool = True,  # the product's default without zscale (actors/stream.py)
    hub: bool | None = None,  # None: the product's default, i.e. zscale if this FFmpeg has it
    diamond: bool = True,  # the product's default: diamond motion search for veryfast
    audio: bool = True,
    fragment_s: float = 0.5,  # LL part / CMAF fragment (capped at the segment)
) -> EncodeSpec:
    if hub is None:
        hub = HAS_ZSCALE
    extra: dict[str, object] = {
        "halving_scaling": halving and not cascade and not hub,
        "hub_scaling": hub and not cascade,
        "diamond_search": diamond,
    }
    if scaler is not None:
        extra["scaler"] = scaler
    if cascade is not None:
        extra["cascade_scaling"] = cascade
    return EncodeSpec(
        ffmpeg_path=FFMPEG,
        source_url=lavfi_source(width, height, audio=audio, duration_s=seconds),
        input_args=("-re", "-f", "lavfi") if realtime else ("-f", "lavfi"),
        rungs=tuple(rungs),
        include_audio=audio,
        segment_duration_s=segment_s,
        fragment_duration_s=min(fragment_s, segment_s),
        video_fds=tuple(fds[: len(rungs)]),
        audio_fd=fds[len(rungs)] if audio else None,
        preset=preset,
        **extra,  # type: ignore[arg-type]
    )


def run_processes(argvs: Sequence[tuple[list[str], list[int]]], media_s: float) -> Run:
    """Run FFmpeg processes concurrently to completion; CPU from the kernel's child rusage."""
    before = children_cpu_seconds()
    started = time.monotonic()
    procs = [
        subprocess.Popen(
            argv,
            pass_fds=fds,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for argv, fds in argvs
    ]
    errors = []
    for proc in procs:
        _, err = proc.communicate()
        if proc.returncode != 0:
            errors.append(err.decode(errors="replace")[-1500:])
    wall = time.monotonic() - started
    if errors:
        raise RuntimeError("ffmpeg failed:\n" + "\n".join(errors))
    return Run(children_cpu_seconds() - before, wall, media_s)


@contextlib.contextmanager
def output_fds(paths: Sequence[str]):  # type: ignore[no-untyped-def]
    fds = [os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644) for p in paths]
    try:
        yield fds
    finally:
        for fd in fds:
            os.close(fd)


def bare(args: argparse.Namespace, rungs: Sequence[Rung], *, realtime: bool, **kw: object) -> Run:
    with output_fds(["/dev/null"] * (len(rungs) + 1)) as fds:
        spec = encode_spec(
            args.width, args.height, rungs, seconds=args.seconds, realtime=realtime,
            preset=kw.pop("preset", args.preset), segment_s=args.segment, fds=fds, **kw,  # type: ignore[arg-type]
        )  # fmt: skip
        return run_processes([(build_ffmpeg_argv(spec), fds)], args.seconds)


def per_rendition(args: argparse.Namespace, rungs: Sequence[Rung]) -> Run:
    with output_fds(["/dev/null"] * (len(rungs) + 1)) as fds:
        jobs = []
        for rung, fd in zip(rungs, fds, strict=False):
            spec = encode_spec(
                args.width, args.height, [rung], seconds=args.seconds, realtime=True,
                preset=args.preset, segment_s=args.segment, fds=[fd], audio=False,
            )  # fmt: skip
            jobs.append((build_ffmpeg_argv(spec), [fd]))
        audio_fd = fds[-1]
        audio_argv = [
            FFMPEG, "-hide_banner", "-nostdin", "-loglevel", "error",
            "-re", "-f", "lavfi", "-i",
            f"sine=frequency=440:sample_rate=48000:duration={args.seconds:g}",
            "-map", "0:a:0", "-c:a", "aac", "-b:a", "128k", "-ac", "2", "-ar", "48000",
            *cmaf_output_args(audio_fragment_duration_s(0.5), video=False, fd=audio_fd),
        ]  # fmt: skip
        jobs.append((audio_argv, [audio_fd]))
        return run_processes(jobs, args.seconds)


def pipeline(args: argparse.Namespace, rungs: Sequence[Rung]) -> tuple[Run, float, float]:
    """(ffmpeg run, service CPU-s per media-s, encoder speed) for the real service."""
    source = "lavfi:" + lavfi_source(args.width, args.height)
    with running_service(
        ENCODER_PRESET=args.preset,
        SEGMENT_DURATION=f"{args.segment:g}",
        PART_TARGET="0.5" if args.segment >= 1 else f"{args.segment:g}",
        LOW_LATENCY_HLS="true",
    ) as service:
        service.create("bench", source, qualities=[r.name for r in rungs])
        service.wait_segments("bench", 2, timeout_s=60 + 10 * args.seconds)
        info = service.stream("bench")
        encoder = info["encoder"]
        assert isinstance(encoder, dict)
        ff = psutil.Process(int(encoder["pid"]))
        svc = service.ps
        frames0, ff0, svc0, t0 = (
            int(encoder["frames"]),
            cpu_seconds(ff),
            cpu_seconds(svc),
            (time.monotonic()),
        )
        time.sleep(args.seconds)
        ff1, svc1, t1 = cpu_seconds(ff), cpu_seconds(svc), time.monotonic()
        info = service.stream("bench")
        encoder = info["encoder"]
        assert isinstance(encoder, dict)
        if int(encoder["pid"]) != ff.pid:
            raise RuntimeError(f"encoder restarted during the window: {info.get('last_error')}")
        media_s = (int(encoder["frames"]) - frames0) / FPS
        speed = float(encoder.get("speed") or 0.0)
        service.delete("bench")
    return Run(ff1 - ff0, t1 - t0, media_s), (svc1 - svc0) / media_s, speed


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
    args: argparse.Namespace, rungs: Sequence[Rung], workdir: Path, name: str, **kw: object
) -> tuple[Run, list[float]]:
    paths = [workdir / f"{name}_{r.name}.mp4" for r in rungs] + [workdir / f"{name}_audio.mp4"]
    with output_fds([str(p) for p in paths]) as fds:
        spec = encode_spec(
            args.width, args.height, rungs, seconds=args.seconds, realtime=False,
            segment_s=args.segment, fds=fds, **kw,  # type: ignore[arg-type]
        )  # fmt: skip
        run = run_processes([(build_ffmpeg_argv(spec), fds)], args.seconds)
    scores = [psnr(p, args, r) for p, r in zip(paths, rungs, strict=False)]
    for p in paths:
        p.unlink()
    return run, scores


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", default="1920x1080", help="source size (default 1920x1080)")
    parser.add_argument("--seconds", type=float, default=20, help="media seconds per run")
    parser.add_argument("--rungs", default=",".join(ALL_RUNGS))
    parser.add_argument("--preset", default="veryfast", help="x264 preset for (a)(b)(c)")
    parser.add_argument("--segment", type=float, default=2.0, help="segment duration, s")
    parser.add_argument("--presets", default=",".join(PRESETS), help="presets for the table")
    parser.add_argument("--tiny", action="store_true", help="640x360, 360p+240p, 2 s (smoke)")
    parser.add_argument(
        "--skip", default="", help="comma list of parts to skip: abc,variants,presets"
    )
    args = parser.parse_args(argv)
    if args.tiny:
        args.size, args.seconds, args.rungs, args.segment = "640x360", 2.0, "360p,240p", 1.0
        args.presets = "ultrafast"
    args.width, args.height = parse_size(args.size)
    requested = [r for r in args.rungs.split(",") if r]
    rungs, dropped = select_rungs(requested, args.height)
    skip = set(args.skip.split(","))
    print(
        f"ladder bench: source testsrc2 {args.size}@{FPS} + AAC, rungs {[r.name for r in rungs]}"
        f"{f' (dropped {list(dropped)})' if dropped else ''}, preset {args.preset}, "
        f"{args.seconds:g} media-s per run, {psutil.cpu_count()} CPUs, "
        f"load {os.getloadavg()[0]:.2f}",
        flush=True,
    )

    if "abc" not in skip:
        header("(a) bare FFmpeg  (b) hlsdash pipeline  (c) FFmpeg per rendition  [all -re]")
        a = bare(args, rungs, realtime=True)
        print(f"(a) bare ffmpeg      : {a.cpu_per_media_s:.3f} CPU-s/media-s", flush=True)
        b, svc, b_speed = pipeline(args, rungs)
        total = b.cpu_per_media_s + svc
        print(
            f"(b) hlsdash pipeline : ffmpeg {b.cpu_per_media_s:.3f} + service {svc:.3f} = "
            f"{total:.3f} CPU-s/media-s (encoder speed {b_speed:.2f}x, "
            f"{b.media_s:.1f} media-s in {b.wall_s:.1f} s)",
            flush=True,
        )
        c = per_rendition(args, rungs)
        print(
            f"(c) {len(rungs) + 1} processes     : {c.cpu_per_media_s:.3f} CPU-s/media-s",
            flush=True,
        )
        print(
            f"ratios: b/a = {fmt_ratio(total, a.cpu_per_media_s)} (ffmpeg only "
            f"{fmt_ratio(b.cpu_per_media_s, a.cpu_per_media_s)}; goal <= 1.03)   "
            f"c/b = {fmt_ratio(c.cpu_per_media_s, total)}"
        )

    if "variants" not in skip:
        header("cheaper ladder: flat out, PSNR per rung vs a lanczos-scaled source")
        # scaling variants keep x264's own veryfast (hexagon search) so they compare with the
        # naive ladder on scaling alone; the product's default adds diamond search on top
        naive = {"scaler": "bicubic", "cascade": False, "halving": False, "hub": False}
        plain = {"diamond": False}
        variants: list[tuple[str, dict[str, object]]] = [
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
        with tempfile.TemporaryDirectory(prefix="hlsbench-ladder-") as tmp:
            results = []
            for name, kw in variants:
                run, scores = variant(
                    args, rungs, Path(tmp), name.replace("/", "_"), preset=args.preset, **kw
                )
                results.append((name, run, scores))
        base_run, base_scores = results[0][1], results[0][2]
        names = " ".join(f"{r.name:>7}" for r in rungs)
        print(f"{'variant':<31} {'CPU-s/m-s':>9} {'xCPU':>6} {'speed':>6}  PSNR dB {names}")
        for name, run, scores in results:
            deltas = [s - b for s, b in zip(scores, base_scores, strict=True)]
            ok = all(abs(d) <= PSNR_TOLERANCE_DB for d in deltas)
            cheaper = run.cpu_per_media_s / base_run.cpu_per_media_s
            print(
                f"{name:<31} {run.cpu_per_media_s:9.3f} {cheaper:6.3f} {run.speed:5.2f}x  "
                + " ".join(f"{s:7.2f}" for s in scores)
                + (
                    ""
                    if name == results[0][0]
                    else f"  Δ {' '.join(f'{d:+.2f}' for d in deltas)} "
                    f"{'equal quality' if ok else 'QUALITY LOSS'}"
                    f"{', goal <= 0.85x met' if ok and cheaper <= 0.85 else ''}"
                )
            )

    if "presets" not in skip:
        header("largest realtime ladder per preset (flat out, one stream on this machine)")
        for preset in args.presets.split(","):
            best = None
            for drop in range(len(rungs)):
                ladder = rungs[drop:]
                run = bare(args, ladder, realtime=False, preset=preset)
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


if __name__ == "__main__":
    main()
