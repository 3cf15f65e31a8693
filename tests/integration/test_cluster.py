"""A cluster on loopback: Redis + real ``hlsdash serve`` nodes + real FFmpeg (a 240p ladder).

* two nodes: the non-owner's origin serves the owner's playlist, init, segments and parts byte
  for byte (same strong ETag, same body), an LL-HLS blocking reload answered through the proxy;
  so does the non-owner's API port (``/streams/{id}/…``), multivariant playlist and MPD too;
* three nodes: six streams created through one node spread over all three, every playlist the
  same through every node's origin and API port; SIGKILL the owner of two streams → both live on the others (time
  printed), numbers above the old ones with a discontinuity; SIGSTOP a node past its lease and
  SIGCONT it → its streams moved, it serves nothing of them any more, and no stream ever has
  two FFmpegs.
"""

from __future__ import annotations

import os
import re
import signal
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.integration.cluster_nodes import (
    PROXIED,
    Node,
    cluster_of,
    get_json,
    http,
    wait_until,
)
from tests.integration.live import LAVFI_SOURCE

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def create(node: Node, stream_id: str) -> dict[str, object]:
    status, _headers, body = http(
        "POST",
        f"{node.api}/streams",
        {"stream_id": stream_id, "source_url": LAVFI_SOURCE, "qualities": ["240p"]},
    )
    assert status == 201, body
    import json  # noqa: PLC0415

    view: dict[str, object] = json.loads(body)
    return view


def owner_of(node: Node, stream_id: str) -> str:
    view = get_json(f"{node.api}/streams/{stream_id}")
    owner = view["node"]
    assert isinstance(owner, str)
    return owner


def media_numbers(playlist: str) -> list[int]:
    return [int(n) for n in re.findall(r"seg_(\d+)\.m4s", playlist)]


def playlist_via(node: Node, stream_id: str, query: str = "") -> tuple[int, dict[str, str], bytes]:
    suffix = f"?{query}" if query else ""
    return http("GET", f"{node.origin}/{stream_id}/240p/playlist.m3u8{suffix}")


def same_playlist_everywhere(nodes: list[Node], stream_id: str) -> bool:
    """The media playlist through every node's origin and API port has one strong ETag and one
    body (the first node's answer, revalidated against the others at once: 304 = the very same
    bytes)."""
    status, headers, body = playlist_via(nodes[0], stream_id)
    if status != 200:
        return False
    for base in [n.origin for n in nodes[1:]] + [f"{n.api}/streams" for n in nodes]:
        again, _h, _b = http(
            "GET",
            f"{base}/{stream_id}/240p/playlist.m3u8",
            headers={"if-none-match": headers["etag"]},
        )
        if again != 304:
            return False
    return bool(body)


def is_live(node: Node, stream_id: str, segments: int = 2) -> bool:
    view = get_json(f"{node.api}/streams/{stream_id}")
    return view.get("state") == "live" and int(view.get("segments_produced", 0)) >= segments


def test_a_non_owner_origin_serves_the_owners_bytes(tmp_path: Path) -> None:
    with cluster_of(tmp_path, 2) as (one, two):
        create(one, "cam")  # placed on n1 or n2: find out
        wait_until("live", lambda: is_live(one, "cam", 3), timeout_s=40)
        owner_id = owner_of(two, "cam")
        owner, other = (one, two) if owner_id == "n1" else (two, one)

        # a finished segment, the init, a part: the same bytes and validators both ways
        _s, _h, playlist = playlist_via(owner, "cam")
        text = playlist.decode()
        segment = f"seg_{media_numbers(text)[0]}.m4s"
        init = re.findall(r'#EXT-X-MAP:URI="([^"]+)"', text)
        part = re.findall(r'#EXT-X-PART:[^\n]*URI="([^"]+)"', text)
        assert init
        assert part
        for name in [init[0], segment, part[0]]:
            direct = http("GET", f"{owner.origin}/cam/240p/{name}")
            # through the other node's origin, and through its API port's playback routes
            for base in (other.origin, f"{other.api}/streams"):
                proxied = http("GET", f"{base}/cam/240p/{name}")
                assert direct[0] == proxied[0] == 200, (base, name)
                assert direct[2] == proxied[2], (base, name)
                for header in ("etag", "cache-control", "content-type", "accept-ranges"):
                    assert direct[1].get(header) == proxied[1].get(header), (base, name, header)
        # the multivariant playlist and the MPD on the non-owner's API port: the owner's
        for name in ("playlist.m3u8", "manifest.mpd"):
            direct = http("GET", f"{owner.origin}/cam/{name}")
            proxied = http("GET", f"{other.api}/streams/cam/{name}")
            assert direct[0] == proxied[0] == 200, name
            assert direct[1]["content-type"] == proxied[1]["content-type"], name
            assert direct[1]["cache-control"] == proxied[1]["cache-control"], name
            if name == "playlist.m3u8":  # (the MPD's publishTime moves between two asks)
                assert direct[2] == proxied[2]
            else:
                assert b"<MPD" in proxied[2]
        # a range through the proxy: 206 with the owner's Content-Range
        ranged = http("GET", f"{other.origin}/cam/240p/{segment}", headers={"range": "bytes=0-99"})
        assert ranged[0] == 206
        assert ranged[1]["content-range"].startswith("bytes 0-99/")
        assert len(ranged[2]) == 100

        # the playlist: identical through both (the same ETag revalidates on the owner)
        wait_until("same playlist", lambda: same_playlist_everywhere([other, owner], "cam"))

        # a blocking reload for a part that does not exist yet (the first of the segment after
        # the growing one), through the non-owner: held until it exists, then answered
        _s, _h, latest = playlist_via(owner, "cam")
        msn = max(media_numbers(latest.decode())) + 2
        began = time.monotonic()
        status, headers, body = playlist_via(other, "cam", f"_HLS_msn={msn}&_HLS_part=0")
        assert status == 200
        # the part it asked for is listed: the reload was held until it existed
        assert f"part_{msn}_0.m4s" in body.decode()
        print(f"blocking reload through the proxy answered in {time.monotonic() - began:.2f} s")
        # the owner's cache policy for a blocking reload (its URL is unique)
        assert headers["cache-control"].startswith("public, max-age=")
        # the same through the non-owner's API port
        msn += 1
        status, headers, body = http(
            "GET", f"{other.api}/streams/cam/240p/playlist.m3u8?_HLS_msn={msn}&_HLS_part=0"
        )
        assert status == 200
        assert f"part_{msn}_0.m4s" in body.decode()
        assert headers["cache-control"].startswith("public, max-age=")

        # a stream nobody runs: the local 404, not a loop between nodes
        assert http("GET", f"{other.origin}/nobody/240p/playlist.m3u8")[0] == 404
        assert http("GET", f"{other.api}/streams/nobody/240p/playlist.m3u8")[0] == 404
        # asked as a peer, a node answers itself and never proxies again: it does not run the
        # stream, which the cluster has, so the stream is between nodes (players retry a 503)
        status, headers, body = http(
            "GET", f"{other.origin}/cam/240p/{init[0]}", headers={PROXIED: "1"}
        )
        assert status == 503, body
        assert headers["cache-control"] == "no-store"
        assert b'"stream_moving"' in body


