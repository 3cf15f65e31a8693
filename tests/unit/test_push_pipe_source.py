"""A push stream's pipe input: MPEG-TS (WHIP, the SRT relay) is probed briefly, because with
``-fflags nobuffer`` every probed packet is dropped (5 s of media with FFmpeg's default)."""

from __future__ import annotations

from actors.ingest.sources import MPEGTS_ANALYZE_DURATION_US, pipe_source


def test_mpegts_pipes_are_probed_for_half_a_second_at_most() -> None:
    source = pipe_source("mpegts", 7)
    assert source.url == "pipe:7"
    args = list(source.input_args)
    assert args[args.index("-analyzeduration") + 1] == str(MPEGTS_ANALYZE_DURATION_US)
    assert MPEGTS_ANALYZE_DURATION_US <= 500_000
    # the demuxer option comes before -f/-i like every input option, nobuffer stays
    assert args.index("-analyzeduration") < args.index("-f")
    assert args[args.index("-fflags") + 1] == "nobuffer"


def test_flv_pipes_keep_their_probe() -> None:
    assert "-analyzeduration" not in pipe_source("flv", 7).input_args
