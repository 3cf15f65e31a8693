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
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import cast

import trio
from hypercorn.config import Config
from hypercorn.trio.statsd import StatsdLogger
from hypercorn.trio.tcp_server import TCPServer
from hypercorn.trio.worker_context import WorkerContext
from hypercorn.typing import AppWrapper, ConnectionState, Framework
from hypercorn.utils import repr_socket_addr, wrap_app

from supervisor.config import Settings
from supervisor.http import http1
from supervisor.http.origin import OriginApp
from supervisor.http.origin_core import OriginResponse
from supervisor.http.playback import StreamedResponse
from supervisor.http.server import hypercorn_config, serve_app

_RECEIVE_BYTES = 64 * 1024
_SEND_ERRORS = (trio.BrokenResourceError, trio.ClosedResourceError, OSError)
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


class _PrefixedStream(trio.abc.HalfCloseableStream):
    """A socket stream whose first read returns bytes the fast path already consumed."""

    def __init__(self, stream: trio.SocketStream, prefix: bytes) -> None:
        self._stream = stream
        self._prefix = prefix
        self.socket = stream.socket  # Hypercorn reads peer/server addresses from it

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        if self._prefix:
            data, self._prefix = self._prefix, b""
            return data
        return bytes(await self._stream.receive_some(max_bytes))

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await self._stream.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self._stream.wait_send_all_might_not_block()

    async def send_eof(self) -> None:
        await self._stream.send_eof()

    async def aclose(self) -> None:
        await self._stream.aclose()


class OriginServer:
    """Accepts connections; serves plain reads itself and hands the rest to Hypercorn."""

    def __init__(self, app: OriginApp, config: Config) -> None:
        self._app = app
        self._config = config
        config.set_statsd_logger_class(StatsdLogger)
        self._asgi: AppWrapper = wrap_app(cast("Framework", app), config.wsgi_max_body_size, "asgi")
        self._context = WorkerContext(None)
        self._date = http1.HttpDate()
        # connections waiting for their next request: closed at once on shutdown
        self._idle: set[trio.CancelScope] = set()
        self._flights: dict[tuple[str | None, ...], _Flight] = {}
        self._closing = False

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
                await accepting.start(
                    partial(
                        trio.serve_listeners,
                        self._connection,
                        listeners,
                        handler_nursery=connections,
                    )
                )
                task_status.started(urls)
                await shutdown_trigger()
                accepting.cancel_scope.cancel("origin shutting down")
            # Graceful: idle keep-alive connections close now, requests in flight get a deadline.
            self._closing = True
            for scope in list(self._idle):
                scope.cancel("origin shutting down")
            await self._context.terminated.set()
            connections.cancel_scope.deadline = trio.current_time() + self._config.graceful_timeout

    async def _connection(self, stream: trio.SocketStream) -> None:
        handed_over = False
        try:
            handed_over = await self._requests(stream)
        finally:
            if not handed_over:
                with (
                    trio.CancelScope(shield=True),
                    trio.move_on_after(1),
                    contextlib.suppress(*_SEND_ERRORS),
                ):
                    await stream.aclose()

    async def _requests(self, stream: trio.SocketStream) -> bool:
        """Serve requests until the connection ends; True once Hypercorn owns it."""
        buffer = b""
        while not self._closing:
            head_end = buffer.find(http1.HEAD_END)
            if head_end < 0:
                buffer, head_end = await self._read_head(stream, buffer)
                if head_end == -1:
                    return False  # closed, idle too long, or shutting down
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
            try:
                await self._answer(stream, request)
            except _SEND_ERRORS:
                return False
            if not request.keep_alive:
                return False
        return False

    async def _read_head(self, stream: trio.SocketStream, buffer: bytes) -> tuple[bytes, int]:
        """Read until a whole head is buffered.

        Returns (buffer, end of head), or end -1 to close the connection, -2 to hand it over.
        """
        idle = trio.CancelScope(deadline=trio.current_time() + self._config.keep_alive_timeout)
        # only a connection with nothing pending is idle: a half-sent head survives shutdown
        if not buffer:
            self._idle.add(idle)
        try:
            with idle:
                while True:
                    if buffer.startswith(b"PRI ") or len(buffer) > http1.MAX_HEAD_BYTES:
                        return buffer, -2
                    try:
                        data = await stream.receive_some(_RECEIVE_BYTES)
                    except _SEND_ERRORS:
                        return buffer, -1
                    if not data:
                        return buffer, -1
                    if not buffer:
                        self._idle.discard(idle)
                    buffer += data
                    end = buffer.find(http1.HEAD_END)
                    if end >= 0:
                        return buffer, end
        finally:
            self._idle.discard(idle)
        return buffer, -1

    async def _answer(self, stream: trio.SocketStream, request: http1.RequestHead) -> None:
        started = time.perf_counter()
        key = _flight_key(request) if http1.is_blocking_reload(request.query) else None
        flight = self._flights.get(key) if key is not None else None
        if flight is not None and await self._follow(flight, stream, request.keep_alive, started):
            return
        # not shared: a plain request, the first of a flight (key), or a follower whose shared
        # answer was not a 200 (flight is not None: it asks alone)
        route, result = await self._respond(request, key if flight is None else None)
        await self._send(stream, result, request.keep_alive)
        self._app.observe(route, result.status, started)

    async def _respond(
        self, request: http1.RequestHead, flight_key: tuple[str | None, ...] | None
    ) -> tuple[str, OriginResponse | StreamedResponse]:
        """The app's answer; with a ``flight_key``, identical requests meanwhile wait for it."""
        if flight_key is None:
            return await self._app.respond(
                request.method, request.path, request.query, request.headers
            )
        flight = self._flights[flight_key] = _Flight()
        try:
            route, result = await self._app.respond(
                request.method, request.path, request.query, request.headers
            )
            if isinstance(result, OriginResponse) and result.status == 200:
                self._broadcast(flight, route, result)
        finally:
            if self._flights.get(flight_key) is flight:
                del self._flights[flight_key]
            flight.done.set()
        return route, result

    async def _send(
        self, stream: trio.SocketStream, result: OriginResponse | StreamedResponse, keep: bool
    ) -> None:
        keep_alive = keep and not self._closing
        date = self._date.at(time.time())
        if isinstance(result, StreamedResponse):
            await self._send_streamed(stream, result, date, keep_alive)
        else:
            await self._send_whole(stream, result, date, keep_alive)

    # Collapsed blocking reloads. Thousands of players block on the same LL-HLS part with the
    # same URL; when it appears, the first request's answer is written to every one of them in
    # one synchronous loop (a few µs per socket) instead of each waking, answering and writing
    # in turn through the scheduler. Only a 200 is shared; anything else, each asks again alone.

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
                waiter.unsent = _write_now(waiter.stream, head, result.body)
            except OSError:
                waiter.broken = True
            waiter.served = True

    async def _follow(
        self, flight: _Flight, stream: trio.SocketStream, keep_alive: bool, started: float
    ) -> bool:
        """Wait for the leader's answer; False if it was not shared (then ask alone)."""
        waiter = _Waiter(stream, keep_alive)
        flight.waiters.append(waiter)
        await flight.done.wait()
        if not waiter.served:
            return False
        if waiter.broken:
            raise trio.BrokenResourceError("client went away")
        if waiter.unsent:
            await stream.send_all(waiter.unsent)
        self._app.observe(flight.route, flight.status, started)
        return True

    @staticmethod
    async def _send_whole(
        stream: trio.SocketStream, result: OriginResponse, date: str, keep_alive: bool
    ) -> None:
        body = result.body
        head = http1.encode_response_head(
            result.status, result.headers, date=date, body_length=len(body), keep_alive=keep_alive
        )
        await _send_now(stream, head, body)

    @staticmethod
    async def _send_streamed(
        stream: trio.SocketStream, result: StreamedResponse, date: str, keep_alive: bool
    ) -> None:
        head = http1.encode_response_head(
            result.status, result.headers, date=date, body_length=None, keep_alive=keep_alive
        )
        await stream.send_all(head)
        if result.chunks is None:
            return  # HEAD: the fields a GET would get, no body
        chunks = result.chunks
        try:
            async for chunk in chunks:
                if chunk:
                    await stream.send_all(http1.encode_chunk(chunk))
        finally:
            aclose = getattr(chunks, "aclose", None)
            if aclose is not None:
                with trio.CancelScope(shield=True):
                    await aclose()
        await stream.send_all(http1.LAST_CHUNK)

    async def _hand_over(self, stream: trio.SocketStream, already_read: bytes) -> None:
        state = ConnectionState({})
        # Hypercorn types the stream as SSLStream but duck-types it: no do_handshake = plain TCP.
        prefixed = cast("trio.SSLStream[trio.SocketStream]", _PrefixedStream(stream, already_read))
        server = TCPServer(self._asgi, self._config, self._context, state, prefixed)
        await server.run()


