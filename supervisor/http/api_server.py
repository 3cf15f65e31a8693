"""The control API's listener (8083): Hypercorn, with a head deadline, send deadline and a cap.

Hypercorn's defaults gave a connection 75 s to send a request head (its keep-alive timeout), no
deadline on writes to a client that reads nothing (its writes are shielded from cancellation)
and no bound on connections, on the port operators and the dashboard rely on. Here:

* **head deadline** ``API_HEAD_TIMEOUT``: Hypercorn's keep-alive timer runs from accept, and from
  each answer, until a *whole* request head has been parsed (h11 reports the connection busy only
  then), so it bounds a silent or one-byte-a-second client and an idle keep-alive alike;
* **send deadline** ``API_SEND_TIMEOUT``: a write that makes no progress for that long breaks the
  connection (:class:`~supervisor.http.origin_sockets.PrefixedStream`);
* **connection cap** ``API_MAX_CONNECTIONS`` (the origin's fd budget reserves as many): beyond it
  a ``503`` and a close, never a wait.

No read timeout while a request is served: LL-HLS blocking reloads on the playback routes wait
up to three target durations without a byte from the client. A request body that never comes is
Quart's ``BODY_TIMEOUT``.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final, cast

import trio
from hypercorn.config import Config
from hypercorn.trio.lifespan import Lifespan
from hypercorn.trio.statsd import StatsdLogger
from hypercorn.trio.tcp_server import TCPServer
from hypercorn.trio.worker_context import WorkerContext
from hypercorn.typing import AppWrapper, ConnectionState, Framework, LifespanState
from hypercorn.utils import repr_socket_addr, wrap_app

from supervisor.config import Settings
from supervisor.http.connection_cap import CappedListener, ConnectionCap
from supervisor.http.server import hypercorn_config

_CLOSE_TIMEOUT_S: Final = 1.0


@dataclass(frozen=True, slots=True)
class ApiLimits:
    head_timeout_s: float = 10.0
    send_timeout_s: float = 10.0
    max_connections: int = 128


def api_limits(settings: Settings) -> ApiLimits:
    return ApiLimits(
        head_timeout_s=settings.api_head_timeout_s,
        send_timeout_s=settings.api_send_timeout_s,
        max_connections=settings.api_max_connections,
    )


def api_hypercorn_config(settings: Settings, port: int, limits: ApiLimits) -> Config:
    config = hypercorn_config(settings, port)
    config.keep_alive_timeout = limits.head_timeout_s  # the head deadline (module docstring)
    config.ssl_handshake_timeout = limits.head_timeout_s  # with TLS, a silent client waits here
    config.set_statsd_logger_class(StatsdLogger)
    return config


async def serve_api(
    app: Any,
    settings: Settings,
    port: int,
    shutdown_trigger: Callable[[], Awaitable[None]],
    *,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the control API until ``shutdown_trigger`` returns; reports the bound URLs.

    What ``hypercorn.trio.serve`` does (lifespan, then listeners, graceful drain), with the
    listeners behind a :class:`CappedListener`.
    """
    limits = api_limits(settings)
    config = api_hypercorn_config(settings, port, limits)
    asgi: AppWrapper = wrap_app(cast("Framework", app), config.wsgi_max_body_size, "asgi")
    cap = ConnectionCap(listener="API", max_connections=limits.max_connections)
    lifespan_state: LifespanState = {}
    lifespan = Lifespan(asgi, config, lifespan_state)
    context = WorkerContext(None)

    async def connection(stream: trio.abc.Stream) -> None:
        try:
            server = TCPServer(
                asgi,
                config,
                context,
                ConnectionState(lifespan_state.copy()),
                cast("trio.SSLStream[trio.SocketStream]", stream),
            )
            await server.run()
        finally:
            # Hypercorn skips its close when a TLS handshake fails: the place is freed here
            with (
                trio.CancelScope(shield=True),
                trio.move_on_after(_CLOSE_TIMEOUT_S),
                contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError, OSError),
            ):
                await stream.aclose()

    async with trio.open_nursery() as lifespan_nursery:
        await lifespan_nursery.start(lifespan.handle_lifespan)
        await lifespan.wait_for_startup()
        listeners, urls = _listeners(config, cap, limits)
        async with trio.open_nursery() as connections:
            async with trio.open_nursery() as accepting:
                accepting.start_soon(
                    functools.partial(
                        trio.serve_listeners, connection, listeners, handler_nursery=connections
                    )
                )
                task_status.started(urls)
                await shutdown_trigger()
                accepting.cancel_scope.cancel("API shutting down")
            # idle keep-alive connections close now, requests in flight get a deadline
            await context.terminated.set()
            connections.cancel_scope.deadline = trio.current_time() + config.graceful_timeout
        await lifespan.wait_for_shutdown()
        lifespan_nursery.cancel_scope.cancel("API stopped")


def _listeners(
    config: Config, cap: ConnectionCap, limits: ApiLimits
) -> tuple[list[trio.abc.Listener[Any]], list[str]]:
    sockets = config.create_sockets()
    listeners: list[trio.abc.Listener[Any]] = []
    urls = []
    for sock in sockets.secure_sockets:
        sock.listen(config.backlog)
        capped = _capped(sock, cap, limits)
        ssl = config.create_ssl_context()
        assert ssl is not None  # secure sockets exist only with a certificate
        listeners.append(trio.SSLListener(capped, ssl, https_compatible=True))
        urls.append(f"https://{repr_socket_addr(sock.family, sock.getsockname())}")
    for sock in sockets.insecure_sockets:
        sock.listen(config.backlog)
        listeners.append(_capped(sock, cap, limits))
        urls.append(f"http://{repr_socket_addr(sock.family, sock.getsockname())}")
    return listeners, urls


def _capped(sock: Any, cap: ConnectionCap, limits: ApiLimits) -> CappedListener:
    listener = trio.SocketListener(trio.socket.from_stdlib_socket(sock))
    return CappedListener(listener, cap, send_timeout_s=limits.send_timeout_s)
