"""The RTMP listener: one trio TCP listener (``RTMP_PORT``) for every push stream.

Each connection runs the pure ``rtmp.session.ServerSession``; at ``publish`` the publish name (the
stream key, ``<stream_id>.<secret>``) is checked against the stream's hashed key in constant time
*before* anything else happens, and only then is the publisher attached to the stream's
``PushInput`` (which wakes the actor, which spawns FFmpeg reading ``-f flv`` from a pipe). Audio,
video and ``onMetaData`` messages go on as FLV tags.

A connection that is not an RTMP publisher (random bytes, an HTTP request, a handshake that stops
half-way, a player) is closed on its own; nothing it does reaches any stream, and one connection's
failure — even a bug — is logged and ends that connection only.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from typing import Protocol

import structlog
import trio

from actors.ingest.publisher import (
    IngestProtocol,
    PublisherFeed,
    PublisherGone,
    PublisherInfo,
    PublisherRefused,
    PushInput,
    stream_id_of_key,
)
from supervisor.ingest.rtmp import flv
from supervisor.ingest.rtmp.session import (
    Media,
    Metadata,
    PublishEnded,
    PublishRequested,
    ServerSession,
)

log = structlog.get_logger(__name__)

RECEIVE_BYTES = 64 * 1024
# A publisher writes each RTMP chunk on its own (FFmpeg: ~175 TCP segments/s at 3 Mb/s 720p30),
# and every wake-up costs the event loop ~0.2 ms of CPU here (read, parse, channel hand-over, pipe
# write). Once a publisher is accepted, the socket's SO_RCVLOWAT makes the kernel wake us only
# when enough has arrived: while a message is in progress, what it still lacks
# (``ServerSession.bytes_wanted``: its chunks come back to back, so waiting for them costs no
# latency); between messages, COALESCE_S worth of the publisher's measured rate, so small audio
# messages ride along with the next video message (≤ one frame interval later) instead of
# waking us each. No timer (a trio timeout firing costs more than a read). Measured with
# ops/bench/rtmp_listener.py (CPU, per-tag delay) and ops/bench/ingest.py; capped so a keyframe
# is read in pieces.
MAX_LOW_WATER_BYTES = 64 * 1024
COALESCE_S = 0.01
MAX_COALESCE_BYTES = 16 * 1024
RATE_WINDOW_S = 1.0
# From accept to an accepted publish: a real publisher needs a few round trips; a connection that
# trickles (or stops half-way through the handshake) is closed after this.
SETUP_TIMEOUT_S = 10.0
# A publishing connection that sends nothing this long is dead (an encoder sends ≥ 10 tags/s).
IDLE_TIMEOUT_S = 15.0
SEND_TIMEOUT_S = 10.0


class PushDirectory(Protocol):
    """Where the listener finds a stream's input (the stream service)."""

    def push_input(self, stream_id: str, protocol: IngestProtocol) -> PushInput | None: ...


def _peer(stream: trio.SocketStream) -> str:
    try:
        host, port, *_ = stream.socket.getpeername()
    except OSError:
        return "unknown"
    return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"


