"""Control API (port 8083): Quart-Trio app. Thin handlers over ``StreamService``.

Every error is JSON ``{"error": {"code", "message", "field"}}``: malformed JSON 400, validation
422, unknown stream 404, wrong method 405, duplicate id 409, body too large 413, at capacity 503
(with Retry-After), missing/wrong token 401. No traceback ever reaches a client; an unexpected
error is logged with its traceback and answered 500 with a request id.
"""

from __future__ import annotations

import json
import secrets
import time
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog
import trio
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from quart import Response, g, request
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException
from werkzeug.routing import PathConverter

from actors.ffmpeg.host_guard import SourceRefused
from actors.files import read_or_none
from actors.packager.layout import resolve_inside
from supervisor import __version__
from supervisor.http.ingest_views import ingest_view
from supervisor.http.openapi import openapi_document
from supervisor.http.origin import SESSION_PARAMETER, OriginApp, is_viewer_poll
from supervisor.http.origin_core import OriginResponse
from supervisor.http.playback import Playback, StreamedResponse, time_response
from supervisor.http.readiness import (
    DISK_CHECK_TTL_S,
    FFMPEG_CHECK_TTL_S,
    CachedCheck,
    CheckResult,
    disk_check,
)
from supervisor.http.views import iso, stream_view
from supervisor.http.whip_routes import read_whip_offer, register_whip_routes
from supervisor.ingest.srt_ports import NoIngestPort
from supervisor.metrics import Metrics, viewer_key
from supervisor.registry.interface import RegistryUnavailable
from supervisor.requests import RequestInvalid, parse_stream_request
from supervisor.service import (
    AtCapacity,
    NotPushStream,
    StreamExists,
    StreamNotFound,
    StreamService,
    ffmpeg_version,
)

if TYPE_CHECKING:
    from supervisor.http.cluster_api import ClusterApi

log = structlog.get_logger(__name__)

MAX_BODY_BYTES = 16 * 1024
STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
# the control endpoints; playback, health, metrics, docs and the dashboard stay public
_PROTECTED_ENDPOINTS = frozenset(
    {
        "create_stream",
        "list_streams",
        "get_stream",
        "delete_stream",
        "heartbeat",
        "rotate_key",
        "cluster_view",
        "drain_node",
    }
)


def error_response(
    status: int, code: str, message: str, field: str | None = None, **headers: str
) -> Response:
    body = json.dumps({"error": {"code": code, "message": message, "field": field}})
    response = Response(body, status=status, content_type="application/json")
    for name, value in headers.items():
        response.headers[name.replace("_", "-")] = value
    return response


def registry_unavailable(error: RegistryUnavailable) -> Response:
    """The registry did not answer: nothing changed (a running stream keeps running)."""
    log.error("registry_unavailable", error=str(error))
    return error_response(
        503,
        "registry_unavailable",
        "the stream registry is not answering; nothing was changed, try again",
        None,
        Retry_After="5",
    )


class RawResponse(Response):
    """Headers exactly as origin_core built them: Quart must not recompute Content-Length
    (a HEAD or 304 would say 0) nor add a default Content-Type."""

    automatically_set_content_length = False
    default_mimetype = None  # type: ignore[assignment]


def to_quart(result: OriginResponse | StreamedResponse) -> Response:
    body = result.body if isinstance(result, OriginResponse) else (result.chunks or b"")
    response = RawResponse(body, status=result.status)
    response.headers.clear()
    for name, value in result.headers:
        response.headers.add(name, value)
    return response


def json_response(payload: Any, status: int = 200) -> Response:
    return Response(json.dumps(payload), status=status, content_type="application/json")


class PlaybackPathConverter(PathConverter):
    """A playback object's path below ``/streams/{id}/``: never ``heartbeat``, the control
    endpoint beside it, so that OPTIONS and 405 answers for ``/streams/{id}/heartbeat`` advertise
    the heartbeat's methods only (not the playback route's GET); the same for the ingest key
    rotation and the WHIP endpoints."""

    regex = r"(?!heartbeat$|ingest/rotate-key$|whip$|whip/)[^/].*?"


