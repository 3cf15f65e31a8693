"""The CDN origin's listener: plain HTTP/1.1 reads answered here, everything else by Hypercorn.

Why not Hypercorn for everything: measured with wrk (-c64, keep-alive), Hypercorn + h11 + ASGI
tops out at ~1,450 req/s for a 500 KB segment already in memory (0.19× nginx), and waking 2,000
blocking playlist reloads took 290 ms at p99 — both costs were the per-response Python of h11 and
the ASGI message plumbing (py-spy: ~90 % of the time), not finding the bytes. Players and CDNs send
``GET``/``HEAD``/``OPTIONS`` over HTTP/1.1 and nothing else, so those are parsed here
(``http1.parse_request_head``) and answered straight from :class:`OriginApp.respond`, the same
function the ASGI path calls. Any other request (HTTP/2 prior knowledge or ``Upgrade: h2c``,
HTTP/1.0, a body, a malformed head) hands the connection, with the bytes already read, to
Hypercorn's own per-connection server for the rest of its life. With TLS configured the whole
port is Hypercorn's (ALPN picks h2 there).

Every connection is bounded (``origin_limits``): a whole request head within the head timeout, an
idle keep-alive connection closed after the idle timeout, a client that stops reading closed
after the send timeout without progress, and at most ``max_connections`` at once (503 beyond).
And every connection is its own failure domain: an error in one (a streamed body's generator
raising, say) is logged and closes that connection — with a 500 if nothing was sent yet — and
the listener and every other connection carry on.
"""

from __future__ import annotations

import contextlib
import errno
import math
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Final, cast

import structlog
import trio
from hypercorn.config import Config
from hypercorn.trio import serve as hypercorn_serve
from hypercorn.trio.statsd import StatsdLogger
from hypercorn.trio.tcp_server import TCPServer
from hypercorn.trio.worker_context import WorkerContext
from hypercorn.typing import AppWrapper, ConnectionState, Framework
from hypercorn.utils import repr_socket_addr, wrap_app

from supervisor.config import Settings
from supervisor.http import http1, origin_core
from supervisor.http.connection_cap import ConnectionCap
from supervisor.http.origin import OriginApp
from supervisor.http.origin_core import OriginResponse
from supervisor.http.origin_limits import OriginLimits, origin_limits, raise_nofile_limit
from supervisor.http.origin_sockets import (
    RECEIVE_BYTES,
    SEND_ERRORS,
    ClientGone,
    PrefixedStream,
    listening_sockets,
    send_with_progress_deadline,
    write_now,
)
from supervisor.http.playback import StreamedResponse
from supervisor.http.server import hypercorn_config

log = structlog.get_logger(__name__)

# accept(2) errors that mean "out of something for now": wait and accept again (as trio does)
_ACCEPT_CAPACITY_ERRNOS: Final = frozenset(
    {errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS}
)
_ACCEPT_RETRY_S: Final = 0.1
# bounds on cleanup that must not hold a connection's task forever
_CLOSE_TIMEOUT_S: Final = 1.0
# the request headers an origin response depends on (CORS is "*" for everyone)
_VARYING_HEADERS = ("range", "if-range", "if-none-match", "accept-encoding")


@dataclass(eq=False, slots=True)
class _Waiter:
    stream: trio.SocketStream
    keep_alive: bool
    served: bool = False  # the shared answer was written (or tried) for it
    broken: bool = False
    unsent: bytes | memoryview = b""


@dataclass(eq=False, slots=True)
class _Flight:
    """Identical blocking reloads in flight: the first one asks, the rest wait for its answer."""

    waiters: list[_Waiter] = field(default_factory=list)
    done: trio.Event = field(default_factory=trio.Event)
    route: str = ""
    status: int = 0


@dataclass(eq=False, slots=True)
class _Connection:
    stream: trio.SocketStream
    peer: str | None = None  # the client's address (viewers are counted per peer)
    method: str = ""  # of the request being answered ("" between requests)
    response_started: bool = False  # a byte of its response was written (or handed to the kernel)


