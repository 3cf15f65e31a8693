"""CDN origin (port 8084): a bare ASGI app, no framework on the hot path.

Routes: ``/{stream_id}/{relative}`` (playlists, MPD, init, segments, parts), ``/time`` (DASH
UTCTiming), ``/health``. Read-only. Every decision (cache policy, ETag, Range, CORS, gzip,
traversal) is in ``origin_core``; this only moves bytes between the HTTP layer and ``Playback``.
:meth:`OriginApp.respond` is the one entry point: the origin's own HTTP/1.1 fast path
(``origin_server``) calls it directly, and the ASGI ``__call__`` (HTTP/2, HTTP/1.0, TLS, anything
handed to Hypercorn) wraps it.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import structlog

from supervisor.http import origin_core
from supervisor.http.origin_core import OriginResponse
from supervisor.http.playback import Playback, StreamedResponse, time_response
from supervisor.metrics import Metrics

log = structlog.get_logger(__name__)

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

_HEALTH = OriginResponse(
    200,
    (
        ("content-type", "application/json"),
        ("cache-control", "no-store"),
        ("access-control-allow-origin", "*"),
        ("content-length", "15"),
    ),
    b'{"status":"ok"}',
)


class _Headers:
    """Case-insensitive read view over ASGI header pairs (what origin_core needs: ``get``)."""

    __slots__ = ("_map",)

    def __init__(self, raw: list[tuple[bytes, bytes]]) -> None:
        self._map = origin_core.lower_headers(
            (k.decode("latin-1"), v.decode("latin-1")) for k, v in raw
        )

    def get(self, key: str, /) -> str | None:
        return self._map.get(key.lower())


class OriginApp:
    def __init__(self, playback: Playback, metrics: Metrics) -> None:
        self._playback = playback
        self._metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await _lifespan(receive, send)
            return
        if kind != "http":
            return
        started = time.perf_counter()
        route, result = await self.respond(
            scope["method"],
            scope["path"],
            scope.get("query_string", b"").decode("latin-1"),
            _Headers(scope.get("headers", [])),
        )
        await send(
            {
                "type": "http.response.start",
                "status": result.status,
                "headers": [(k.encode("latin-1"), v.encode("latin-1")) for k, v in result.headers],
            }
        )
        if isinstance(result, StreamedResponse):
            if result.chunks is not None:
                async for chunk in result.chunks:
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        else:
            await send({"type": "http.response.body", "body": result.body})
        self.observe(route, result.status, started)

    def observe(self, route: str, status: int, started: float) -> None:
        self._metrics.observe("origin", route, status, time.perf_counter() - started)

    async def respond(
        self, method: str, path: str, query: str, headers: origin_core.RequestHeaders
    ) -> tuple[str, OriginResponse | StreamedResponse]:
        """The answer to one request and its metrics route label (shared by both HTTP paths)."""
        if path == "/time":
            return "/time", time_response()
        if path == "/health":
            return "/health", _HEALTH
        split = origin_core.split_stream_path(path)
        if split is None:
            if method == "OPTIONS":
                return "unmatched", origin_core.preflight()
            return "unmatched", origin_core.not_found(head=method == "HEAD")
        stream_id, relative = split
        result: OriginResponse | StreamedResponse
        try:
            result = await self._playback.serve(
                stream_id,
                relative,
                method=method,
                headers=headers,
                query_string=query,
            )
        except Exception:
            log.exception("origin_unexpected_error", path=path)
            result = origin_core.error_json(500, "internal_error", "internal error")
        return _route_label(relative), result


def _route_label(relative: str) -> str:
    """Low-cardinality route name for metrics (never the stream id or segment number)."""
    kind = origin_core.classify_path(relative)
    return f"/{{id}}/{kind.value}" if kind is not None else "/{id}/other"


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
