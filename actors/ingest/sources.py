"""FFmpeg inputs of push streams, built by the service only (never from a client string). Pure.

``source_url`` validation refuses every listener URL a client could send (``sources.py``,
``host_policy.py``); these are the two inputs the service builds itself for push ingest: a pipe
the publisher's bytes arrive on, and (SRT) a libsrt listener on a port the service allocated.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

from actors.ffmpeg.sources import ValidatedSource
from actors.ingest.publisher import IngestProtocol, PublisherFeed, pipe_format

# FFmpeg's read timeout once a publisher is connected (its libsrt ``timeout``; waiting for the
# connection has none): the time from a publisher vanishing to the stream going back to waiting.
# Shorter than the stall watchdog (2 segments), so a vanished publisher is an input ending.
SRT_READ_TIMEOUT_MS = 3000
# FFmpeg's libsrt takes passphrases of 10..64 characters (``ffmpeg -h protocol=srt``)
SRT_MIN_PASSPHRASE_CHARS = 10
SRT_MAX_PASSPHRASE_CHARS = 64


def push_placeholder_source() -> ValidatedSource:
    """A push stream's ``source`` until a publisher comes: every encoder run of a push stream
    replaces it with ``pipe_source`` (nothing ever opens this)."""
    return ValidatedSource(url="pipe:", scheme="pipe", input_args=())


# How much FFmpeg reads of a pipe before it starts decoding, and whether it keeps what it read.
#
# Mid-stream (an SRT relay's copy, an FFmpeg restarted under a publisher already sending) the pipe
# may start anywhere in a GOP: ``-fflags nobuffer`` drops what the probe read (queued, it would be
# a start-up backlog, see ``sources._network_input_args``) and decoding starts at the next
# keyframe. FLV carries the codec configuration (AVC/AAC sequence headers, replayed as the feed's
# preamble) in its first tags, so a short probe is enough; MPEG-TS needs to reach a keyframe's SPS
# to learn the picture size, so it keeps a longer one.
_MID_STREAM_PROBE: dict[str, tuple[str, ...]] = {
    "flv": ("-fflags", "nobuffer", "-analyzeduration", "200000", "-probesize", "65536"),
    "mpegts": ("-fflags", "nobuffer", "-analyzeduration", "1000000"),
}
# From a publisher's first byte the pipe starts with a keyframe: WHIP's child drops every unit
# before the first IDR (and audio before it), so the IDR with its SPS/PPS comes first, then the
# first Opus packet; an RTMP publisher (FFmpeg, OBS) sends its sequence headers and then its first
# keyframe. 0.2 s of media is enough to learn size, frame rate and audio, and those packets are
# kept (no ``nobuffer``), so that first keyframe is decoded: with ``nobuffer`` it was dropped and
# video began at the publisher's next keyframe, a GOP later (browsers send one only when asked):
# WHIP publish → first part 2.5 → 0.9 s, RTMP 1.3–1.7 → 0.4–1.0 s (ops/bench/ingest*.py). The
# backlog this leaves is what was probed, less than the first part takes to fill anyway.
_FROM_START_PROBE: dict[IngestProtocol, tuple[str, ...]] = {
    IngestProtocol.WHIP: ("-analyzeduration", "200000"),
    IngestProtocol.RTMP: ("-analyzeduration", "200000", "-probesize", "65536"),
}


def pipe_source(protocol: IngestProtocol, read_fd: int, *, from_start: bool) -> ValidatedSource:
    """FFmpeg reads what ``protocol``'s feed writes (``pipe_format``) from an inherited pipe fd.

    ``from_start``: FFmpeg reads the publisher from its first byte (the feed's first encoder run),
    not from wherever an earlier FFmpeg stopped reading.
    """
    demuxer = pipe_format(protocol)
    probe = _FROM_START_PROBE.get(protocol) if from_start else None
    return ValidatedSource(
        url=f"pipe:{read_fd}",
        scheme="pipe",
        input_args=(
            "-protocol_whitelist",
            "pipe",
            *(probe if probe is not None else _MID_STREAM_PROBE[demuxer]),
            "-f",
            demuxer,
        ),
    )


@dataclass(frozen=True, slots=True)
class PipeInput:
    """A push stream's encoder input: the publisher's feed, read from a pipe."""

    feed: PublisherFeed
    protocol: IngestProtocol

    def source(self, read_fd: int) -> ValidatedSource:
        """The FFmpeg input for this feed on ``read_fd``; call it before pumping the feed."""
        return pipe_source(self.protocol, read_fd, from_start=self.feed.runs == 0)


def srt_listener_source(
    *, bind_host: str, port: int, passphrase: str, latency_ms: int
) -> ValidatedSource:
    """FFmpeg's libsrt listens on ``bind_host:port`` for one publisher who knows the passphrase.

    The passphrase is the stream key (libsrt cannot route by streamid: one listener per stream);
    it appears only in FFmpeg's argv (redacted from logs and the status API by ``redact_url``).
    """
    if not SRT_MIN_PASSPHRASE_CHARS <= len(passphrase) <= SRT_MAX_PASSPHRASE_CHARS:
        raise ValueError("an SRT passphrase has 10 to 64 characters")
    host = f"[{bind_host}]" if ":" in bind_host else bind_host
    query = (
        f"mode=listener&passphrase={quote(passphrase, safe='')}&pbkeylen=16"
        f"&latency={latency_ms * 1000}&timeout={SRT_READ_TIMEOUT_MS * 1000}"
    )
    return ValidatedSource(
        url=f"srt://{host}:{port}?{query}",
        scheme="srt",
        input_args=("-protocol_whitelist", "srt", "-f", "mpegts"),
        host=bind_host,
        port=port,
    )
