"""Ladder bench part one: (a) bare FFmpeg vs (b) the hlsdash pipeline vs (c) one FFmpeg per
rendition, over the same steady-state window, rounds interleaved (see ``ops.bench.ladder``).
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass

import psutil

from actors.ffmpeg.command import (
    Rung,
    audio_fragment_duration_s,
    build_ffmpeg_argv,
    cmaf_output_args,
)
from ops.bench.common import (
    FFMPEG,
    FPS,
    Service,
    cpu_seconds,
    fmt_ratio,
    fmt_spread,
    header,
    lavfi_source,
    median,
    running_service,
)
from ops.bench.ladder_ffmpeg import encode_spec, output_fds
from ops.bench.steady import (
    Run,
    argv_difference,
    cpu_rates,
    measure_encoders,
    per_round_ratios,
    steady_window,
    waiting_on_service,
)


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
