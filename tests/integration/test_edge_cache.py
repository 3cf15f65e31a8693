"""The edge cache (ops/nginx/run-edge: Varnish, the default, and ``--cache nginx``) in front of a
real service: correct bytes, every miss collapsed. The load is ops/bench/edge's LL-HLS players at a
small count (20); the 200-player run is ``python -m ops.bench.edge``. Delays are printed, never
asserted (the machine is shared)."""

from __future__ import annotations

import re
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from ops.bench.common import Service, free_port, lavfi_source, running_service
from ops.bench.edge import CANDIDATES, RENDITION, STREAM, Edge, measure

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PLAYERS = 20
# the default edge (Varnish) and the nginx one, each with every miss collapsed
CACHES = ["varnish", "nginx"]


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    workdir = tmp_path_factory.mktemp("edge")
    with running_service(
        workdir, ENCODER_PRESET="ultrafast", SEGMENT_DURATION="1", PART_TARGET="0.5"
    ) as svc:
        svc.create(
            STREAM, "lavfi:" + lavfi_source(426, 240), qualities=[RENDITION], low_latency=True
        )
        svc.wait_segments(STREAM, 3, timeout_s=60)
        yield svc


def get(url: str, **headers: str) -> tuple[int, bytes, dict[str, str]]:
    request = urllib.request.Request(url, headers=headers)
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.status, response.read(), {k.lower(): v for k, v in response.headers.items()}


@pytest.mark.parametrize("cache", CACHES)
def test_edge_serves_the_origins_bytes_and_caches_by_origin_rules(
    service: Service, tmp_path: Path, cache: str
) -> None:
    edge = Edge(service.origin, free_port(), tmp_path / "edge.log", flags=CANDIDATES[cache])
    try:
        base = f"http://127.0.0.1:{edge.port}/{STREAM}/{RENDITION}"
        origin_base = f"{service.origin}/{STREAM}/{RENDITION}"
        playlist = get(f"{origin_base}/playlist.m3u8")[1].decode()
        found = re.search(r'#EXT-X-MAP:URI="([^"]+)"', playlist)
        assert found, playlist
        name = found[1]
        status, body, headers = get(f"{base}/{name}")
        o_status, o_body, o_headers = get(f"{origin_base}/{name}")
        assert (status, body) == (o_status, o_body)
        assert headers["etag"] == o_headers["etag"]
        assert headers["cache-control"] == "public, max-age=31536000, immutable"
        assert headers["access-control-allow-origin"] == "*"
        assert headers["x-cache-status"] == "MISS"
        assert get(f"{base}/{name}")[2]["x-cache-status"] == "HIT"
        # a playlist: gzip for a client that asks, from one identity copy; no-cache /time bypasses
        gz_headers = get(f"{base}/playlist.m3u8", **{"Accept-Encoding": "gzip"})[2]
        assert gz_headers.get("content-encoding") == "gzip"
        assert gz_headers["vary"] == "Accept-Encoding"
        _, plain, plain_headers = get(f"{base}/playlist.m3u8")
        assert "content-encoding" not in plain_headers
        assert plain.startswith(b"#EXTM3U")
        assert get(f"http://127.0.0.1:{edge.port}/time")[2]["x-cache-status"] == "MISS"
        assert get(f"http://127.0.0.1:{edge.port}/time")[2]["x-cache-status"] == "MISS"
    finally:
        edge.close()


@pytest.mark.parametrize("cache", CACHES)
def test_edge_collapses_every_miss_of_many_ll_hls_players(
    service: Service, tmp_path: Path, cache: str
) -> None:
    edge = Edge(service.origin, free_port(), tmp_path / "edge.log", flags=CANDIDATES[cache])
    try:
        result = measure(
            cache,
            service.api,
            host="127.0.0.1",
            port=edge.port,
            origin_port=service.origin_port,
            clients=PLAYERS,
            seconds=6.0,
        )
    finally:
        edge.close()
    print("\n" + result.summary())
    assert set(result.statuses) == {200}, result.summary()
    # the players followed the live edge: several parts, each a blocking reload answered
    assert result.objects >= 10, result.summary()
    assert len(result.delays_s) >= PLAYERS * 4, result.summary()
    assert result.requests >= PLAYERS * result.objects // 2, result.summary()
    assert result.origin_requests <= 1.1 * result.objects, result.summary()
    # blocking reloads too: one origin request per distinct _HLS_msn/_HLS_part URL, not per player
    # (20 here). Two more are allowed: in one full parallel suite run (2 cores, encoders of other
    # tests running) nginx sent 16 for 14 URLs; 1.00x in 7 runs alone or beside 3 CPU burners.
    reloads_forwarded, reload_urls = result.by_kind["media_playlist"]
    assert reloads_forwarded <= 1.1 * reload_urls + 2, result.summary()
