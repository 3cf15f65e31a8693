"""Push ingest in a cluster on loopback: Redis + two real ``hlsdash serve`` nodes + real FFmpeg.

A push stream created through one node and placed on the other hands out publish URLs that reach
the node that runs it (its ingest host and RTMP port); FFmpeg publishing RTMP to the URL the 201
gave makes it live, played through the other node. WHIP sent to the node that does not run the
stream is forwarded to the one that does (refusals come back as its owner gives them). The owner
SIGKILLed: the stream is back ``waiting`` on the survivor with the same key, and a publisher with
that key makes it live there, numbers above the old ones.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from tests.integration.cluster_nodes import Node, cluster_of, get_json, http, wait_until
from tests.integration.push import publishing
from tests.integration.whip_helpers import whip_publisher

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PUBLISHED_SIZE = "320x240"  # small: two nodes and a publisher share two cores


def create_push(node: Node, stream_id: str, protocol: str) -> dict[str, object]:
    status, _headers, body = http(
        "POST",
        f"{node.api}/streams",
        {"stream_id": stream_id, "ingest": protocol, "qualities": ["240p"], "low_latency": True},
    )
    assert status == 201, body
    view: dict[str, object] = json.loads(body)
    return view


def state_of(node: Node, stream_id: str) -> dict[str, object]:
    return get_json(f"{node.api}/streams/{stream_id}")


def numbers(playlist: bytes) -> list[int]:
    return [int(n) for n in re.findall(r"seg_(\d+)\.m4s", playlist.decode())]


def test_a_push_stream_placed_elsewhere_is_published_there_and_fails_over(
    tmp_path: Path,
) -> None:
    with cluster_of(tmp_path, 2, WEBRTC_HOST_ADDRESSES="127.0.0.1") as (one, two):
        # created through n1; placement spreads by load, so within a few one lands on n2
        placed: dict[str, object] | None = None
        for index in range(4):
            view = create_push(one, f"push{index}", "rtmp")
            if view["node"] == "n2":
                placed = view
                break
        assert placed is not None, "no push stream was placed on n2"
        stream_id = str(placed["stream_id"])
        ingest = placed["ingest"]
        assert isinstance(ingest, dict)
        key = str(ingest["stream_key"])
        # the URL reaches n2's own RTMP listener (the host peers reach it by), not n1's
        assert ingest["server"] == f"rtmp://127.0.0.1:{two.rtmp_port}/live"
        assert ingest["publish_url"] == f"{ingest['server']}/{key}"
        assert state_of(one, stream_id)["state"] == "waiting"
        # asked by another name (a load balancer's, say: here "localhost"), a node that keeps
        # the stream still gives its own host, the one its peers reach it by (NODE_API_URL)
        for index in range(4):
            status, _h, body = http(
                "POST",
                f"http://localhost:{one.api_port}/streams",
                {"stream_id": f"named{index}", "ingest": "rtmp", "qualities": ["240p"]},
            )
            assert status == 201, body
            named = json.loads(body)
            if named["node"] == "n1":
                assert named["ingest"]["server"] == f"rtmp://127.0.0.1:{one.rtmp_port}/live"
                break
        else:
            raise AssertionError("no push stream was placed on n1")

        with publishing(str(ingest["publish_url"]), "flv", size=PUBLISHED_SIZE):
            wait_until(
                "live on n2",
                lambda: (
                    state_of(one, stream_id)["state"] == "live"
                    and int(state_of(one, stream_id)["segments_produced"]) >= 2
                ),  # type: ignore[call-overload]
                timeout_s=60,
            )
            # played through n1 (which proxies to n2), on its origin and its API port
            for url in (
                f"{one.origin}/{stream_id}/240p/playlist.m3u8",
                f"{one.api}/streams/{stream_id}/240p/playlist.m3u8",
            ):
                status, _h, body = http("GET", url)
                assert status == 200, url
                assert numbers(body), url
            before = max(numbers(http("GET", f"{two.origin}/{stream_id}/240p/playlist.m3u8")[2]))

        # WHIP arriving at n1 for a WHIP stream n2 runs is n2's to answer: forwarded, so a
        # wrong key is n2's 401 and a bad offer with the right key n2's 4xx, not n1's 404
        whip_id, whip_key = _whip_stream_on(two, one)
        assert state_of(two, whip_id)["node"] == "n2"
        status, headers, body = http(
            "POST",
            f"{one.api}/streams/{whip_id}/whip",
            b"v=0\r\n",
            headers={"content-type": "application/sdp", "authorization": "Bearer wrong"},
        )
        assert status == 401, body
        assert headers["access-control-allow-origin"] == "*"
        assert json.loads(body)["error"]["code"]
        status, _headers, _body = http(
            "DELETE", f"{one.api}/streams/{whip_id}/whip/no-such-session"
        )
        assert status == 404  # n2's answer: no such session (n1 would say no such stream too)
        # FFmpeg's WHIP muxer publishing to n1's URL: the offer is forwarded to n2, n2's answer
        # (its ICE candidates: media goes straight to n2) and Location come back; at its end
        # FFmpeg DELETEs that Location on n1, which forwards it to n2
        with whip_publisher(
            f"{one.api}/streams/{whip_id}/whip", whip_key, size=PUBLISHED_SIZE, seconds=20
        ) as publisher:
            wait_until(
                "WHIP live on n2",
                lambda: state_of(one, whip_id)["state"] == "live",
                timeout_s=40,
            )
            assert publisher.wait(timeout=40) == 0
        wait_until(
            "the WHIP session ended by its DELETE",
            lambda: "ended by the publisher (DELETE)" in two.log_path.read_text(),
            timeout_s=10,
        )
        wait_until("WHIP waiting again", lambda: state_of(one, whip_id)["state"] == "waiting")

        # the owner dies: the push stream is back waiting on n1 with the same key
        two.process.kill()
        two.process.wait(timeout=10)
        wait_until(
            "waiting on n1",
            lambda: (
                state_of(one, stream_id).get("node") == "n1"
                and state_of(one, stream_id)["state"] == "waiting"
            ),
            timeout_s=40,
        )
        moved = state_of(one, stream_id)["ingest"]
        assert isinstance(moved, dict)
        assert moved["server"] == f"rtmp://127.0.0.1:{one.rtmp_port}/live"
        assert moved["stream_key"] is None  # shown once, at creation: the publisher has it
        with publishing(f"{moved['server']}/{key}", "flv", size=PUBLISHED_SIZE):
            wait_until(
                "live again on n1",
                lambda: state_of(one, stream_id)["state"] == "live",
                timeout_s=60,
            )
            wait_until(
                "numbers above the old ones",
                lambda: (
                    min(
                        numbers(http("GET", f"{one.origin}/{stream_id}/240p/playlist.m3u8")[2])
                        or [-1]
                    )
                    > before
                ),
                timeout_s=60,
            )
        text = http("GET", f"{one.origin}/{stream_id}/240p/playlist.m3u8")[2].decode()
        assert "#EXT-X-DISCONTINUITY" in text


def _whip_stream_on(owner: Node, through: Node) -> tuple[str, str]:
    """A WHIP push stream created through ``through`` that lands on ``owner``: (id, key)."""
    started = time.monotonic()
    for index in range(6):
        view = create_push(through, f"whip{index}", "whip")
        if view["node"] == owner.node_id:
            ingest = view["ingest"]
            assert isinstance(ingest, dict)
            return str(view["stream_id"]), str(ingest["stream_key"])
    raise AssertionError(f"no WHIP stream placed on {owner.node_id} ({time.monotonic() - started})")
