"""WHIP ingest (RFC 9725): one WebRTC publisher per push stream, answered by an aiortc child.

``WhipIngest.publish`` does every check that needs no process first — the stream exists and takes
WHIP, the bearer key (constant time, through the stream's push input), the content type, the SDP
itself (``actors.ingest.whip_sdp``), one publisher at a time — and only then spawns the peer child
(``actors.ingest.whip_session``). The session runs in this object's nursery (the service's
lifetime), feeding the stream's input until the publisher leaves, ``DELETE`` ends it, or the
stream drops it; the stream then goes back to ``waiting``.

The HTTP layer (``supervisor/http/whip_routes.py``) only maps ``WhipRefused`` to responses.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
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
)
from actors.ingest.whip_sdp import MAX_OFFER_BYTES, check_whip_offer
from actors.ingest.whip_session import (
    PeerProcess,
    WhipOfferError,
    WhipPeer,
    WhipPeerSettings,
    WhipPeerStatus,
    run_whip_peer,
    spawn_peer,
)

__all__ = ["MAX_OFFER_BYTES", "WhipIngest", "WhipRefused"]
log = structlog.get_logger(__name__)
SDP_CONTENT_TYPE = "application/sdp"
# one aiortc child each (~40 MB RSS); refused with 503 beyond this
DEFAULT_MAX_SESSIONS = 16


class FeedGoneError(Exception):
    """The stream stopped taking this publisher's bytes (deleted, key rotated, FFmpeg gone)."""


class PublisherBusyError(Exception):
    """The stream already has a publisher (or is ending)."""


class WhipFeed(Protocol):
    """Where a session's MPEG-TS goes: the stream's current FFmpeg input."""

    @property
    def runs(self) -> int: ...  # FFmpeg inputs fed so far: it grows when FFmpeg restarts

    async def send(self, data: bytes) -> None: ...  # raises FeedGoneError
    def note_codec(self, codec: str) -> None: ...
    def end(self) -> None: ...


class WhipTarget(Protocol):
    """A push stream that takes WHIP, as the ingest seam exposes it."""

    def check_key(self, candidate: str) -> bool: ...
    @property
    def busy(self) -> bool: ...
    def attach_publisher(self, address: str) -> WhipFeed: ...  # raises PublisherBusyError


# stream id → its WHIP target; LookupError if there is no such stream or it does not take WHIP
WhipLookup = Callable[[str], WhipTarget]


class PushInputTarget:
    """A push stream's ``PushInput`` (the ingest seam, ``actors/ingest/publisher.py``) as a
    ``WhipTarget``: steps 1, 2 and 4 of the seam's docstring; ``_SeamFeed`` is step 3."""

    def __init__(self, push: PushInput, wall_clock: Callable[[], float] = time.time) -> None:
        self._push = push
        self._wall = wall_clock

    def check_key(self, candidate: str) -> bool:
        return self._push.check_key(candidate)

    @property
    def busy(self) -> bool:
        return self._push.busy

    def attach_publisher(self, address: str) -> WhipFeed:
        info = PublisherInfo(
            protocol=IngestProtocol.WHIP, address=address, connected_since_unix_s=self._wall()
        )
        try:
            return _SeamFeed(self._push.attach(info))
        except PublisherRefused as refused:
            raise PublisherBusyError(str(refused)) from None


class _SeamFeed:
    def __init__(self, feed: PublisherFeed) -> None:
        self._feed = feed

    @property
    def runs(self) -> int:
        return self._feed.runs

    async def send(self, data: bytes) -> None:
        try:
            await self._feed.send(data)
        except PublisherGone as gone:
            raise FeedGoneError(str(gone)) from None

    def note_codec(self, codec: str) -> None:
        self._feed.note_codec(codec)

    def end(self) -> None:
        self._feed.end()


class PushDirectory(Protocol):
    """Where WHIP finds a stream's input (the stream service)."""

    def push_input(self, stream_id: str, protocol: IngestProtocol) -> PushInput | None: ...


def push_lookup(directory: PushDirectory) -> WhipLookup:
    """Stream id → its WHIP target, through the service's push inputs."""

    def lookup(stream_id: str) -> WhipTarget:
        push = directory.push_input(stream_id, IngestProtocol.WHIP)
        if push is None:
            raise LookupError(stream_id)
        return PushInputTarget(push)

    return lookup


