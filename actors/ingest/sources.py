"""FFmpeg inputs of push streams, built by the service only (never from a client string). Pure.

``source_url`` validation refuses every listener URL a client could send (``sources.py``,
``host_policy.py``); these are the two inputs the service builds itself for push ingest: a pipe
the publisher's bytes arrive on, and (SRT) a libsrt listener on a port the service allocated.
"""

from __future__ import annotations

from urllib.parse import quote

from actors.ffmpeg.sources import ValidatedSource

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


def pipe_source(demuxer: str, read_fd: int) -> ValidatedSource:
    """FFmpeg reads ``-f <demuxer>`` from an inherited pipe fd.

    ``-fflags nobuffer``: what FFmpeg reads while probing is not queued as a start-up backlog
    (the timeline anchors on the first fragment's arrival, see ``sources._network_input_args``).
    """
    return ValidatedSource(
        url=f"pipe:{read_fd}",
        scheme="pipe",
        input_args=("-protocol_whitelist", "pipe", "-fflags", "nobuffer", "-f", demuxer),
    )


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
