"""Viewers of a real stream over real HTTP: ``viewers`` in GET /streams/{id} and
``hlsdash_viewers{stream_id}`` count distinct clients polling playlists or the MPD."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import trio
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.http_helpers import running_front, stream_body, wait_live_segments

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def viewers_metric(text: str, stream_id: str) -> float | None:
    for family in text_string_to_metric_families(text):
        if family.name == "hlsdash_viewers":
            for sample in family.samples:
                if sample.labels["stream_id"] == stream_id:
                    return sample.value
    return None


async def test_viewers_counts_distinct_polling_clients(tmp_path: Path) -> None:
    async with running_front(tmp_path) as front:
        created = await front.api.post("/streams", json=stream_body("v1"))
        assert created.status_code == 201, created.text
        assert created.json()["viewers"] == 0
        await wait_live_segments(front, "v1", 1)
        metrics = (await front.api.get("/metrics")).text
        assert viewers_metric(metrics, "v1") == 0

        # media requests are not polls; a 404 is not watching
        playlist = await front.origin.get("/v1/240p/playlist.m3u8?session=tab-a")
        assert playlist.status_code == 200
        assert (await front.origin.get("/v1/240p/init_1.mp4?session=tab-z")).status_code in {
            200,
            404,
        }
        assert (await front.origin.get("/v1/nope/playlist.m3u8?session=tab-y")).status_code == 404
        # the same session polling again (another playlist, the MPD) stays one viewer
        for path in ("/v1/playlist.m3u8?session=tab-a", "/v1/manifest.mpd?session=tab-a"):
            assert (await front.origin.get(path)).status_code == 200
        assert (await front.origin.get("/v1/manifest.mpd?session=tab-b")).status_code == 200
        # no session: address (when known) + user agent; the API port's playback counts too
        assert (await front.origin.get("/v1/playlist.m3u8")).status_code == 200
        assert (
            await front.api.get("/streams/v1/playlist.m3u8", headers={"user-agent": "player-2"})
        ).status_code == 200

        status = (await front.api.get("/streams/v1")).json()
        assert status["viewers"] == 4, status
        listed = (await front.api.get("/streams")).json()["streams"]
        assert [s["viewers"] for s in listed if s["stream_id"] == "v1"] == [4]
        metrics = (await front.api.get("/metrics")).text
        assert viewers_metric(metrics, "v1") == 4


async def _poll_from(address: str, port: int, target: str) -> trio.SocketStream:
    stream = await trio.open_tcp_stream("127.0.0.1", port, local_address=address)
    await stream.send_all(
        f"GET {target} HTTP/1.1\r\nHost: x\r\nUser-Agent: same-player\r\n\r\n".encode()
    )
    return stream


async def _status_of_answer(stream: trio.SocketStream) -> int:
    data = b""
    with trio.fail_after(30):
        while b"\r\n" not in data:
            chunk = await stream.receive_some(65536)
            assert chunk, data
            data += chunk
    return int(data.split(b" ", 2)[1])


async def test_origin_fast_path_counts_viewers_per_peer(tmp_path: Path) -> None:
    """Review finding: the origin's HTTP/1.1 fast path gave no peer address, so players with the
    same user agent and no session tag counted as one viewer, and the followers of a collapsed
    blocking reload were not counted at all. Five clients on five loopback addresses, the same
    user agent: two plain polls, three identical blocking reloads (one asks, two share)."""
    async with running_front(tmp_path) as front:
        created = await front.api.post("/streams", json=stream_body("peers"))
        assert created.status_code == 201, created.text
        await wait_live_segments(front, "peers", 1)
        port = front.origin_port
        for address in ("127.0.0.2", "127.0.0.3"):
            async with await _poll_from(address, port, "/peers/240p/playlist.m3u8") as stream:
                assert await _status_of_answer(stream) == 200
        status = (await front.api.get("/streams/peers")).json()
        assert status["viewers"] == 2, status

        playlist = (await front.origin.get("/peers/240p/playlist.m3u8")).text
        media_sequence = int(re.search(r"#EXT-X-MEDIA-SEQUENCE:(\d+)", playlist).group(1))  # type: ignore[union-attr]
        segments = sum(1 for line in playlist.splitlines() if line.startswith("#EXTINF"))
        ahead = f"/peers/240p/playlist.m3u8?_HLS_msn={media_sequence + segments + 1}&_HLS_part=0"
        waiting = [
            await _poll_from(address, port, ahead)
            for address in ("127.0.0.4", "127.0.0.5", "127.0.0.6")
        ]
        for stream in waiting:
            assert await _status_of_answer(stream) == 200
            await stream.aclose()
        status = (await front.api.get("/streams/peers")).json()
        # the httpx client above polled too (127.0.0.1, its own user agent)
        assert status["viewers"] == 6, status
