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
from urllib.parse import parse_qs

import structlog

from supervisor.http import origin_core
from supervisor.http.origin_core import OriginResponse
from supervisor.http.peer_proxy import (
    LEASE_LOST,
    PROXIED_HEADER,
    ClusterView,
    PeerProxy,
    fenced_chunks,
    stream_moving,
)
from supervisor.http.playback import Playback, StreamedResponse, time_response
from supervisor.metrics import Metrics, viewer_key

log = structlog.get_logger(__name__)

# A player (or the dashboard) may tag its requests ``?session=<id>`` to be counted as one viewer
# whatever its address; caches leave it out of their keys (ops/cdn, ops/nginx).
SESSION_PARAMETER = "session"

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
    def __init__(
        self,
        playback: Playback,
        metrics: Metrics,
        *,
        cluster: ClusterView | None = None,
        proxy: PeerProxy | None = None,
    ) -> None:
        """``cluster`` and ``proxy`` (both or neither): serve streams other nodes run too."""
        self._playback = playback
        self._metrics = metrics
        self._cluster = cluster
        self._proxy = proxy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await _lifespan(receive, send)
            return
        if kind != "http":
            return
        started = time.perf_counter()
        client = scope.get("client")
        route, result = await self.respond(
            scope["method"],
            scope["path"],
            scope.get("query_string", b"").decode("latin-1"),
            _Headers(scope.get("headers", [])),
            address=client[0] if client else None,
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
        self,
        method: str,
        path: str,
        query: str,
        headers: origin_core.RequestHeaders,
        *,
        address: str | None = None,
    ) -> tuple[str, OriginResponse | StreamedResponse]:
        """The answer to one request and its metrics route label (shared by both HTTP paths).

        ``address`` is the peer's address (both HTTP paths pass it): without a ``session``
        tag, a viewer is its address (or first X-Forwarded-For hop) and user agent.
        """
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
        cluster = self._cluster
        if cluster is not None and self._proxy is not None:
            # a request from a peer is answered here whatever happened since (never a loop)
            if headers.get(PROXIED_HEADER) is None:
                owner_url = await cluster.proxy_target(stream_id)
                if owner_url is not None:
                    result = await self._proxy.forward(owner_url, method, path, query, headers)
                    return "/{id}/proxied", result
            if cluster.fenced(stream_id):
                return _route_label(relative), LEASE_LOST
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
        if cluster is not None:
            # asked again after the answer: a blocking reload may have waited past the lease
            if cluster.fenced(stream_id):
                return _route_label(relative), LEASE_LOST
            if result.status == 404 and await cluster.moving(stream_id):
                return _route_label(relative), stream_moving(head=method == "HEAD")
            if isinstance(result, StreamedResponse) and result.chunks is not None:
                chunks = fenced_chunks(result.chunks, cluster, stream_id)
                result = StreamedResponse(result.status, result.headers, chunks)
        self._note_viewer(stream_id, relative, query, headers, result.status, address=address)
        return _route_label(relative), result

    def note_shared_answer(
        self,
        path: str,
        query: str,
        headers: origin_core.RequestHeaders,
        status: int,
        *,
        address: str | None,
    ) -> None:
        """A request answered with another identical request's answer (a collapsed blocking
        reload) is a poll by its own client: count that viewer as ``respond`` would have."""
        split = origin_core.split_stream_path(path)
        if split is not None:
            stream_id, relative = split
            self._note_viewer(stream_id, relative, query, headers, status, address=address)

    def _note_viewer(
        self,
        stream_id: str,
        relative: str,
        query: str,
        headers: origin_core.RequestHeaders,
        status: int,
        *,
        address: str | None,
    ) -> None:
        if is_viewer_poll(relative, status):
            self._metrics.viewers.seen(
                stream_id,
                viewer_key(
                    session=session_tag(query),
                    forwarded_for=headers.get("x-forwarded-for"),
                    address=address,
                    user_agent=headers.get("user-agent"),
                ),
            )


def is_viewer_poll(relative: str, status: int) -> bool:
    """A request that shows a player is watching: a playlist or the MPD, answered."""
    if status >= 400:
        return False
    kind = origin_core.classify_path(relative)
    return kind is not None and origin_core.is_document(kind)


def session_tag(query: str) -> str | None:
    """The ``session`` query parameter, if the request has one."""
    if SESSION_PARAMETER + "=" not in query:
        return None
    values = parse_qs(query).get(SESSION_PARAMETER)
    return values[0] if values else None


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
