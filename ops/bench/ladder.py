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
    Service,
    children_cpu_seconds,
    cpu_seconds,
    fmt_ratio,
    fmt_spread,
    header,
    lavfi_source,
    median,
    parse_size,
    running_service,
)
from ops.bench.steady import (
    Run,
    argv_difference,
    cpu_rates,
    measure_encoders,
    per_round_ratios,
    start_encoders,
    steady_window,
    waiting_on_service,
)
from supervisor.service import ffmpeg_has_filter

HAS_ZSCALE = ffmpeg_has_filter(FFMPEG, "zscale")
ALL_RUNGS = ("1080p", "720p", "480p", "360p", "240p")
PRESETS = ("ultrafast", "superfast", "veryfast")
PSNR_TOLERANCE_DB = 0.3


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
    procs = start_encoders(argvs, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
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


def bare(args: argparse.Namespace, rungs: Sequence[Rung], *, preset: str) -> Run:
    """One flat-out run to the end of ``--seconds`` of source (the presets table)."""
    with output_fds(["/dev/null"] * (len(rungs) + 1)) as fds:
        spec = encode_spec(
            args.width, args.height, rungs, seconds=args.seconds, realtime=False,
            preset=preset, segment_s=args.segment, fds=fds,
        )  # fmt: skip
        return run_processes([(build_ffmpeg_argv(spec), fds)], args.seconds)


def window_frames(args: argparse.Namespace) -> dict[str, int]:
    return {
        "warmup_frames": round(args.warmup * FPS),
        "window_frames": round(args.seconds * FPS),
    }


def steady_bare(args: argparse.Namespace, rungs: Sequence[Rung]) -> tuple[Run, list[str]]:
    """(a): CPU over the window, and the argv (to compare with the service's)."""
    with output_fds(["/dev/null"] * (len(rungs) + 1)) as fds:
        spec = encode_spec(
            args.width, args.height, rungs, seconds=0, realtime=True,  # endless, killed after
            preset=args.preset, segment_s=args.segment, fds=fds,
        )  # fmt: skip
        argv = build_ffmpeg_argv(spec)
        return measure_encoders([(argv, fds)], **window_frames(args)), argv


def steady_per_rendition(args: argparse.Namespace, rungs: Sequence[Rung]) -> Run:
    """(c): one process per rung plus one for audio, each over its own window, rates added."""
    with output_fds(["/dev/null"] * (len(rungs) + 1)) as fds:
        jobs = []
        for rung, fd in zip(rungs, fds, strict=False):
            spec = encode_spec(
                args.width, args.height, [rung], seconds=0, realtime=True,  # endless
                preset=args.preset, segment_s=args.segment, fds=[fd], audio=False,
            )  # fmt: skip
            jobs.append((build_ffmpeg_argv(spec), [fd]))
        audio_fd = fds[-1]
        audio_argv = [
            FFMPEG, "-hide_banner", "-nostdin", "-loglevel", "error",
            "-progress", "pipe:1", "-nostats",
            "-re", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
            "-map", "0:a:0", "-c:a", "aac", "-b:a", "128k", "-ac", "2", "-ar", "48000",
            *cmaf_output_args(audio_fragment_duration_s(0.5), video=False, fd=audio_fd),
        ]  # fmt: skip
        jobs.append((audio_argv, [audio_fd]))
        return measure_encoders(jobs, **window_frames(args))


def steady_pipeline(
    args: argparse.Namespace, service: Service, rungs: Sequence[Rung], stream_id: str
) -> tuple[Run, Run, list[str]]:
    """(b): (FFmpeg, service process) over the window, and the service's FFmpeg command line."""
    source = "lavfi:" + lavfi_source(args.width, args.height)
    service.create(stream_id, source, qualities=[r.name for r in rungs])
    try:
        deadline = time.monotonic() + 60
        while True:
            encoder = service.stream(stream_id)["encoder"]
            assert isinstance(encoder, dict)
            if encoder["pid"] is not None:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{stream_id}: no encoder after 60 s")
            time.sleep(0.05)
        pid = int(encoder["pid"])
        ffmpeg, svc = psutil.Process(pid), service.ps
        cmdline = ffmpeg.cmdline()
        ff_run, svc_run = steady_window(
            waiting_on_service(service, stream_id, pid),
            lambda: (cpu_seconds(ffmpeg), cpu_seconds(svc)),
            time.monotonic,
            **window_frames(args),
        )
    finally:
        service.delete(stream_id)
    return ff_run, svc_run, cmdline


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


@dataclass(frozen=True, slots=True)
class AbcRound:
    a: Run
    b_ffmpeg: Run
    b_service: Run  # the service process itself
    c: Run
    argv_differences: list[tuple[str, str]]  # (a)'s argv vs the service's FFmpeg command line

    @property
    def b(self) -> Run:
        ffmpeg, service = self.b_ffmpeg, self.b_service
        return Run(ffmpeg.cpu_s + service.cpu_s, ffmpeg.wall_s, ffmpeg.media_s)


def abc_round(
    args: argparse.Namespace, service: Service, rungs: Sequence[Rung], stream_id: str
) -> AbcRound:
    a, bare_argv = steady_bare(args, rungs)
    ffmpeg, service_run, service_argv = steady_pipeline(args, service, rungs, stream_id)
    c = steady_per_rendition(args, rungs)
    return AbcRound(a, ffmpeg, service_run, c, argv_difference(bare_argv, service_argv))


def compare_abc(args: argparse.Namespace, rungs: Sequence[Rung]) -> None:
    header(
        f"(a) bare FFmpeg  (b) hlsdash pipeline  (c) FFmpeg per rendition  [all -re; "
        f"{args.warmup:g} media-s warm-up skipped, then {args.seconds:g} media-s measured; "
        f"{args.repeat} round(s), interleaved]"
    )
    rounds: list[AbcRound] = []
    attempts = 0
    with running_service(
        ENCODER_PRESET=args.preset,
        SEGMENT_DURATION=f"{args.segment:g}",
        PART_TARGET="0.5" if args.segment >= 1 else f"{args.segment:g}",
        LOW_LATENCY_HLS="true",
    ) as service:
        while len(rounds) < args.repeat:
            attempts += 1
            try:
                one = abc_round(args, service, rungs, f"ladder{attempts}")
            except RuntimeError as error:
                # e.g. the service's watchdog replaced an encoder starved by a loaded machine:
                # that window measured a restart, not the steady state
                if attempts >= 2 * args.repeat:
                    raise
                print(f"round {len(rounds) + 1}: discarded, measured again ({error})", flush=True)
                continue
            rounds.append(one)
            b, ffmpeg, svc = one.b, one.b_ffmpeg, one.b_service
            print(
                f"round {len(rounds)}: (a) {one.a.cpu_per_media_s:.3f}  "
                f"(b) {b.cpu_per_media_s:.3f} (ffmpeg {ffmpeg.cpu_per_media_s:.3f} + service "
                f"{svc.cpu_per_media_s:.3f}, {ffmpeg.media_s:.1f} media-s in {ffmpeg.wall_s:.1f} s)"
                f"  (c) {one.c.cpu_per_media_s:.3f} CPU-s/media-s; load {os.getloadavg()[0]:.2f}",
                flush=True,
            )
            if len(rounds) == 1:
                print(
                    "(a)'s argv equals the service's FFmpeg command line"
                    if not one.argv_differences
                    else f"WARNING: (a)'s argv differs from the service's: "
                    f"{one.argv_differences[:6]}"
                )
    a_runs = [r.a for r in rounds]
    b_runs = [r.b for r in rounds]
    b_service = [r.b_service.cpu_per_media_s for r in rounds]
    c_runs = [r.c for r in rounds]
    print(f"(a) bare ffmpeg      : {fmt_spread(cpu_rates(a_runs))} CPU-s/media-s")
    print(
        f"(b) hlsdash pipeline : {fmt_spread(cpu_rates(b_runs))} CPU-s/media-s "
        f"(of which service {fmt_spread(b_service)})"
    )
    print(f"(c) {len(rungs) + 1} processes     : {fmt_spread(cpu_rates(c_runs))} CPU-s/media-s")
    b_over_a = per_round_ratios(b_runs, a_runs)
    c_over_b = per_round_ratios(c_runs, b_runs)
    print(
        f"ratios of medians: b/a = "
        f"{fmt_ratio(median(cpu_rates(b_runs)), median(cpu_rates(a_runs)))} (goal <= 1.03; "
        f"per round {min(b_over_a):.3f}–{max(b_over_a):.3f})   c/b = "
        f"{fmt_ratio(median(cpu_rates(c_runs)), median(cpu_rates(b_runs)))} "
        f"(per round {min(c_over_b):.3f}–{max(c_over_b):.3f})"
    )


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
