"""A push stream's pipe input: MPEG-TS (WHIP, the SRT relay) is probed briefly, because with
``-fflags nobuffer`` every probed packet is dropped (5 s of media with FFmpeg's default: WHIP's
first picture came 5.9 s after the publisher started)."""

from __future__ import annotations

from actors.ingest.sources import pipe_source


def test_mpegts_pipes_are_not_probed_for_ffmpegs_default_5_s() -> None:
    args = list(pipe_source("mpegts", 7).input_args)
    assert "-analyzeduration" in args
    assert int(args[args.index("-analyzeduration") + 1]) <= 1_000_000
    assert args.index("-analyzeduration") < args.index("-f")
    assert args[args.index("-fflags") + 1] == "nobuffer"