def peer_settings_from(
    *, host_addresses: tuple[str, ...], udp_ports: tuple[int, int] | None, public_ip: str
) -> WhipPeerSettings:
    """The WEBRTC_* settings as the peer child takes them."""
    return WhipPeerSettings(
        host_addresses=host_addresses,
        udp_ports=f"{udp_ports[0]}-{udp_ports[1]}" if udp_ports else "",
        public_ip=public_ip,
    )


class WhipRefused(Exception):  # noqa: N818 - reads as "the WHIP request is refused"
    """A publish or delete that is answered with an error (status, stable code, message)."""

    def __init__(self, status: int, code: str, message: str, **headers: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers


@dataclass(frozen=True, slots=True)
class WhipAnswer:
    session_id: str
    answer_sdp: str


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header (scheme case-insensitive)."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def is_sdp_content_type(content_type: str | None) -> bool:
    """``application/sdp``, parameters and case ignored."""
    return (content_type or "").split(";", 1)[0].strip().lower() == SDP_CONTENT_TYPE


@dataclass(slots=True)
class _Session:
    session_id: str
    stream_id: str
    remote_address: str
    attached: trio.Event = field(default_factory=trio.Event)
    feed: WhipFeed | None = None
    peer: WhipPeer | None = None
    codec_noted: bool = False
    runs_seen: int = 0

    async def sink(self, chunk: bytes) -> None:
        # the child may write before publish() attached the feed: hold the first bytes
        await self.attached.wait()
        if self.feed is None:
            return
        if not self.codec_noted and self.peer is not None and self.peer.status.connected:
            connected = self.peer.status.connected
            codec = connected.video_codec.lower()
            self.feed.note_codec(
                f"{codec}/{connected.audio_codec.lower()}" if connected.audio_codec else codec
            )
            self.codec_noted = True
        runs = self.feed.runs
        if runs > max(self.runs_seen, 1) and self.peer is not None:
            # FFmpeg restarted under this publisher: a browser sends SPS/PPS + IDR only when
            # asked, and the new decoder can do nothing before them
            self.peer.request_keyframe(f"encoder restarted (input {runs})")
        self.runs_seen = runs
        try:
            await self.feed.send(chunk)
        except FeedGoneError as gone:
            self.feed = None
            if self.peer is not None:
                self.peer.stop(f"the stream dropped the publisher: {gone}")


class WhipIngest:
    """Every WHIP session of the service."""

    def __init__(
        self,
        *,
        peer_settings: WhipPeerSettings,
        lookup: WhipLookup,
        max_sessions: int = DEFAULT_MAX_SESSIONS,
        warm_spare: bool = True,
    ) -> None:
        self.peer_settings = peer_settings
        self._lookup = lookup
        self._max_sessions = max_sessions
        self._sessions: dict[str, _Session] = {}
        self._nursery: trio.Nursery | None = None
        # stream id → why its last WHIP session ended (logs and diagnostics)
        self.last_end_reason: dict[str, str] = {}
        # once a WHIP stream exists (``prepare``), one idle peer child (~60 MB) waits ahead: a
        # publish skips its Python start-up
        self._warm_spare = warm_spare
        self._spare: PeerProcess | None = None

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Own the sessions: cancelling this ends them all (each child stopped and reaped)."""
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                task_status.started()
                try:
                    await trio.sleep_forever()
                finally:
                    self._nursery = None
        finally:
            spare, self._spare = self._spare, None
            if spare is not None:
                await spare.aclose()

    @property
    def spare_pid(self) -> int | None:
        """The idle warm-spare child's pid (None without one)."""
        return self._spare.process.pid if self._spare is not None else None

    def prepare(self) -> None:
        """A WHIP stream was created: have a warm spare ready for its publisher (call from the
        trio thread; a no-op without ``warm_spare`` or once one waits)."""
        if self._nursery is not None:
            self._refill_spare()

    def _refill_spare(self) -> None:
        if self._warm_spare and self._spare is None:
            self._spare = spawn_peer(self.peer_settings)

    def _take_peer(self) -> PeerProcess | None:
        """The warm spare if it is still alive (a new one is started in its place)."""
        spare, self._spare = self._spare, None
        if spare is not None and spare.process.returncode is not None:
            assert self._nursery is not None
            self._nursery.start_soon(spare.aclose)  # died idle: reap it, start afresh
            spare = None
        self._refill_spare()
        return spare

    def session_count(self, stream_id: str | None = None) -> int:
        return len(self.session_ids(stream_id))

    def session_status(self, session_id: str) -> WhipPeerStatus | None:
        """What a running session knows (pid, codecs, byte counts), or None."""
        session = self._sessions.get(session_id)
        return session.peer.status if session is not None and session.peer is not None else None

    def session_ids(self, stream_id: str | None = None) -> list[str]:
        """The running sessions (of one stream, or all)."""
        return [k for k, s in self._sessions.items() if stream_id in {None, s.stream_id}]

    def authorize(
        self, stream_id: str, *, authorization: str | None, content_type: str | None
    ) -> None:
        """The checks before the body is even read: stream, key, content type (404/401/415)."""
        target = self._target(stream_id)
        token = bearer_token(authorization)
        if token is None or not target.check_key(token):
            raise WhipRefused(
                401,
                "unauthorized",
                "a valid stream key is required (Authorization: Bearer <stream_key>)",
                WWW_Authenticate='Bearer realm="hlsdash-whip"',
            )
        if not is_sdp_content_type(content_type):
            raise WhipRefused(
                415, "unsupported_media_type", f"the offer must be sent as {SDP_CONTENT_TYPE}"
            )

    async def publish(
        self,
        stream_id: str,
        *,
        authorization: str | None,
        content_type: str | None,
        offer: bytes,
        remote_address: str,
    ) -> WhipAnswer:
        """Check, spawn, answer. ``WhipRefused`` for every refusal (nothing is left running)."""
        received_unix_s, received_s = time.time(), time.monotonic()
        self.authorize(stream_id, authorization=authorization, content_type=content_type)
        target = self._target(stream_id)
        problem = check_whip_offer(offer)
        if problem is not None:
            raise WhipRefused(problem.status, problem.code, problem.message)
        if target.busy:
            raise WhipRefused(
                409, "publisher_exists", f"stream {stream_id!r} already has a publisher"
            )
        if len(self._sessions) >= self._max_sessions or self._nursery is None:
            raise WhipRefused(
                503, "whip_at_capacity", "too many WHIP sessions; try again", Retry_After="5"
            )
        session = _Session(secrets.token_urlsafe(16), stream_id, remote_address)
        try:
            peer: WhipPeer = await self._nursery.start(
                self._run_session, session, offer.decode(), self._take_peer()
            )
        except WhipOfferError as refused:
            raise WhipRefused(
                400, "offer_refused", f"the offer cannot be answered: {refused}"
            ) from None
        session.peer = peer
        try:
            session.feed = target.attach_publisher(remote_address)
        except PublisherBusyError as busy:
            peer.stop("a second publisher")
            raise WhipRefused(409, "publisher_exists", str(busy)) from None
        finally:
            session.attached.set()
        self._sessions[session.session_id] = session
        log.info(
            "whip_session_started",
            stream_id=stream_id,
            session_id=session.session_id,
            remote=remote_address,
            # when the publish arrived and how long the answer took (ops/bench/ingest_whip.py)
            received_unix_s=round(received_unix_s, 3),
            answer_ms=round((time.monotonic() - received_s) * 1000, 1),
        )
        return WhipAnswer(session.session_id, peer.status.answer_sdp)

    def end(self, stream_id: str, session_id: str) -> None:
        """DELETE on the session URL: the publisher is done. WhipRefused 404 if unknown."""
        session = self._sessions.get(session_id)
        if session is None or session.stream_id != stream_id or session.peer is None:
            raise WhipRefused(404, "session_not_found", "no such WHIP session")
        session.peer.stop("ended by the publisher (DELETE)")

    def _target(self, stream_id: str) -> WhipTarget:
        try:
            return self._lookup(stream_id)
        except LookupError:
            raise WhipRefused(
                404, "stream_not_found", f"no stream {stream_id!r} that takes WHIP"
            ) from None

    async def _run_session(
        self,
        session: _Session,
        offer_sdp: str,
        peer_process: PeerProcess | None,
        *,
        task_status: trio.TaskStatus[WhipPeer],
    ) -> None:
        reason = "not started"
        try:
            reason = await run_whip_peer(
                offer_sdp,
                settings=self.peer_settings,
                media_sink=session.sink,
                peer_process=peer_process,
                task_status=task_status,
            )
        finally:
            if session.feed is not None:
                session.feed.end()
            self._sessions.pop(session.session_id, None)
            self.last_end_reason[session.stream_id] = reason
            log.info(
                "whip_session_ended",
                stream_id=session.stream_id,
                session_id=session.session_id,
                reason=reason,
            )
