"""The push-ingest seam: how a publisher's media reaches a push stream's FFmpeg.

A *push stream* (``POST /streams`` with ``"ingest": …``) has no source URL. Its actor owns one
``PushInput``; each encoder run waits for a publisher, then spawns FFmpeg reading that publisher's
bytes from a pipe, and when the publisher leaves FFmpeg sees end-of-file, exits, and the stream
goes back to ``waiting`` (the packager timeline ends the epoch; the next publisher begins a new
one, so numbers continue and HLS gets ``EXT-X-DISCONTINUITY``).

How a protocol attaches (RTMP in ``supervisor/ingest/rtmp_server.py`` does exactly this; WHIP
does the same from its HTTP handler):

1. Find the stream and check the key **before anything else**:
   ``push = service.push_input(stream_id)`` then ``push.check_key(candidate)`` (constant time,
   the key is stored hashed). Refuse on ``False`` (RTMP ``NetStream.Publish.BadName``, WHIP 401).
2. ``feed = push.attach(PublisherInfo(protocol=…, address="ip:port", …))``. It raises
   ``PublisherRefused`` when a publisher is already attached (WHIP 409) or the stream is ending.
   Attaching wakes the actor, which spawns FFmpeg with ``-f <pipe_format(protocol)> -i pipe:N``
   (``flv`` for RTMP, ``mpegts`` for WHIP): write *that* container.
3. ``await feed.send(chunk)`` for every piece of the container byte stream, in order (the first
   chunk must be the container's header). ``send`` applies back-pressure (FFmpeg is slow → the
   publisher waits) and raises ``PublisherGone`` once the stream dropped this publisher (FFmpeg
   died, the stream was deleted, the key rotated): then close the publisher's connection.
   ``feed.note_codec("h264/aac")`` once known; byte counts and bitrate are counted by ``send``.
   Send what a decoder needs before anything else (a container header, codec configuration)
   with ``send(data, preamble="<slot>")`` (``"header"``, ``"video-config"``, …; a newer piece
   replaces the older one of its slot): if FFmpeg is restarted under the same publisher (a crash,
   the ladder re-planned to the source) the next FFmpeg reads the preamble first. MPEG-TS
   repeats its tables and needs none.
4. When the publisher leaves (connection closed, WHIP ``DELETE``), call ``feed.end()``
   (synchronous, idempotent; also safe in a ``finally``). FFmpeg then drains what it has and exits.

SRT attaches the same way from inside the actor (``actors/ingest/srt_relay.py``): libsrt cannot
route connections by ``streamid`` to one shared listener, so each SRT stream has a small relay
FFmpeg listening on its own port with the key as the passphrase (``-c copy`` to MPEG-TS on its
stdout); its first byte is a publisher attaching, its end-of-file the publisher leaving.

Pure apart from trio memory channels: no sockets, no processes, no HTTP.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from enum import StrEnum

import trio

# 24 random bytes = 192 bits (the brief asks for >= 128), 32 URL-safe characters: also a valid
# libsrt passphrase (10..79 characters).
STREAM_KEY_BYTES = 24
# Chunks queued between a publisher and FFmpeg's pipe: enough for a burst (an RTMP keyframe in
# 4 KiB chunks) without letting a stuck FFmpeg buffer the publisher's whole stream in memory.
FEED_BUFFER_CHUNKS = 256
# The bitrate shown is measured over this much recent time.
BITRATE_WINDOW_S = 5.0
# A publisher that sent nothing for this long has gone silent (a live encoder sends tens of
# messages a second): the encoder starving then is the input ending, not the encoder failing.
PUBLISHER_SILENT_S = 1.0


class IngestProtocol(StrEnum):
    RTMP = "rtmp"
    SRT = "srt"
    WHIP = "whip"


def pipe_format(protocol: IngestProtocol) -> str:
    """The FFmpeg demuxer (``-f``) for what this protocol's feed writes into the pipe."""
    if protocol is IngestProtocol.RTMP:
        return "flv"
    return "mpegts"  # WHIP (muxed by the WebRTC child), SRT (the relay's copy)


