"""A push stream's pipe input: how FFmpeg probes it, by protocol and by where it starts reading.

Mid-stream, MPEG-TS (WHIP, the SRT relay) is probed briefly, because with ``-fflags nobuffer``
every probed packet is dropped (5 s of media with FFmpeg's default: WHIP's first picture came
5.9 s after the publisher started). From a WHIP or RTMP publisher's first byte (a keyframe
first) the probe is 0.2 s and keeps what it read, so that first keyframe is decoded
(``test_whip_stream.py`` and ``test_push_ingest.py`` in tests/integration check it with FFmpeg).
"""

from __future__ import annotations

import trio

from actors.ingest.publisher import IngestProtocol, PublisherFeed, PublisherInfo, pump_into
from actors.ingest.sources import PipeInput, pipe_source


def _option(args: list[str], name: str) -> str | None:
    return args[args.index(name) + 1] if name in args else None


def test_mid_stream_mpegts_pipes_are_not_probed_for_ffmpegs_default_5_s() -> None:
    # SRT's relay copies a publisher that may be anywhere in its GOP: even its first byte
    cases = [(IngestProtocol.SRT, True), (IngestProtocol.SRT, False), (IngestProtocol.WHIP, False)]
    for protocol, from_start in cases:
        args = list(pipe_source(protocol, 7, from_start=from_start).input_args)
        assert int(_option(args, "-analyzeduration") or 0) == 1_000_000
        assert args.index("-analyzeduration") < args.index("-f")
        assert _option(args, "-fflags") == "nobuffer"
        assert args[-2:] == ["-f", "mpegts"]


def test_a_whip_publisher_read_from_its_first_byte_is_probed_briefly_and_nothing_dropped() -> None:
    args = list(pipe_source(IngestProtocol.WHIP, 7, from_start=True).input_args)
    assert _option(args, "-analyzeduration") == "200000"
    assert "-fflags" not in args  # no nobuffer: the probed first IDR is decoded
    assert args[-2:] == ["-f", "mpegts"]


def test_rtmp_keeps_its_short_flv_probe_and_from_the_start_what_it_probed() -> None:
    for from_start in (True, False):
        args = list(pipe_source(IngestProtocol.RTMP, 7, from_start=from_start).input_args)
        assert _option(args, "-analyzeduration") == "200000"
        assert _option(args, "-probesize") == "65536"
        assert _option(args, "-fflags") == (None if from_start else "nobuffer")
        assert args[-2:] == ["-f", "flv"]


async def test_only_the_first_run_on_a_feed_reads_it_from_the_start() -> None:
    feed = PublisherFeed(
        PublisherInfo(IngestProtocol.WHIP, "127.0.0.1:1", connected_since_unix_s=0.0),
        clock=trio.current_time,
    )
    pipe_input = PipeInput(feed, IngestProtocol.WHIP)
    assert "-fflags" not in pipe_input.source(7).input_args
    send, receive = trio.testing.memory_stream_pair()
    feed.end()
    await pump_into(feed, send)  # an encoder run read it: the next one starts mid-stream
    assert "nobuffer" in pipe_input.source(7).input_args
    assert pipe_input.source(7).url == "pipe:7"
    await receive.aclose()
