"""hls.js (LL-HLS) and dash.js (LL-DASH) in headless Chromium through the edge cache.

The player page comes from the service; the stream URL is the edge's (``ops/nginx/run-edge`` in
front of the origin port, its default cache: Varnish), so every playlist, MPD, part and segment
request crosses the edge.
Each case asserts real playback (media time advancing, frames decoded, a picture, no fatal
error) and that the player's playlist, part and segment requests crossed the edge (its access
log). Two tabs of one browser share Chromium's HTTP cache, which collapses identical requests
itself, so cache HITs at the edge are shown by tests/integration/test_edge_cache.py instead.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ops.bench.edge import Edge
from tests.e2e.harness import PlayerHarness
from tests.e2e.live_service import LiveService, free_port, run_service
from tests.e2e.test_players import LL_MAX_LATENCY_S, PLAY_TIMEOUT_S
from tests.e2e.test_players import _assert_live_playing as assert_live_playing

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

LL = "ll"
# Varnish releases collapsed requests when the origin answers (README, Edge cache), so the edge
# gets the same sanity bound as straight from the origin (nginx's 500 ms lock poll needed +1 s)
EDGE_MAX_LATENCY_S = LL_MAX_LATENCY_S


@pytest.fixture(scope="module")
def service() -> Iterator[LiveService]:
    with run_service(segment_duration_s=1.0, part_target_s=0.5) as svc:
        svc.create_stream(LL, low_latency=True)
        svc.wait_segments(LL, at_least=3)
        yield svc


@pytest.fixture(scope="module")
def edge(service: LiveService, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Edge]:
    log_path = tmp_path_factory.mktemp("edge") / "edge.log"
    edge = Edge(service.origin_url, free_port(), log_path)
    try:
        yield edge
    finally:
        edge.close()


def access_log(edge: Edge) -> list[str]:
    return edge.access_log_path.read_text().splitlines()


@pytest.mark.parametrize(
    ("engine", "manifest"), [("hlsjs", "playlist.m3u8"), ("dashjs", "manifest.mpd")]
)
def test_low_latency_player_plays_through_the_edge(
    player_harness: PlayerHarness, service: LiveService, edge: Edge, engine: str, manifest: str
) -> None:
    src = f"http://127.0.0.1:{edge.port}/{LL}/{manifest}"
    seen_before = len(access_log(edge))
    with player_harness.player(
        service.api_url, engine, src, low_latency=True, extra={"target": "mpd"}
    ) as session:
        state = session.wait_playing(min_advance_s=3.0, timeout_s=PLAY_TIMEOUT_S)
        state = session.wait_playing(min_advance_s=4.0, timeout_s=PLAY_TIMEOUT_S)
        assert state.raw.get("lowLatency") is True, session.diagnostics(state)
        assert_live_playing(session, state, EDGE_MAX_LATENCY_S)
        print(
            f"\n[edge] {engine} LL through the edge: player-reported latency "
            f"{state.latency_s:.2f} s, wall clock vs PDT/AST {state.pdt_latency_s or 0:.2f} s"
        )
    lines = access_log(edge)[seen_before:]
    media = [line for line in lines if ".m4s " in line]
    assert media, "\n".join(lines[-20:])
    assert all(line.split('" ')[1].split()[0] in {"200", "206"} for line in media), lines[-20:]
    # the player's requests reached the edge and came back through its cache layer
    statuses = {line.split()[-2] for line in lines}
    assert statuses & {"MISS", "HIT", "EXPIRED", "UPDATING", "REVALIDATED"}, lines[-20:]
