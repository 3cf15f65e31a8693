"""The ladder bench's FFmpeg runs: the encode spec (the product's own argv builder with bench
knobs), processes run to completion, output descriptors, one flat-out run.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import time
from collections.abc import Sequence

from actors.ffmpeg.command import (
    EncodeSpec,
    Rung,
    build_ffmpeg_argv,
)
from ops.bench.common import (
    FFMPEG,
    children_cpu_seconds,
    lavfi_source,
)
from ops.bench.steady import (
    Run,
    start_encoders,
)
from supervisor.service import ffmpeg_has_filter

HAS_ZSCALE = ffmpeg_has_filter(FFMPEG, "zscale")


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