def create_api_app(
    service: StreamService,
    metrics: Metrics,
    playback: Playback,
    cluster: ClusterApi | None = None,
    cluster_origin: OriginApp | None = None,
) -> QuartTrio:
    """``cluster_origin``: in a cluster, the origin app (with the cluster view and peer proxy)
    that also answers the playback routes here, so any node's API port plays any stream."""
    app = QuartTrio(__name__, static_folder=None)
    # "//" in a path must be a JSON 404 like any unknown path, not werkzeug's HTML 308 redirect
    app.url_map.merge_slashes = False
    app.url_map.converters["playback"] = PlaybackPathConverter
    app.asgi_app = _shielded_send(app.asgi_app)  # type: ignore[method-assign]
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.config["PROVIDE_AUTOMATIC_OPTIONS"] = True
    settings = service.settings

    def bases() -> tuple[str, str]:
        host_url = request.host_url.rstrip("/")
        api_base = settings.public_base_url or host_url
        if settings.cdn_base_url:
            cdn_base = settings.cdn_base_url
        else:
            scheme = request.scheme
            host = (
                request.host.rsplit(":", 1)[0] if not request.host.endswith("]") else request.host
            )
            cdn_base = f"{scheme}://{host}:{settings.origin_port}"
        return api_base, cdn_base

    def ingest_host() -> str:
        if settings.ingest_public_host:
            return settings.ingest_public_host
        if cluster is not None:
            return cluster.ingest_host
        host = request.host
        if host.startswith("["):
            return host[1 : host.index("]")]
        return host.rsplit(":", 1)[0]

    def view(actor: Any, key: str | None = None) -> dict[str, Any]:
        api_base, cdn_base = bases()
        payload = stream_view(
            actor.status,
            api_base=api_base,
            cdn_base=cdn_base,
            now_unix_s=time.time(),
            viewers=metrics.viewers.count(actor.status.stream_id),
            newest_segments=actor.edge.newest_segment_sizes(),
        )
        state = service.ingest_state(actor)
        payload["ingest"] = (
            ingest_view(
                state,
                stream_id=actor.status.stream_id,
                host=ingest_host(),
                rtmp_port=service.rtmp_port,
                api_base=api_base,
                key=key,
            )
            if state is not None
            else None
        )
        if cluster is not None:
            payload["node"] = cluster.node_id
        return payload

    async def elsewhere(stream_id: str) -> Response | None:
        """In a cluster, a stream not running here is its owner's to answer."""
        if cluster is None or service.runs(stream_id):
            return None
        return await cluster.elsewhere(
            request.method, stream_id, request.full_path.rstrip("?"), request.headers
        )

    @app.before_request
    async def authenticate() -> Response | None:
        g.started_s = time.perf_counter()
        if not settings.api_token:
            return None
        # Decide by the route that matched, never by the raw path: "//streams" or
        # "/streams/x//heartbeat" must not slip past a prefix check. Unmatched paths fall through
        # to a 404/405 that reveals nothing.
        if request.endpoint not in _PROTECTED_ENDPOINTS:
            return None
        supplied = request.headers.get("Authorization", "")
        expected = f"Bearer {settings.api_token}"
        if not secrets.compare_digest(supplied.encode(), expected.encode()):
            return error_response(
                401,
                "unauthorized",
                "a valid bearer token is required",
                WWW_Authenticate='Bearer realm="hlsdash"',
            )
        return None

    @app.after_request
    async def observe(response: Response) -> Response:
        started = g.get("started_s")
        rule = request.url_rule.rule if request.url_rule is not None else "unmatched"
        if started is not None:
            metrics.observe("api", rule, response.status_code, time.perf_counter() - started)
        return response

    @app.errorhandler(HTTPException)
    async def http_error(error: HTTPException) -> Response:
        code = error.code or 500
        names = {
            400: "bad_request",
            404: "not_found",
            405: "method_not_allowed",
            413: "body_too_large",
            415: "unsupported_media_type",
        }
        message = {
            404: "no such endpoint",
            405: f"method {request.method} is not allowed here",
            413: f"request body is larger than {MAX_BODY_BYTES} bytes",
        }.get(code, error.description or "request failed")
        response = error_response(code, names.get(code, "http_error"), message)
        if code == 405:
            allow = getattr(error, "valid_methods", None)
            if allow:
                response.headers["Allow"] = ", ".join(sorted(allow))
        return response

    @app.errorhandler(Exception)
    async def unexpected(error: Exception) -> Response:
        request_id = secrets.token_hex(6)
        log.exception("api_unexpected_error", request_id=request_id, path=request.path)
        return error_response(500, "internal_error", f"internal error (request id {request_id})")

    # -------------------------------------------------------------- control endpoints

    @app.post("/streams")
    async def create_stream() -> Response:
        raw = await request.get_data(cache=False)
        if len(raw) > MAX_BODY_BYTES:
            return error_response(
                413, "body_too_large", f"request body is larger than {MAX_BODY_BYTES} bytes"
            )
        try:
            body = json.loads(raw or b"null")
        except ValueError as error:  # JSONDecodeError, UnicodeDecodeError, int over 4300 digits
            return error_response(400, "malformed_json", f"request body is not valid JSON: {error}")
        except RecursionError:
            return error_response(400, "malformed_json", "request body is nested too deeply")
        try:
            spec, source = parse_stream_request(
                body,
                allowed_protocols=frozenset(settings.allowed_protocols),
                default_low_latency=settings.low_latency_hls,
            )
        except RequestInvalid as invalid:
            return error_response(422, invalid.code, invalid.message, invalid.field)
        if cluster is not None:
            placed = await cluster.before_create(spec, raw, request.headers)
            if placed is not None:
                return placed
        asked_at = trio.current_time()
        key: str | None = None
        try:
            if source is None:
                actor, key = await service.create_push(spec)
            else:
                actor = await service.create(spec, source)
        except NoIngestPort as full:
            return error_response(503, "no_ingest_port", str(full), None, Retry_After="30")
        except SourceRefused as refused:
            return error_response(422, "source_refused", str(refused), "source_url")
        except StreamExists:
            return error_response(
                409, "stream_exists", f"stream {spec.stream_id!r} already exists", "stream_id"
            )
        except AtCapacity as full:
            return error_response(503, "at_capacity", str(full), None, Retry_After="30")
        except RegistryUnavailable as down:
            return registry_unavailable(down)
        if cluster is not None:
            cluster.created(spec.stream_id, sent_at=asked_at)
        response = json_response(view(actor, key), 201)
        response.headers["Location"] = f"/streams/{spec.stream_id}"
        if key is not None:
            response.headers["Cache-Control"] = "no-store"  # the key is shown this once
        return response

    @app.post("/streams/<stream_id>/ingest/rotate-key")
    async def rotate_key(stream_id: str) -> Response:
        try:
            key = await service.rotate_key(stream_id)
        except RegistryUnavailable as down:
            return registry_unavailable(down)
        except StreamNotFound:
            return error_response(
                404, "stream_not_found", f"no live stream {stream_id!r}", "stream_id"
            )
        except NotPushStream as not_push:
            return error_response(409, "not_a_push_stream", str(not_push), "stream_id")
        response = json_response(view(service.get(stream_id), key), 200)
        response.headers["Cache-Control"] = "no-store"
        return response

    @app.get("/streams")
    async def list_streams() -> Response:
        views = [view(a) for a in service.list()]
        others = await cluster.list_others(request.headers) if cluster is not None else None
        if others is None:
            return json_response({"streams": views})
        found, unreachable = others
        views = sorted(views + found, key=lambda v: str(v.get("stream_id", "")))
        return json_response({"streams": views, "nodes_unreachable": unreachable})

    @app.get("/streams/<stream_id>")
    async def get_stream(stream_id: str) -> Response:
        if (answer := await elsewhere(stream_id)) is not None:
            return answer
        try:
            return json_response(view(service.get(stream_id)))
        except StreamNotFound:
            return error_response(404, "stream_not_found", f"no stream {stream_id!r}", "stream_id")

    @app.delete("/streams/<stream_id>")
    async def delete_stream(stream_id: str) -> Response:
        if (answer := await elsewhere(stream_id)) is not None:
            return answer
        try:
            actor = await service.delete(stream_id)
        except StreamNotFound:
            return error_response(404, "stream_not_found", f"no stream {stream_id!r}", "stream_id")
        except RegistryUnavailable as down:
            return registry_unavailable(down)
        if cluster is not None:
            cluster.forget(stream_id)
        payload = view(actor)
        payload["deleted"] = True
        return json_response(payload, 200)

    @app.post("/streams/<stream_id>/heartbeat")
    async def heartbeat(stream_id: str) -> Response:
        if (answer := await elsewhere(stream_id)) is not None:
            return answer
        try:
            expires = service.heartbeat(stream_id)
        except StreamNotFound:
            return error_response(
                404, "stream_not_found", f"no live stream {stream_id!r}", "stream_id"
            )
        actor = service.get(stream_id)
        return json_response(
            {
                "stream_id": stream_id,
                "state": actor.status.state.value,
                "lease_expires_at": iso(expires),
                "lease_seconds": settings.stale_threshold_s,
            }
        )

    # -------------------------------------------------------------- the cluster

    @app.get("/cluster")
    async def cluster_view() -> Response:
        if cluster is None:
            return error_response(404, "not_clustered", "this service runs alone (no REGISTRY_URL)")
        return json_response(cluster.describe())

    @app.post("/cluster/nodes/<node_id>/drain")
    async def drain_node(node_id: str) -> Response:
        if cluster is None:
            return error_response(404, "not_clustered", "this service runs alone (no REGISTRY_URL)")
        return await cluster.drain(node_id)

    # -------------------------------------------------------------- playback on the API port

    @app.route("/streams/<stream_id>/<playback:relative>", methods=["GET", "HEAD", "OPTIONS"])
    async def playback_route(stream_id: str, relative: str) -> Response:
        query = request.query_string.decode("latin-1")
        if cluster_origin is not None:
            # as on the origin port: a stream another node runs is proxied to its owner (its
            # headers, blocking reloads and growing segments passed through), a stream between
            # nodes is a 503, a fenced one answers nothing; the viewer is counted there
            _route, answer = await cluster_origin.respond(
                request.method,
                f"/{stream_id}/{relative}",
                query,
                request.headers,
                address=request.remote_addr,
            )
            return to_quart(answer)
        result = await playback.serve(
            stream_id,
            relative,
            method=request.method,
            headers=request.headers,
            query_string=query,
        )
        if is_viewer_poll(relative, result.status):
            metrics.viewers.seen(
                stream_id,
                viewer_key(
                    session=request.args.get(SESSION_PARAMETER),
                    forwarded_for=request.headers.get("x-forwarded-for"),
                    address=request.remote_addr,
                    user_agent=request.headers.get("user-agent"),
                ),
            )
        return to_quart(result)

    # -------------------------------------------------------------- health, metrics, docs

    @app.get("/health")
    async def health() -> Response:
        # answering at all proves the process and its event loop are alive
        return json_response({"status": "ok", "version": __version__, "time": time.time()})

    readiness = _readiness_checks(service)

    @app.get("/ready")
    async def ready() -> Response:
        results = {name: await check() for name, check in readiness.items()}
        checks = {"supervisor_running": service.running} | {
            name: result.ok for name, result in results.items()
        }
        ok = all(checks.values())
        payload: dict[str, Any] = {"status": "ready" if ok else "not_ready", "checks": checks}
        errors = {name: result.error for name, result in results.items() if result.error}
        if errors:
            payload["errors"] = errors
        return json_response(payload, 200 if ok else 503)

    @app.get("/metrics")
    async def metrics_endpoint() -> Response:
        body = await trio.to_thread.run_sync(generate_latest, metrics.registry)
        return Response(body, status=200, content_type=CONTENT_TYPE_LATEST)

    @app.get("/time")
    async def utc_time() -> Response:
        return to_quart(time_response())

    @app.get("/openapi.json")
    async def openapi() -> Response:
        return json_response(openapi_document(__version__))

    @app.get("/docs")
    async def docs() -> Response:
        return Response(_DOCS_HTML, content_type="text/html; charset=utf-8")

    @app.get("/")
    async def dashboard() -> Response:
        return await _static_file("index.html")

    @app.get("/static/<path:name>")
    async def static_files(name: str) -> Response:
        return await _static_file(name)

    async def _static_file(name: str) -> Response:
        target = resolve_inside(STATIC_DIR, name)
        if target is None:
            return error_response(404, "not_found", "no such file")
        data = await trio.to_thread.run_sync(read_or_none, target)
        if data is None:
            return error_response(404, "not_found", "no such file")
        response = Response(data, content_type=_static_type(target.name))
        response.headers["Cache-Control"] = "public, max-age=300"
        return response

    # -------------------------------------------------------------- WHIP ingest (RFC 9725)

    async def whip_elsewhere(stream_id: str) -> Response | None:
        """In a cluster, WHIP for a push stream another node runs is forwarded to that node
        (the offer, key and content type; its answer SDP, Location and status come back)."""
        if cluster is None or service.runs(stream_id):
            return None
        return await cluster.elsewhere(
            request.method,
            stream_id,
            request.full_path.rstrip("?"),
            request.headers,
            read_body=read_whip_offer,
            client_address=request.remote_addr,
        )

    register_whip_routes(
        app, service.whip, elsewhere=whip_elsewhere, trust_forwarded_address=cluster is not None
    )
    return app


