"""Viewers of a real stream over real HTTP: ``viewers`` in GET /streams/{id} and
``hlsdash_viewers{stream_id}`` count distinct clients polling playlists or the MPD."""

from __future__ import annotations

from pathlib import Path

import pytest
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
