"""Players through a cluster: real players in headless Chromium play a stream through a node that
does not own it (its origin proxies to the owner's), and keep playing when the owner is SIGKILLed.

Redis + two real ``hlsdash serve`` nodes on loopback (tests/integration/cluster_nodes.py), one
240p LL stream on node A, the player page and the stream URL both on node B:

* dash.js (LL-DASH) plays through B: the MPD, init and growing chunked segments are A's, relayed;
* hls.js (LL-HLS) plays through B; SIGKILL A → the stream is live on B (``GET /streams/{id}``
  says so), the playlist through B goes on with higher numbers after an ``EXT-X-DISCONTINUITY``,
  and hls.js, never touched, is still playing 15 s after the kill. While the stream moves, B's
  origin answers at once with 5xx, ``no-store`` (502 ``owner_unreachable`` until A is known
  dead, then 503 ``stream_moving`` until B has claimed it; before, that was a cacheable 404
  hls.js never retries). hls.js's 2 playlist retries (~3 s) are shorter than a fail-over, so
  its fatal *load* errors are allowed (the page restarts loading, as hls.js documents); any
  other fatal error fails the test. The 5xx answers the player got are printed.

The hls.js case kills a node, so it runs last on the module's cluster.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.harness import PlayerHarness, only_load_errors_fatal
from tests.integration.cluster_nodes import Node, cluster_of, get_json, http, wait_until
from tests.integration.live import LAVFI_SOURCE

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

STREAM = "roaming"
# after the kill the player must still be playing this long after it (the brief's "15 s later")
STILL_PLAYING_AFTER_KILL_S = 15.0


@dataclass(frozen=True)
class Roles:
    owner: Node  # runs the stream's FFmpeg: the node that will be killed
    viewer: Node  # serves the player page and the stream URL without owning the stream


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Roles]:
    tmp_path: Path = tmp_path_factory.mktemp("cluster")
    with cluster_of(tmp_path, 2) as (one, two):
        status, _headers, body = http(
            "POST",
            f"{one.api}/streams",
            {
                "stream_id": STREAM,
                "source_url": LAVFI_SOURCE,
                "qualities": ["240p"],
                "low_latency": True,
            },
        )
        assert status == 201, body
        wait_until("live", lambda: live_on(one, STREAM) is not None, timeout_s=60)
        owner_id = live_on(two, STREAM)
        owner, viewer = (one, two) if owner_id == one.node_id else (two, one)
        yield Roles(owner=owner, viewer=viewer)


def live_on(asked: Node, stream_id: str, segments: int = 3) -> str | None:
    """The node running ``stream_id`` (as ``asked`` reports it) once it is live, else None."""
    view = get_json(f"{asked.api}/streams/{stream_id}")
    if view.get("state") != "live" or int(view.get("segments_produced", 0)) < segments:
        return None
    node = view["node"]
    assert isinstance(node, str)
    return node


def media_playlist_via(node: Node) -> str:
    status, _headers, body = http("GET", f"{node.origin}/{STREAM}/240p/playlist.m3u8")
    assert status == 200, (status, body[:300])
    return body.decode()


def numbers(playlist: str) -> set[int]:
    """Segment numbers listed, complete or with parts only (the growing one counts)."""
    found = {int(n) for n in re.findall(r"^seg_(\d+)\.m4s", playlist, re.MULTILINE)}
    return found | {int(n) for n in re.findall(r'URI="part_(\d+)_\d+\.m4s"', playlist)}


def discontinuities(playlist: str) -> int:
    """Breaks since the stream began: those gone from the window plus those still listed."""
    sequence = re.search(r"^#EXT-X-DISCONTINUITY-SEQUENCE:(\d+)$", playlist, re.MULTILINE)
    assert sequence is not None, playlist
    listed = re.findall(r"^#EXT-X-DISCONTINUITY$", playlist, re.MULTILINE)
    return int(sequence[1]) + len(listed)


def test_dashjs_plays_ll_dash_through_a_non_owner(
    player_harness: PlayerHarness, cluster: Roles
) -> None:
    src = f"{cluster.viewer.origin}/{STREAM}/manifest.mpd"
    with player_harness.player(cluster.viewer.api, "dashjs", src, low_latency=True) as session:
        first = session.wait_playing(min_advance_s=3.0, timeout_s=40)
        state = session.wait_playing(min_advance_s=3.0, timeout_s=30)
        diagnostics = session.diagnostics(state)
        assert not state.fatal, diagnostics
        assert state.raw.get("live") is True, diagnostics
        assert state.raw.get("lowLatency") is True, diagnostics
        assert state.video_height == 240, diagnostics
        assert state.decoded_frames > first.decoded_frames, diagnostics
        print(f"\ndash.js through the non-owner: latency {state.latency_s} s (noisy)")
    # the owner did not move meanwhile: what played was proxied
    assert live_on(cluster.viewer, STREAM) == cluster.owner.node_id


def test_hlsjs_through_a_non_owner_keeps_playing_when_the_owner_is_killed(
    player_harness: PlayerHarness, cluster: Roles
) -> None:
    owner, viewer = cluster.owner, cluster.viewer
    src = f"{viewer.origin}/{STREAM}/playlist.m3u8"
    with player_harness.player(viewer.api, "hlsjs", src, low_latency=True) as session:
        before = session.wait_playing(min_advance_s=3.0, timeout_s=40)
        assert not before.fatal, session.diagnostics(before)
        newest_seen = max(numbers(media_playlist_via(viewer)))
        breaks_before = discontinuities(media_playlist_via(viewer))

        owner.process.kill()
        owner.process.wait(timeout=10)
        killed = time.monotonic()

        moved_s = wait_until(
            "the stream live on the surviving node",
            lambda: live_on(viewer, STREAM, segments=1) == viewer.node_id,
            timeout_s=40,
        )
        listed = {n["node_id"]: n for n in get_json(f"{viewer.api}/cluster")["nodes"]}
        assert listed[viewer.node_id]["alive"], listed
        # numbers go on above anything a player may have seen, after a discontinuity
        wait_until(
            "numbers above the old ones",
            lambda: min(numbers(media_playlist_via(viewer))) > newest_seen,
            timeout_s=30,
        )
        assert discontinuities(media_playlist_via(viewer)) > breaks_before

        recovered = session.wait_playing(
            min_advance_s=3.0, timeout_s=45, through_network_outage=True
        )
        recovered_s = time.monotonic() - killed
        remaining_s = STILL_PLAYING_AFTER_KILL_S - (time.monotonic() - killed)
        if remaining_s > 0:
            session.page.wait_for_timeout(remaining_s * 1000)
        later = session.wait_playing(min_advance_s=2.0, timeout_s=20, through_network_outage=True)
        print(
            f"\nhls.js through the non-owner: the stream moved {moved_s:.1f} s after the kill, "
            f"3 s more media played {recovered_s:.1f} s after it; still playing "
            f"{time.monotonic() - killed:.1f} s after it; errors: {json.dumps(later.errors)}"
        )
        failed = [line for line in session.console if line.startswith("[http ")]
        print("answers >= 400 the player got:\n" + "\n".join(failed))
        assert later.current_time_s > recovered.current_time_s > before.current_time_s
        assert later.decoded_frames > recovered.decoded_frames > before.decoded_frames
        assert later.video_width > 0
        # the only fatal errors: loads that failed while the stream had no owner
        assert only_load_errors_fatal(later), session.diagnostics(later)