class RtmpServer:
    def __init__(
        self, directory: PushDirectory, *, wall_clock: Callable[[], float] = time.time
    ) -> None:
        self._directory = directory
        self._wall = wall_clock
        self.connections = 0
        self.refused = 0

    async def serve(
        self,
        host: str,
        port: int,
        *,
        task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Listen until cancelled; ``task_status.started(bound_port)``."""
        listeners = await trio.open_tcp_listeners(port, host=host)
        bound = listeners[0].socket.getsockname()[1]
        log.info("rtmp_listening", host=host, port=bound)
        task_status.started(bound)
        await trio.serve_listeners(self.handle, listeners)

    async def handle(self, stream: trio.SocketStream) -> None:
        """One connection; never raises (a failure here must not end the listener)."""
        self.connections += 1
        peer = _peer(stream)
        try:
            await self._converse(stream, peer)
        except (ValueError, PublisherGone) as error:
            # not RTMP, not a publisher, a broken chunk stream, or the stream dropped us
            self.refused += 1
            log.info("rtmp_connection_closed", peer=peer, reason=str(error)[:200])
        except (trio.BrokenResourceError, trio.ClosedResourceError, trio.TooSlowError) as error:
            log.info("rtmp_connection_lost", peer=peer, reason=type(error).__name__)
        except Exception:
            log.exception("rtmp_connection_failed", peer=peer)
        finally:
            with trio.move_on_after(1) as cleanup:
                cleanup.shield = True
                await stream.aclose()

    async def _converse(self, stream: trio.SocketStream, peer: str) -> None:
        session = ServerSession(server_time_ms=0)
        feed: PublisherFeed | None = None
        setup_deadline = trio.current_time() + SETUP_TIMEOUT_S
        reader: CoalescingReader | None = None
        try:
            while True:
                if reader is None:
                    with trio.fail_at(setup_deadline):
                        data = await stream.receive_some(RECEIVE_BYTES)
                else:
                    data = await reader.receive(
                        trio.current_time() + IDLE_TIMEOUT_S, session.bytes_wanted()
                    )
                if not data:
                    return
                events = session.receive(data)
                ended = False
                # the tags of one read go to FFmpeg as one piece: one channel hand-over and one
                # pipe write per socket read instead of one per audio/video message
                batch = bytearray()
                for event in events:
                    match event:
                        case PublishRequested(name=name):
                            feed = self._admit(session, name, peer)
                            if feed is None:
                                await self._flush(stream, session)
                                return
                            # the header, metadata and codec configuration are the preamble
                            # a restarted FFmpeg on this same publisher reads again first
                            await feed.send(flv.FLV_HEADER, preamble="header")
                        case Metadata(timestamp_ms=ts, script_body=body):
                            assert feed is not None
                            await _send_batch(feed, batch)
                            await feed.send(flv.tag(flv.TAG_SCRIPT, ts, body), preamble="metadata")
                        case Media(tag_type=tag_type, timestamp_ms=ts, payload=payload):
                            assert feed is not None
                            _note_codec(feed, tag_type, payload)
                            slot = flv.codec_configuration_slot(tag_type, payload)
                            if slot is None:
                                batch += flv.tag(tag_type, ts, payload)
                            else:
                                await _send_batch(feed, batch)
                                await feed.send(flv.tag(tag_type, ts, payload), preamble=slot)
                        case PublishEnded():
                            ended = True
                if feed is not None:
                    await _send_batch(feed, batch)
                    if reader is None:
                        reader = CoalescingReader(stream.socket)
                await self._flush(stream, session)
                if ended or session.refused:
                    return
        finally:
            if feed is not None:
                feed.end()
                log.info("rtmp_publisher_left", peer=peer, bytes_in=feed.bytes_in)

    async def _flush(self, stream: trio.SocketStream, session: ServerSession) -> None:
        out = session.outgoing()
        if out:
            with trio.fail_after(SEND_TIMEOUT_S):
                await stream.send_all(out)

    def _admit(self, session: ServerSession, name: str, peer: str) -> PublisherFeed | None:
        """Check the key, then attach; None (and the refusal queued) when refused."""
        stream_id = stream_id_of_key(name)
        push = self._directory.push_input(stream_id, IngestProtocol.RTMP)
        if push is None or not push.check_key(name):
            self.refused += 1
            log.warning("rtmp_publish_refused", peer=peer, stream_id=stream_id[:64], reason="key")
            session.refuse_publish(
                "NetStream.Publish.BadName", "unknown stream or wrong stream key"
            )
            return None
        try:
            feed = push.attach(
                PublisherInfo(
                    protocol=IngestProtocol.RTMP,
                    address=peer,
                    connected_since_unix_s=self._wall(),
                )
            )
        except PublisherRefused as refused:
            self.refused += 1
            log.warning("rtmp_publish_refused", peer=peer, stream_id=stream_id, reason=refused.code)
            session.refuse_publish("NetStream.Publish.BadConnection", str(refused))
            return None
        session.accept_publish()
        log.info("rtmp_publisher_accepted", peer=peer, stream_id=stream_id)
        return feed


class CoalescingReader:
    """Reads a publishing connection in as few wake-ups as its messages allow (see
    ``COALESCE_S``)."""

    def __init__(self, sock: trio.socket.SocketType) -> None:
        self._sock = sock
        self._fd = sock.fileno()
        self._low_water = 1  # the socket's default SO_RCVLOWAT
        self._between_messages = 1  # bytes to wait for when no message is in progress
        self._window_bytes = 0
        self._window_start = trio.current_time()

    async def receive(self, idle_deadline: float, wanted_bytes: int) -> bytes:
        """What has arrived (b"" at end of stream) once ``wanted_bytes`` are there (0: between
        messages, see ``COALESCE_S``) or the connection ends. Raises TooSlowError at
        ``idle_deadline``, BrokenResourceError when the connection breaks."""
        wanted = wanted_bytes or self._between_messages
        low_water = max(1, min(wanted, MAX_LOW_WATER_BYTES))
        if low_water != self._low_water:
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, low_water)
            self._low_water = low_water
        while True:
            with trio.fail_at(idle_deadline):
                await trio.lowlevel.wait_readable(self._sock)
            try:
                # the trio socket's own recv would first try to read, taking any byte; a plain
                # non-blocking read after the kernel said the low-water mark is reached
                data = os.read(self._fd, RECEIVE_BYTES)
            except BlockingIOError:
                continue  # woken without data (spurious): wait again
            except OSError as error:
                raise trio.BrokenResourceError(str(error)) from error
            self._measure(len(data))
            return data

    def _measure(self, byte_count: int) -> None:
        self._window_bytes += byte_count
        now = trio.current_time()
        elapsed_s = now - self._window_start
        if elapsed_s >= RATE_WINDOW_S:
            rate = self._window_bytes / elapsed_s
            self._between_messages = max(1, min(MAX_COALESCE_BYTES, int(rate * COALESCE_S)))
            self._window_bytes = 0
            self._window_start = now


async def _send_batch(feed: PublisherFeed, batch: bytearray) -> None:
    if batch:
        await feed.send(bytes(batch))
        batch.clear()


def _note_codec(feed: PublisherFeed, tag_type: int, payload: bytes) -> None:
    """Fill in ``codec`` ("h264/aac") from the first video and audio tags."""
    current = feed.info.codec or "/"
    video, _, audio = current.partition("/")
    if tag_type == flv.TAG_VIDEO and not video:
        video = flv.video_codec(payload) or "unknown"
    elif tag_type == flv.TAG_AUDIO and not audio:
        audio = flv.audio_codec(payload) or "unknown"
    else:
        return
    feed.note_codec(f"{video}/{audio}")