def _write_now(stream: trio.SocketStream, head: bytes, body: bytes) -> bytes | memoryview:
    """One non-blocking writev() of head + body; returns what did not fit (usually nothing).

    Raises OSError if the connection is gone.
    """
    try:
        sent = os.writev(stream.socket.fileno(), (head, body) if body else (head,))
    except BlockingIOError:
        sent = 0
    if sent < len(head):
        return head[sent:] + body  # rare: the socket buffer was already full
    return memoryview(body)[sent - len(head) :]


async def _send_now(stream: trio.SocketStream, head: bytes, body: bytes) -> None:
    """Write head + body at once, ``send_all`` only for what did not fit.

    A response nearly always fits the socket's send buffer, and trio's ``send_all`` costs two
    trips through the scheduler per response. Nothing is copied (writev gathers).
    """
    try:
        unsent = _write_now(stream, head, body)
    except OSError as error:
        raise trio.BrokenResourceError(str(error)) from error
    if unsent:
        await stream.send_all(unsent)


def _flight_key(request: http1.RequestHead) -> tuple[str | None, ...]:
    """Requests with equal keys get byte-identical answers (the origin reads no other header)."""
    headers = request.headers
    return (
        request.method,
        request.path,
        request.query,
        *(headers.get(name) for name in _VARYING_HEADERS),
    )


def listening_sockets(config: Config) -> list[trio.socket.SocketType]:
    sockets = config.create_sockets()
    for sock in sockets.insecure_sockets:
        sock.listen(config.backlog)
    return [trio.socket.from_stdlib_socket(sock) for sock in sockets.insecure_sockets]


async def serve_origin(
    app: OriginApp,
    settings: Settings,
    port: int,
    shutdown_trigger: Callable[[], Awaitable[None]],
    *,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the origin until ``shutdown_trigger`` returns; reports the bound URLs."""
    if settings.tls_cert:
        await serve_app(app, settings, port, shutdown_trigger, task_status=task_status)
        return
    config = hypercorn_config(settings, port)
    server = OriginServer(app, config)
    await server.serve(listening_sockets(config), shutdown_trigger, task_status=task_status)
