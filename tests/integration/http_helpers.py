"""The real HTTP front for integration tests: the service, the control API and the CDN origin
served by Hypercorn on 127.0.0.1 (free ports), exactly as ``supervisor.main.run_service`` wires them.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import trio

from supervisor.config import load_settings
from supervisor.http.api import create_api_app
from supervisor.http.api_server import serve_api
from supervisor.http.origin import OriginApp
from supervisor.http.origin_server import serve_origin
from supervisor.http.playback import Playback
from supervisor.ingest.rtmp_server import RtmpServer
from supervisor.metrics import Metrics
from supervisor.registry.interface import StreamRegistry
from supervisor.service import StreamService
from tests.integration.live import LAVFI_SOURCE, free_port, service_env, wait_for


@dataclass
class Front:
    service: StreamService
    metrics: Metrics
    playback: Playback
    api_url: str
    origin_url: str
    api: httpx.AsyncClient
    origin: httpx.AsyncClient

    @property
    def api_port(self) -> int:
        return self.service.settings.api_port

    @property
    def origin_port(self) -> int:
        return self.service.settings.origin_port


@contextlib.asynccontextmanager
async def running_front(
    output_dir: Path, *, registry: StreamRegistry | None = None, **overrides: str
) -> AsyncIterator[Front]:
    """Service + API (8083 role) + origin (8084 role) on free ports, with httpx clients;
    ``registry``: the service's stream registry (none: streams live in memory only)."""
    env = service_env(
        output_dir,
        API_HOST="127.0.0.1",
        API_PORT=str(free_port()),
        ORIGIN_PORT=str(free_port()),
        **overrides,
    )
    settings = load_settings(env)
    service = StreamService(settings, registry=registry)
    metrics = Metrics(service)
    playback = Playback(service)
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        await nursery.start(service.run)
        if settings.rtmp_port:
            service.rtmp_port = await nursery.start(
                RtmpServer(service).serve, "127.0.0.1", settings.rtmp_port
            )
        await nursery.start(
            serve_api,
            create_api_app(service, metrics, playback),
            settings,
            settings.api_port,
            stop.wait,
        )
        await nursery.start(
            serve_origin, OriginApp(playback, metrics), settings, settings.origin_port, stop.wait
        )
        api_url = f"http://127.0.0.1:{settings.api_port}"
        origin_url = f"http://127.0.0.1:{settings.origin_port}"
        timeout = httpx.Timeout(30.0)
        try:
            async with (
                httpx.AsyncClient(base_url=api_url, timeout=timeout) as api,
                httpx.AsyncClient(base_url=origin_url, timeout=timeout) as origin,
            ):
                yield Front(service, metrics, playback, api_url, origin_url, api, origin)
        finally:
            stop.set()
            nursery.cancel_scope.cancel()


def stream_body(stream_id: str, **fields: object) -> dict[str, object]:
    body: dict[str, object] = {
        "stream_id": stream_id,
        "source_url": LAVFI_SOURCE,
        "qualities": ["240p"],
        "enable_hls": True,
        "enable_dash": True,
        "low_latency": True,
    }
    body.update(fields)
    return body


async def wait_live_segments(
    front: Front, stream_id: str, count: int, timeout_s: float = 40
) -> None:
    actor = front.service.get(stream_id)
    await wait_for(
        lambda: actor.status.segments_produced >= count,
        timeout_s,
        f"{count} segments of {stream_id} (state {actor.status.state}, "
        f"error {actor.status.last_error})",
    )


def assert_error(
    response: httpx.Response, status: int, code: str | None = None
) -> dict[str, object]:
    """The stable error shape, JSON, no traceback."""
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/json"), response.headers
    assert "Traceback" not in response.text
    payload = response.json()
    assert set(payload) == {"error"}, payload
    error = payload["error"]
    assert set(error) == {"code", "message", "field"}, error
    assert isinstance(error["code"], str)
    assert isinstance(error["message"], str)
    assert error["message"]
    if code is not None:
        assert error["code"] == code, error
    return error  # type: ignore[no-any-return]


def playlist_uris(text: str) -> list[str]:
    """URIs in an HLS playlist: non-comment lines and URI="…" attributes."""
    uris = [line for line in text.splitlines() if line and not line.startswith("#")]
    uris += re.findall(r'URI="([^"]+)"', text)
    return uris


async def raw_request(
    port: int, target: str, method: str = "GET", *headers: str
) -> tuple[int, bytes, bytes]:
    """Send a request line verbatim (no client-side path normalisation), plus any header lines
    given ("Name: value"); (status, head, body)."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        extra = "".join(f"{line}\r\n" for line in headers)
        request = (
            f"{method} {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{extra}"
            "Connection: close\r\n\r\n"
        )
        await stream.send_all(request.encode("latin-1"))
        chunks = []
        with trio.fail_after(10):
            while True:
                chunk = await stream.receive_some(65536)
                if not chunk:
                    break
                chunks.append(chunk)
    data = b"".join(chunks)
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, head, body