def test_three_nodes_spread_fail_over_and_fence(tmp_path: Path) -> None:
    with cluster_of(tmp_path, 3) as nodes:
        one, two, _three = nodes
        ids = [f"cam{i}" for i in range(6)]
        for stream_id in ids:
            create(one, stream_id)  # all through one node
        owners = {s: owner_of(one, s) for s in ids}
        # placement follows each node's *measured* encoder load, which is noisy on a shared
        # machine: every node gets streams, none takes more than half (2/2/2 when quiet)
        per_node = Counter(owners.values())
        assert set(per_node) == {"n1", "n2", "n3"}, owners
        assert max(per_node.values()) <= 3, owners
        listed = get_json(f"{two.api}/streams")
        assert sorted(v["stream_id"] for v in listed["streams"]) == ids
        assert {v["stream_id"]: v["node"] for v in listed["streams"]} == owners
        for stream_id in ids:
            wait_until(f"{stream_id} live", lambda s=stream_id: is_live(one, s), timeout_s=60)
        for stream_id in ids:
            wait_until(
                f"{stream_id} identical everywhere",
                lambda s=stream_id: same_playlist_everywhere(nodes, s),
            )
        assert [n.ffmpeg_count() for n in nodes] == [per_node[n.node_id] for n in nodes]

        # SIGKILL the owner of the most streams (two when the spread is even)
        by_id = {n.node_id: n for n in nodes}
        victim = by_id[per_node.most_common(1)[0][0]]
        victims_streams = [s for s, o in owners.items() if o == victim.node_id]
        survivors = [n for n in nodes if n is not victim]
        before = {
            s: max(media_numbers(playlist_via(victim, s)[2].decode())) for s in victims_streams
        }
        victim.process.kill()
        victim.process.wait(timeout=10)
        killed_at = time.monotonic()
        for stream_id in victims_streams:
            wait_until(
                f"{stream_id} live elsewhere",
                lambda s=stream_id: (
                    owner_of(survivors[0], s) != victim.node_id
                    and is_live(survivors[0], s, segments=1)
                ),
                timeout_s=40,
            )
        failover_s = time.monotonic() - killed_at
        print(f"fail-over of {len(victims_streams)} streams after SIGKILL: {failover_s:.1f} s")
        for stream_id in victims_streams:
            wait_until(
                f"{stream_id} numbers continue",
                lambda s=stream_id: (
                    min(media_numbers(playlist_via(survivors[0], s)[2].decode())) > before[s]
                ),
            )
            text = playlist_via(survivors[1], stream_id)[2].decode()
            assert "#EXT-X-DISCONTINUITY" in text
        assert sum(n.ffmpeg_count() for n in survivors) == 6

        # SIGSTOP a survivor past its lease, SIGCONT it
        frozen, last = survivors
        frozen_streams = [s for s in ids if owner_of(last, s) == frozen.node_id]
        assert frozen_streams
        os.kill(frozen.process.pid, signal.SIGSTOP)
        try:
            for stream_id in frozen_streams:
                wait_until(
                    f"{stream_id} moved off the frozen node",
                    lambda s=stream_id: (
                        owner_of(last, s) == last.node_id and is_live(last, s, segments=1)
                    ),
                    timeout_s=40,
                )
        finally:
            os.kill(frozen.process.pid, signal.SIGCONT)
        # from the moment it runs again it publishes nothing of them: asked as a peer (so it
        # answers from its own live edge), it has nothing, right away and after
        for _ in range(5):
            for stream_id in frozen_streams:
                status = http(
                    "GET", f"{frozen.origin}/{stream_id}/240p/playlist.m3u8", headers={PROXIED: "1"}
                )[0]
                assert status in {404, 503}, (stream_id, status)
            time.sleep(0.2)
        # its FFmpegs are gone, and no stream runs twice
        wait_until("the frozen node's encoders stopped", lambda: frozen.ffmpeg_count() == 0)
        assert last.ffmpeg_count() == 6
        # and through the thawed node's origin, the streams play from their new owner
        for stream_id in frozen_streams:
            wait_until(
                f"{stream_id} through the thawed node",
                lambda s=stream_id: same_playlist_everywhere([frozen, last], s),
            )