class OriginServer:
    """Accepts connections; serves plain reads itself and hands the rest to Hypercorn."""

    def __init__(self, app: OriginApp, config: Config, limits: OriginLimits | None = None) -> None:
        self._app = app
        self._config = config
        self._limits = limits or OriginLimits()
        config.set_statsd_logger_class(StatsdLogger)
        self._asgi: AppWrapper = wrap_app(cast("Framework", app), config.wsgi_max_body_size, "asgi")
        self._context = WorkerContext(None)
        self._date = http1.HttpDate()
        # connections waiting for their next request: closed at once on shutdown
        self._idle: set[trio.CancelScope] = set()
        self._flights: dict[tuple[str | None, ...], _Flight] = {}
        self._closing = False
        self._cap = ConnectionCap(listener="origin", max_connections=self._limits.max_connections)

    async def serve(
        self,
        sockets: list[trio.socket.SocketType],
        shutdown_trigger: Callable[[], Awaitable[None]],
        *,
        task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        listeners = [trio.SocketListener(sock) for sock in sockets]
        urls = [f"http://{repr_socket_addr(s.family, s.getsockname())}" for s in sockets]
        async with trio.open_nursery() as connections:
            async with trio.open_nursery() as accepting:
                for listener in listeners:
                    accepting.start_soon(self._accept, listener, connections)
                task_status.started(urls)
                await shutdown_trigger()
                accepting.cancel_scope.cancel("origin shutting down")
            # Graceful: idle keep-alive connections close now, requests in flight get a deadline.
            self._closing = True
            for scope in list(self._idle):
                scope.cancel("origin shutting down")
            await self._context.terminated.set()
            connections.cancel_scope.deadline = trio.current_time() + self._config.graceful_timeout

    # ------------------------------------------------------------------ accepting, the cap

    async def _accept(self, listener: trio.SocketListener, connections: trio.Nursery) -> None:
        async with listener:
            while True:
                try:
                    stream = await listener.accept()
                except OSError as error:
                    if error.errno not in _ACCEPT_CAPACITY_ERRNOS:
                        raise
                    # out of descriptors for a moment: the backlog waits, streams keep theirs
                    self._cap.note_refusal(errno.errorcode.get(error.errno or 0, str(error)))
                    await trio.sleep(_ACCEPT_RETRY_S)
                    continue
                if self._cap.admit(stream):  # else answered 503 and closed
                    connections.start_soon(self._connection, stream)

    @property
    def open_connections(self) -> int:
        return self._cap.open_connections

    # ------------------------------------------------------------------ one connection

    async def _connection(self, stream: trio.SocketStream) -> None:
        connection = _Connection(stream, peer=_peer_address(stream))
        handed_over = False
        try:
            handed_over = await self._requests(connection)
        except Exception:  # one connection's failure is that connection's, never the origin's
            self._connection_failed(connection)
        finally:
            self._cap.release()
            if not handed_over:
                with (
                    trio.CancelScope(shield=True),
                    trio.move_on_after(_CLOSE_TIMEOUT_S),
                    contextlib.suppress(*SEND_ERRORS),
                ):
                    await stream.aclose()

    def _connection_failed(self, connection: _Connection) -> None:
        error_id = secrets.token_hex(6)
        log.exception(
            "origin_connection_error",
            error_id=error_id,
            response_started=connection.response_started,
        )
        if connection.response_started or not connection.method:
            return  # mid-response: closing is the only honest signal left
        answer = origin_core.error_json(
            500,
            "internal_error",
            f"internal error (error id {error_id})",
            head=connection.method == "HEAD",
        )
        head = http1.encode_response_head(
            answer.status,
            answer.headers,
            date=self._date.at(time.time()),
            body_length=len(answer.body),
            keep_alive=False,
        )
        with contextlib.suppress(OSError):
            write_now(connection.stream, head, answer.body)  # best effort, never waits

    async def _requests(self, connection: _Connection) -> bool:
        """Serve requests until the connection ends; True once Hypercorn owns it."""
        stream = connection.stream
        buffer = b""
        between_requests = False  # a fresh connection waits for its first head, not idle
        while not self._closing:
            head_end = buffer.find(http1.HEAD_END)
            if head_end < 0:
                buffer, head_end = await self._read_head(stream, buffer, between_requests)
                if head_end == -1:
                    return False  # closed, too slow, idle too long, or shutting down
                if head_end == -2:
                    await self._hand_over(stream, buffer)
                    return True
            else:
                # a pipelined request: nothing in this loop would yield to other connections
                await trio.lowlevel.checkpoint()
            request = http1.parse_request_head(buffer[:head_end])
            if request is http1.HAND_OVER:
                await self._hand_over(stream, buffer)
                return True
            assert isinstance(request, http1.RequestHead)
            buffer = buffer[head_end + len(http1.HEAD_END) :]
            connection.method, connection.response_started = request.method, False
            try:
                await self._answer(connection, request)
            except ClientGone:
                return False
            connection.method = ""
            if not request.keep_alive:
                return False
            between_requests = True
        return False

    async def _read_head(
        self, stream: trio.SocketStream, buffer: bytes, between_requests: bool
    ) -> tuple[bytes, int]:
        """Read until a whole head is buffered, within the head (or idle) timeout.

        A new connection and a started head get ``head_timeout_s`` for the whole head, however
        slowly its bytes trickle in; a keep-alive connection waits ``idle_timeout_s`` for the
        first byte of its next request, then the head timeout runs from that byte.
        Returns (buffer, end of head), or end -1 to close the connection, -2 to hand it over.
        """
        limits = self._limits
        waiting_s = (
            limits.idle_timeout_s if between_requests and not buffer else limits.head_timeout_s
        )
        scope = trio.CancelScope(deadline=trio.current_time() + waiting_s)
        # only a connection with nothing pending is idle: a half-sent head survives shutdown
        if not buffer:
            self._idle.add(scope)
        try:
            with scope:
                while True:
                    if buffer.startswith(b"PRI ") or len(buffer) > http1.MAX_HEAD_BYTES:
                        return buffer, -2
                    try:
                        data = await stream.receive_some(RECEIVE_BYTES)
                    except SEND_ERRORS:
                        return buffer, -1
                    if not data:
                        return buffer, -1
                    if not buffer:
                        self._idle.discard(scope)
                        if between_requests:
                            scope.deadline = trio.current_time() + limits.head_timeout_s
                    buffer += data
                    end = buffer.find(http1.HEAD_END)
                    if end >= 0:
                        return buffer, end
        finally:
            self._idle.discard(scope)
        return buffer, -1

    async def _answer(self, connection: _Connection, request: http1.RequestHead) -> None:
        started = time.perf_counter()
        key = _flight_key(request) if http1.is_blocking_reload(request.query) else None
        flight = self._flights.get(key) if key is not None else None
        if flight is not None and await self._follow(flight, connection, request, started):
            return
        # not shared: a plain request, the first of a flight (key), or a follower whose leader
        # failed without an answer (flight is not None: it asks alone)
        route, result = await self._respond(
            request, key if flight is None else None, peer=connection.peer
        )
        await self._send(connection, result, request.keep_alive)
        self._app.observe(route, result.status, started)

    async def _respond(
        self,
        request: http1.RequestHead,
        flight_key: tuple[str | None, ...] | None,
        *,
        peer: str | None,
    ) -> tuple[str, OriginResponse | StreamedResponse]:
        """The app's answer; with a ``flight_key``, identical requests meanwhile wait for it."""
        if flight_key is None:
            return await self._app.respond(
                request.method, request.path, request.query, request.headers, address=peer
            )
        flight = self._flights[flight_key] = _Flight()
        try:
            route, result = await self._app.respond(
                request.method, request.path, request.query, request.headers, address=peer
            )
            if isinstance(result, OriginResponse):
                # whatever the status: equal keys get byte-identical answers, and a follower
                # that asked again after a shared 503 would wait a second hold (6 × TD in all)
                self._broadcast(flight, route, result)
        finally:
            if self._flights.get(flight_key) is flight:
                del self._flights[flight_key]
            flight.done.set()
        return route, result

    async def _send(
        self, connection: _Connection, result: OriginResponse | StreamedResponse, keep: bool
    ) -> None:
        keep_alive = keep and not self._closing
        date = self._date.at(time.time())
        if isinstance(result, StreamedResponse):
            await self._send_streamed(connection, result, date, keep_alive)
        else:
            await self._send_whole(connection, result, date, keep_alive)

    async def _send_all(self, connection: _Connection, data: bytes | memoryview) -> None:
        connection.response_started = True
        await send_with_progress_deadline(connection.stream, data, self._limits.send_timeout_s)

    # Collapsed blocking reloads. Thousands of players block on the same LL-HLS part with the
    # same URL; when it appears, the first request's answer is written to every one of them in
    # one synchronous loop (a few µs per socket) instead of each waking, answering and writing
    # in turn through the scheduler. Every whole answer is shared (the key holds everything the
    # answer depends on); only if the leader fails without one do the followers ask alone.

    def _broadcast(self, flight: _Flight, route: str, result: OriginResponse) -> None:
        date = self._date.at(time.time())
        heads: dict[bool, bytes] = {}
        flight.route, flight.status = route, result.status
        for waiter in flight.waiters:
            keep_alive = waiter.keep_alive and not self._closing
            head = heads.get(keep_alive)
            if head is None:
                head = heads[keep_alive] = http1.encode_response_head(
                    result.status,
                    result.headers,
                    date=date,
                    body_length=len(result.body),
                    keep_alive=keep_alive,
                )
            try:
                waiter.unsent = write_now(waiter.stream, head, result.body)
            except OSError:
                waiter.broken = True
            waiter.served = True

    async def _follow(
        self,
        flight: _Flight,
        connection: _Connection,
        request: http1.RequestHead,
        started: float,
    ) -> bool:
        """Wait for the leader's answer; False if it was not shared (then ask alone)."""
        waiter = _Waiter(connection.stream, request.keep_alive)
        flight.waiters.append(waiter)
        await flight.done.wait()
        if not waiter.served:
            return False
        connection.response_started = True
        if waiter.broken:
            raise ClientGone("client went away")
        if waiter.unsent:
            await self._send_all(connection, waiter.unsent)
        self._app.note_shared_answer(
            request.path, request.query, request.headers, flight.status, address=connection.peer
        )
        self._app.observe(flight.route, flight.status, started)
        return True

    async def _send_whole(
        self, connection: _Connection, result: OriginResponse, date: str, keep_alive: bool
    ) -> None:
        """Write head + body at once, the send loop only for what did not fit.

        A response nearly always fits the socket's send buffer, and trio's ``send_all`` costs two
        trips through the scheduler per response. Nothing is copied (writev gathers).
        """
        body = result.body
        head = http1.encode_response_head(
            result.status, result.headers, date=date, body_length=len(body), keep_alive=keep_alive
        )
        connection.response_started = True
        try:
            unsent = write_now(connection.stream, head, body)
        except OSError as error:
            raise ClientGone(str(error)) from error
        if unsent:
            await self._send_all(connection, unsent)

    async def _send_streamed(
        self, connection: _Connection, result: StreamedResponse, date: str, keep_alive: bool
    ) -> None:
        head = http1.encode_response_head(
            result.status, result.headers, date=date, body_length=None, keep_alive=keep_alive
        )
        await self._send_all(connection, head)
        if result.chunks is None:
            return  # HEAD: the fields a GET would get, no body
        chunks = result.chunks
        try:
            # an error raised by the generator is not the client's: it reaches _connection
            async for chunk in chunks:
                if chunk:
                    await self._send_all(connection, http1.encode_chunk(chunk))
        finally:
            aclose = getattr(chunks, "aclose", None)
            if aclose is not None:
                with trio.CancelScope(shield=True), trio.move_on_after(_CLOSE_TIMEOUT_S):
                    await aclose()
        await self._send_all(connection, http1.LAST_CHUNK)

    async def _hand_over(self, stream: trio.SocketStream, already_read: bytes) -> None:
        state = ConnectionState({})
        prefixed = PrefixedStream(stream, already_read, self._limits.send_timeout_s)
        # Hypercorn types the stream as SSLStream but duck-types it: no do_handshake = plain TCP.
        server = TCPServer(
            self._asgi,
            self._config,
            self._context,
            state,
            cast("trio.SSLStream[trio.SocketStream]", prefixed),
        )
        await server.run()


def _peer_address(stream: trio.SocketStream) -> str | None:
    try:
        peer = stream.socket.getpeername()
    except OSError:  # already gone
        return None
    return str(peer[0]) if isinstance(peer, tuple) else None


def _flight_key(request: http1.RequestHead) -> tuple[str | None, ...]:
    """Requests with equal keys get byte-identical answers (the origin reads no other header)."""
    headers = request.headers
    return (
        request.method,
        request.path,
        request.query,
        *(headers.get(name) for name in _VARYING_HEADERS),
    )


async def serve_origin(
    app: OriginApp,
    settings: Settings,
    port: int,
    shutdown_trigger: Callable[[], Awaitable[None]],
    *,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the origin until ``shutdown_trigger`` returns; reports the bound URLs."""
    nofile_limit = raise_nofile_limit()
    limits, budget = origin_limits(settings, nofile_limit=nofile_limit)
    log.info(
        "origin_limits",
        nofile_limit=nofile_limit,
        reserved_fds=budget.reserved_fds,
        max_connections=limits.max_connections,
        head_timeout_s=limits.head_timeout_s,
        idle_timeout_s=limits.idle_timeout_s,
        send_timeout_s=limits.send_timeout_s,
    )
    if budget.warning:
        log.warning("origin_connection_budget", message=budget.warning)
    config = origin_hypercorn_config(settings, port, limits)
    if settings.tls_cert:
        # TLS: the whole port is Hypercorn's, bounded by what its config can express
        await hypercorn_serve(
            cast("Framework", app),
            config,
            shutdown_trigger=shutdown_trigger,
            task_status=task_status,
        )
        return
    server = OriginServer(app, config, limits)
    await server.serve(listening_sockets(config), shutdown_trigger, task_status=task_status)


def origin_hypercorn_config(settings: Settings, port: int, limits: OriginLimits) -> Config:
    """Hypercorn's config for the origin port, with the origin's idle and read deadlines.

    Hypercorn has no head deadline (the fast path enforces it before any hand-over) and no
    connection cap (the fast path's accept loop counts handed-over connections too).
    """
    config = hypercorn_config(settings, port)
    config.keep_alive_timeout = limits.idle_timeout_s
    # no byte from the client for this long ends a handed-over connection
    config.read_timeout = math.ceil(limits.idle_timeout_s)
    return config