def _shielded_send(asgi_app: Any) -> Any:
    """Run each ASGI ``send`` shielded from the request's cancellation.

    Quart-Trio cancels its request nursery as soon as ``http.disconnect`` arrives, and Hypercorn
    delivers that message from *inside* the final ``send`` (while it closes a ``Connection: close``
    socket). Unshielded, the close is cancelled half-way and the client never sees EOF: the socket
    and its task leak until the client gives up. Hypercorn already shields its socket writes.
    """

    async def app(scope: Any, receive: Any, send: Any) -> None:
        async def send_shielded(message: Any) -> None:
            with trio.CancelScope(shield=True):
                await send(message)

        await asgi_app(scope, receive, send_shielded)

    return app


def _readiness_checks(service: StreamService) -> dict[str, CachedCheck]:
    """The checks /ready runs, each cached for a few seconds (probes come often)."""
    min_free_bytes = int(service.settings.ready_min_free_mb * 1024 * 1024)

    async def ffmpeg_runs() -> CheckResult:
        version = await trio.to_thread.run_sync(ffmpeg_version, service.ffmpeg_path)
        if version is None:
            return CheckResult(False, f"{service.ffmpeg_path} does not run")
        return CheckResult(True)

    async def output_dir_writable() -> CheckResult:
        return await trio.to_thread.run_sync(
            partial(disk_check, service.output_dir, min_free_bytes=min_free_bytes)
        )

    return {
        "ffmpeg": CachedCheck(ffmpeg_runs, ttl_s=FFMPEG_CHECK_TTL_S),
        "output_dir_writable": CachedCheck(output_dir_writable, ttl_s=DISK_CHECK_TTL_S),
    }


_STATIC_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".txt": "text/plain; charset=utf-8",
    ".svg": "image/svg+xml",
    ".map": "application/json",
}


def _static_type(name: str) -> str:
    suffix = name[name.rfind(".") :] if "." in name else ""
    return _STATIC_TYPES.get(suffix, "application/octet-stream")


_DOCS_HTML = """<!doctype html>
<html><head><meta charset="utf-8"><title>hlsdash API</title>
<style>body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}
pre{background:#f4f4f4;padding:1rem;overflow:auto}</style></head>
<body><h1>hlsdash control API</h1>
<p>The machine-readable description is at <a href="/openapi.json">/openapi.json</a>.</p>
<pre id="doc">loading…</pre>
<script>fetch('/openapi.json').then(r=>r.json()).then(d=>{
const out=[];for(const [p,ops] of Object.entries(d.paths)){for(const [m,op] of Object.entries(ops)){
out.push(m.toUpperCase().padEnd(8)+p+'\\n    '+(op.summary||''))}}
document.getElementById('doc').textContent=out.join('\\n')})</script>
</body></html>"""
