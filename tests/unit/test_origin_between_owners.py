"""The origin's answer for a stream between cluster nodes (its owner just died, nobody has
claimed it yet; a drain hands it over; a peer asked this node as the owner it no longer is).

Before: the local miss, a 404 ``public, max-age=1``. hls.js does not retry a 4xx playlist or
segment (``retryForHttpStatus``: only < 400 or > 499), so a player watching through a surviving
node gave that rendition up at once during every fail-over, and a CDN stored the miss. Now: 503
``stream_moving``, ``no-store``, ``Retry-After: 1``. A stream the cluster does not have, or an
object missing from a stream that runs here, stays a 404.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from supervisor.config import load_settings
from supervisor.http.origin import OriginApp
from supervisor.http.peer_proxy import PROXIED_HEADER, PeerProxy
from supervisor.http.playback import Playback
from supervisor.metrics import Metrics
from supervisor.service import StreamService
from tests.integration.live import service_env


@dataclass
class Cluster:
    """A ClusterView: ``registered`` streams exist in the cluster, none runs on this node."""

    registered: set[str] = field(default_factory=set)
    asked: list[str] = field(default_factory=list)

    async def proxy_target(self, stream_id: str) -> str | None:
        return None  # no live owner elsewhere: the answer is this node's

    async def moving(self, stream_id: str) -> bool:
        self.asked.append(stream_id)
        return stream_id in self.registered

    def fenced(self, stream_id: str) -> bool:
        return False


def origin(tmp_path: Path, cluster: Cluster) -> OriginApp:
    service = StreamService(load_settings(service_env(tmp_path)))
    return OriginApp(Playback(service), Metrics(service), cluster=cluster, proxy=PeerProxy())


async def test_a_stream_between_owners_is_a_503_players_retry_and_caches_skip(
    tmp_path: Path,
) -> None:
    cluster = Cluster(registered={"cam"})
    app = origin(tmp_path, cluster)
    for path in ["/cam/240p/playlist.m3u8", "/cam/playlist.m3u8", "/cam/manifest.mpd",
                 "/cam/240p/seg_7.m4s"]:  # fmt: skip
        _route, answer = await app.respond("GET", path, "", {})
        assert answer.status == 503, path
        headers = dict(answer.headers)
        assert headers["cache-control"] == "no-store"
        assert headers["retry-after"] == "1"
        assert headers["access-control-allow-origin"] == "*"
        assert json.loads(answer.body)["error"]["code"] == "stream_moving"
    # asked by a peer that still thinks this node runs it: the same, so its viewer retries
    _route, answer = await app.respond("GET", "/cam/240p/playlist.m3u8", "", {PROXIED_HEADER: "1"})
    assert answer.status == 503
    # HEAD: the status and headers, no body
    _route, answer = await app.respond("HEAD", "/cam/240p/playlist.m3u8", "", {})
    assert answer.status == 503
    assert answer.body == b""


async def test_a_stream_the_cluster_does_not_have_stays_a_cacheable_404(tmp_path: Path) -> None:
    cluster = Cluster(registered={"cam"})
    app = origin(tmp_path, cluster)
    _route, answer = await app.respond("GET", "/nobody/240p/playlist.m3u8", "", {})
    assert answer.status == 404
    assert dict(answer.headers)["cache-control"] == "public, max-age=1"
    assert cluster.asked == ["nobody"]