class PublisherRefused(Exception):  # noqa: N818 - reads as "the publisher is refused"
    """``attach`` said no; ``code`` is ``busy`` (someone already publishes) or ``ended``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class PublisherGone(Exception):  # noqa: N818
    """The stream no longer takes this publisher's bytes: close its connection."""


def new_stream_key(stream_id: str, protocol: IngestProtocol = IngestProtocol.RTMP) -> str:
    """A fresh key: ``<stream_id>.<192 random bits>``. The id prefix lets one RTMP listener find
    the stream from the publish name (stream ids never contain ``.``, nor does the random part);
    only the whole key's hash is stored. SRT routes by port, and its passphrase may have at most
    64 characters (FFmpeg's libsrt), so an SRT key is the random part alone (32 characters)."""
    secret = secrets.token_urlsafe(STREAM_KEY_BYTES)
    return secret if protocol is IngestProtocol.SRT else f"{stream_id}.{secret}"


def stream_id_of_key(key: str) -> str:
    """The stream a key claims to belong to (unchecked: ``check_key`` decides)."""
    return key.partition(".")[0]


def hash_key(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()


@dataclass(frozen=True, slots=True)
class StoredKey:
    """What of a push stream's key outlives the process (the registry keeps it): the key's
    SHA-256, and for SRT the passphrase itself, because libsrt needs it to listen again. Like a
    source URL's credentials: stored, never shown (not in ``repr``)."""

    key_sha256: bytes = field(repr=False)
    srt_passphrase: str | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class PublisherInfo:
    """Who publishes, as the status API shows it."""

    protocol: IngestProtocol
    address: str  # "ip:port" of the publisher
    connected_since_unix_s: float
    codec: str | None = None  # "h264/aac" once known


@dataclass(frozen=True, slots=True)
class PublisherSnapshot:
    """What ``GET /streams/{id}`` shows about the current publisher."""

    info: PublisherInfo
    bytes_in: int
    bitrate_in_bps: int | None


class ByteRate:
    """Bits per second over the last ``window_s`` (pure; the clock is injected)."""

    def __init__(self, clock: Callable[[], float], window_s: float = BITRATE_WINDOW_S) -> None:
        self._clock = clock
        self._window_s = window_s
        self._samples: deque[tuple[float, int]] = deque()
        self._first_at: float | None = None

    def add(self, byte_count: int) -> None:
        now = self._clock()
        if self._first_at is None:
            self._first_at = now
        self._samples.append((now, byte_count))
        self._trim(now)

    def _trim(self, now: float) -> None:
        while self._samples and self._samples[0][0] < now - self._window_s:
            self._samples.popleft()

    def bits_per_second(self) -> int | None:
        if self._first_at is None:
            return None
        now = self._clock()
        self._trim(now)
        span_s = min(self._window_s, now - self._first_at)
        if span_s <= 0:
            return None
        return math.floor(sum(n for _, n in self._samples) * 8 / span_s)


class PublisherFeed:
    """One publisher's byte stream into the stream's current FFmpeg input.

    The publisher side calls ``send``/``note_codec``/``end``; the actor side ``chunks``/``drop``.
    """

    def __init__(
        self,
        info: PublisherInfo,
        *,
        clock: Callable[[], float],
        on_bytes: Callable[[int], None] | None = None,
        buffer_chunks: int = FEED_BUFFER_CHUNKS,
    ) -> None:
        self.info = info
        self.bytes_in = 0
        self._clock = clock
        self._last_bytes_at = clock()
        self._rate = ByteRate(clock)
        self._on_bytes = on_bytes
        self._send, self._receive = trio.open_memory_channel[bytes](buffer_chunks)
        self.ended = trio.Event()  # the publisher left (end()) or was dropped
        self.dropped_reason: str | None = None
        # what a second FFmpeg on this same publisher must read first (an FFmpeg restart, a ladder
        # re-plan): the container header and codec configuration, by slot (see ``send``)
        self._preamble: dict[str, bytes] = {}
        self.runs = 0  # FFmpeg inputs this feed has been pumped into

    # ---------------------------------------------------------------- publisher side

    async def send(self, data: bytes, *, preamble: str | None = None) -> None:
        """Queue ``data`` for FFmpeg (waits while the queue is full).

        ``preamble="<slot>"`` marks bytes a decoder needs before any later byte makes sense (FLV:
        the file header, ``onMetaData``, the AVC/AAC sequence headers): they are kept (the newest
        of each slot, in first-seen order) and written again at the start of the next FFmpeg's
        pipe if FFmpeg is restarted under this publisher.

        Raises:
            PublisherGone: the stream dropped this publisher (or ``end`` was called).
        """
        if not data:
            return
        if preamble is not None:
            self._preamble[preamble] = data
        try:
            await self._send.send(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            raise PublisherGone(self.dropped_reason or "the publisher has ended") from None
        self.bytes_in += len(data)
        self._last_bytes_at = self._clock()
        self._rate.add(len(data))
        if self._on_bytes is not None:
            self._on_bytes(len(data))

    def note_codec(self, codec: str) -> None:
        self.info = replace(self.info, codec=codec)

    def end(self) -> None:
        """The publisher left: FFmpeg gets end-of-file after what is queued. Idempotent."""
        self._send.close()
        self.ended.set()

    # ---------------------------------------------------------------- actor side

    async def receive(self) -> bytes | None:
        """The next piece the publisher sent; None once it ended. (A plain method, not an async
        generator: a pump cancelled half-way leaves nothing to finalize, and the next FFmpeg on
        the same publisher continues where it stopped.)"""
        try:
            return await self._receive.receive()
        except (trio.EndOfChannel, trio.ClosedResourceError):
            return None

    @property
    def preamble(self) -> bytes:
        return b"".join(self._preamble.values())

    @property
    def silent(self) -> bool:
        """Nothing came from the publisher for ``PUBLISHER_SILENT_S``."""
        return self._clock() - self._last_bytes_at >= PUBLISHER_SILENT_S

    def drop(self, reason: str) -> None:
        """The stream stops taking this publisher's bytes; its next ``send`` raises."""
        if self.dropped_reason is None:
            self.dropped_reason = reason
        self._receive.close()
        self._send.close()
        self.ended.set()

    def snapshot(self) -> PublisherSnapshot:
        return PublisherSnapshot(
            info=self.info, bytes_in=self.bytes_in, bitrate_in_bps=self._rate.bits_per_second()
        )


class PushInput:
    """A push stream's input: its key (stored hashed), and at most one publisher at a time."""

    def __init__(
        self,
        stream_id: str,
        protocol: IngestProtocol,
        key: str | StoredKey,
        *,
        clock: Callable[[], float] = time.monotonic,
        on_bytes: Callable[[int], None] | None = None,
    ) -> None:
        """``key``: a new key, or what the registry stored of one (a resumed stream keeps the
        key its publishers were given before the restart).

        Raises:
            ValueError: a stored key that is not a SHA-256 digest, or an SRT key without its
                passphrase (or another protocol's with one).
        """
        self.stream_id = stream_id
        self.protocol = protocol
        stored = _checked(protocol, key) if isinstance(key, StoredKey) else _stored(protocol, key)
        self._key_hash = stored.key_sha256
        # SRT only: libsrt needs the passphrase itself for each relay listener (never shown
        # again, redacted from logs); other protocols keep only the hash.
        self._srt_passphrase = stored.srt_passphrase
        self._clock = clock
        self._on_bytes = on_bytes
        self.bytes_total = 0  # every publisher's bytes, for hlsdash_ingest_bytes_total
        self._current: PublisherFeed | None = None
        # unbounded, but attach() lets at most one live feed in; ended ones are skipped
        self._pending_send, self._pending_receive = trio.open_memory_channel[PublisherFeed](
            math.inf
        )
        self.publishes = 0  # publishers accepted so far
        self.closed = False
        self.key_version = 0  # bumped by rotate_key (an SRT listener must re-listen)
        self.key_rotated = trio.Event()

    @property
    def stored_key(self) -> StoredKey:
        """What the registry keeps of the current key."""
        return StoredKey(self._key_hash, self._srt_passphrase)

    # ---------------------------------------------------------------- keys

    def check_key(self, candidate: str) -> bool:
        """Constant-time comparison of the candidate's hash with the stored hash."""
        return hmac.compare_digest(hash_key(candidate), self._key_hash)

    def rotate_key(self, key: str | None = None) -> str:
        """Issue a new key (returned once; ``key``: one made by ``new_stream_key`` beforehand,
        e.g. stored in the registry first). A current publisher keeps publishing; the next
        connection needs the new key."""
        key = new_stream_key(self.stream_id, self.protocol) if key is None else key
        stored = _stored(self.protocol, key)
        self._key_hash = stored.key_sha256
        self._srt_passphrase = stored.srt_passphrase
        self.key_version += 1
        self.key_rotated.set()
        self.key_rotated = trio.Event()
        return key

    @property
    def srt_passphrase(self) -> str:
        if self._srt_passphrase is None:
            raise RuntimeError("only an SRT stream has a passphrase")
        return self._srt_passphrase

    # ---------------------------------------------------------------- publishers

    @property
    def reconnects(self) -> int:
        """Publishers after the first (each one continues the same timeline)."""
        return max(0, self.publishes - 1)

    def attach(self, info: PublisherInfo) -> PublisherFeed:
        """Take ``info``'s publisher as the stream's input (the key was checked already).

        Raises:
            PublisherRefused: ``busy`` while another publisher is attached, ``ended`` when the
                stream is stopping.
        """
        if self.closed:
            raise PublisherRefused("ended", f"stream {self.stream_id!r} is ending")
        if self.busy:
            raise PublisherRefused("busy", f"stream {self.stream_id!r} already has a publisher")
        feed = PublisherFeed(info, clock=self._clock, on_bytes=self._count_bytes)
        self._pending_send.send_nowait(feed)
        self._current = feed
        self.publishes += 1
        return feed

    def _count_bytes(self, byte_count: int) -> None:
        self.bytes_total += byte_count
        if self._on_bytes is not None:
            self._on_bytes(byte_count)

    @property
    def busy(self) -> bool:
        return self._current is not None and not self._current.ended.is_set()

    async def next_publisher(self) -> PublisherFeed:
        """Actor side: wait for the next attached publisher that has not left already.

        Raises:
            trio.EndOfChannel: the input was closed (the stream is ending).
        """
        while True:
            feed = await self._pending_receive.receive()
            if not feed.ended.is_set():
                return feed

    def publisher(self) -> PublisherSnapshot | None:
        """The current publisher, or None while waiting."""
        feed = self._current
        if feed is None or feed.ended.is_set():
            return None
        return feed.snapshot()

    def close(self, reason: str) -> None:
        """The stream ends: refuse new publishers and drop the current one."""
        self.closed = True
        if self._current is not None:
            self._current.drop(reason)
        self._pending_send.close()


def _stored(protocol: IngestProtocol, key: str) -> StoredKey:
    return StoredKey(hash_key(key), key if protocol is IngestProtocol.SRT else None)


def _checked(protocol: IngestProtocol, stored: StoredKey) -> StoredKey:
    if len(stored.key_sha256) != hashlib.sha256().digest_size:
        raise ValueError("a stored stream key hash is a SHA-256 digest (32 bytes)")
    if (protocol is IngestProtocol.SRT) != (stored.srt_passphrase is not None):
        raise ValueError("an SRT stream (and only an SRT stream) keeps its passphrase")
    return stored


async def pump_into(feed: PublisherFeed, pipe: trio.abc.SendStream) -> None:
    """Actor side: copy the publisher's bytes into FFmpeg's input pipe until the publisher
    ends, then close the pipe (FFmpeg sees end-of-file). If FFmpeg stops reading (it exited),
    the publisher is dropped so its connection closes. A feed pumped before (FFmpeg restarted
    under the same publisher) first gets its preamble again."""
    feed.runs += 1
    try:
        if feed.runs > 1 and feed.preamble:
            await pipe.send_all(feed.preamble)
        while (chunk := await feed.receive()) is not None:
            await pipe.send_all(chunk)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        feed.drop("the encoder stopped reading")
    finally:
        with trio.CancelScope(shield=True):
            await pipe.aclose()
