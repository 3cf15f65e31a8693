"""An SRT push stream's listener: a relay FFmpeg that turns one SRT publisher into a feed.

libsrt cannot hand connections of one shared port to different streams by ``streamid``, so each
SRT stream listens on its own port (from ``SRT_PORT_RANGE``) with its key as the passphrase: a
publisher with the wrong passphrase never completes the SRT handshake (libsrt rejects it) and no
media reaches anything. The relay copies (``-c copy``, no decoding) to MPEG-TS on its stdout; its
first byte attaches a publisher to the stream's ``PushInput`` like any other protocol, and its
end-of-file (the publisher left, or went silent for ``SRT_READ_TIMEOUT_MS``) ends the feed. Then
it listens again. The stream's encoder reads the feed like any push input, so an encoder restart
or re-plan does not touch the SRT connection.

libsrt closes the listening socket once it has accepted a publisher, so a second publisher
cannot connect while one publishes.

The service checks that a port is free when it gives it to a stream, but another process may bind
it before libsrt does: the relay then exits at once with *Address already in use*, and the
stream's ``SrtPortHolder`` moves it to the next free port of the range (``GET`` shows the new
``publish_url``) instead of retrying a port that stays taken.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

import structlog
import trio

from actors.ffmpeg.process import ProcessHandle, Spawner
from actors.ffmpeg.sources import redact_url
from actors.ingest.publisher import (
    IngestProtocol,
    PublisherFeed,
    PublisherGone,
    PublisherInfo,
    PublisherRefused,
    PushInput,
)
from actors.ingest.sources import srt_listener_source
from actors.pipes import receive_chunks

log = structlog.get_logger(__name__)

# A relay that ends without a publisher (the port is taken, FFmpeg cannot start) is retried after
# this pause rather than in a tight loop.
RELISTEN_PAUSE_S = 1.0
_CLEANUP_TIMEOUT_S = 5.0
_STDERR_LINES_KEPT = 20
_STDERR_DRAIN_S = 1.0  # after its stdout ended, how long the relay's stderr may still come
# what FFmpeg prints when libsrt cannot bind the port (EADDRINUSE)
_PORT_TAKEN_MESSAGE = "Address already in use"


@dataclass(frozen=True, slots=True)
class SrtListen:
    """Where an SRT stream listens (allocated by the service) and its latency setting."""

    bind_host: str
    port: int
    latency_ms: int


class SrtPortTaken(Exception):  # noqa: N818 - reads as "the SRT port is taken"
    """The relay could not bind its port: another process has it."""


class SrtPortHolder(Protocol):
    """The service's side of one SRT stream's port (``supervisor/ingest/srt_ports.py``)."""

    async def move(self, taken: int) -> int | None:
        """``taken`` is bound by another process: the stream's next port, held for it and
        recorded (None when no other port of the range is free)."""

    def release(self, port: int) -> None:
        """The stream ended: another stream may have ``port``."""


def relay_argv(ffmpeg_path: str, push: PushInput, listen: SrtListen) -> list[str]:
    source = srt_listener_source(
        bind_host=listen.bind_host,
        port=listen.port,
        passphrase=push.srt_passphrase,
        latency_ms=listen.latency_ms,
    )
    return [
        ffmpeg_path,
        "-hide_banner",
        "-nostdin",
        "-loglevel",
        "warning",
        *source.input_args,
        "-i",
        source.url,
        "-map",
        "0",
        "-c",
        "copy",
        "-f",
        "mpegts",
        "pipe:1",
    ]


async def run_srt_relay(
    push: PushInput,
    listen: SrtListen,
    *,
    ffmpeg_path: str,
    spawner: Spawner,
    wall_clock: Callable[[], float],
    on_port_taken: Callable[[SrtListen], Awaitable[SrtListen | None]] | None = None,
) -> None:
    """Listen, relay one publisher, listen again — until cancelled (the stream ends).

    ``on_port_taken``: another process has ``listen.port``; returns where to listen instead
    (None: nowhere else, try the same port again after a pause)."""
    while not push.closed:
        try:
            relayed = await _relay_once(push, listen, ffmpeg_path, spawner, wall_clock)
        except SrtPortTaken:
            log.warning("srt_port_taken", port=listen.port)
            moved = await on_port_taken(listen) if on_port_taken is not None else None
            if moved is not None:
                log.info("srt_port_moved", port=moved.port, taken=listen.port)
                listen = moved
                continue
            relayed = False
        except Exception:
            # the relay is the stream's door, not the stream: a fault here (cannot spawn, a bug)
            # is logged and the door reopened; the stream and its players carry on
            log.exception("srt_relay_failed", port=listen.port)
            relayed = False
        if not relayed:
            await trio.sleep(RELISTEN_PAUSE_S)


async def _relay_once(
    push: PushInput,
    listen: SrtListen,
    ffmpeg_path: str,
    spawner: Spawner,
    wall_clock: Callable[[], float],
) -> bool:
    """One relay process; True if a publisher came (and went).

    Raises:
        SrtPortTaken: libsrt could not bind the port.
    """
    key_version = push.key_version
    process = spawner(relay_argv(ffmpeg_path, push, listen), pass_fds=())
    log.info("srt_listening", port=listen.port, pid=process.pid)
    feed: PublisherFeed | None = None
    stderr_lines: deque[str] = deque(maxlen=_STDERR_LINES_KEPT)
    try:
        async with trio.open_nursery() as nursery:
            stderr_done = trio.Event()
            nursery.start_soon(_log_stderr, process, stderr_lines, stderr_done)

            async def relisten_on_key_rotation() -> None:
                while push.key_version == key_version:
                    await push.key_rotated.wait()
                if feed is None:  # nobody connected yet: listen with the new passphrase
                    nursery.cancel_scope.cancel(reason="stream key rotated")

            nursery.start_soon(relisten_on_key_rotation)
            # errors are caught here, in the body: out of the nursery they would be a group
            try:
                async for chunk in receive_chunks(process.stdout):
                    if feed is None:
                        feed = push.attach(
                            PublisherInfo(
                                protocol=IngestProtocol.SRT,
                                address="unknown (libsrt does not report it)",
                                connected_since_unix_s=wall_clock(),
                                codec="mpegts",
                            )
                        )
                        log.info("srt_publisher_connected", port=listen.port)
                    await feed.send(chunk)
            except (PublisherGone, PublisherRefused) as error:
                log.info("srt_publisher_dropped", reason=str(error))
            # stdout ended; the reason (a port taken, say) is on stderr: read it to its end
            with trio.move_on_after(_STDERR_DRAIN_S):
                await stderr_done.wait()
            nursery.cancel_scope.cancel(reason="relay ended")
    finally:
        if feed is not None:
            feed.end()
            log.info("srt_publisher_left", bytes_in=feed.bytes_in)
        with trio.CancelScope(shield=True) as cleanup:
            cleanup.deadline = trio.current_time() + _CLEANUP_TIMEOUT_S
            await process.aclose("srt relay ended")
    if feed is None and any(_PORT_TAKEN_MESSAGE in line for line in stderr_lines):
        raise SrtPortTaken(listen.port)
    return feed is not None


async def _log_stderr(process: ProcessHandle, lines: deque[str], done: trio.Event) -> None:
    """Log the relay's stderr and keep its last lines in ``lines``."""
    async for chunk in receive_chunks(process.stderr):
        for line in chunk.decode("utf-8", "replace").splitlines():
            if line.strip():
                lines.append(line)
                log.info("srt_relay_stderr", line=redact_url(line)[:300])
    done.set()
