"""A stream deleted and created again under the same id never gets the old stream's bytes.

Defect found in review: the origin cached built objects under ``id(actor)``; CPython reuses a
freed object's address, so a re-created stream could be answered from an ended stream's cache
entries (init, segments: ``immutable``, a year at the CDN). The cache key is now the actor's
incarnation. Real FFmpeg, real origin over HTTP; every object served must equal the bytes the
new stream wrote to disk. ``HLSDASH_RECREATE_CYCLES`` raises the count (hundreds for a soak).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from tests.integration.http_helpers import running_front, stream_body, wait_live_segments
from tests.integration.live import LAVFI_SOURCE

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CYCLES = int(os.environ.get("HLSDASH_RECREATE_CYCLES", "6"))
# two sources whose encoded media differ (pattern, tone), alternated under one stream id
OTHER_SOURCE = (
    "lavfi:smptebars=size=426x240:rate=30[out0];sine=frequency=880:sample_rate=48000[out1]"
)


async def test_a_recreated_stream_is_served_its_own_bytes(tmp_path: Path) -> None:
    async with running_front(tmp_path) as front:
        for cycle in range(CYCLES):
            source = LAVFI_SOURCE if cycle % 2 == 0 else OTHER_SOURCE
            created = await front.api.post(
                "/streams", json=stream_body("again", source_url=source, qualities=["240p"])
            )
            assert created.status_code == 201, created.text
            await wait_live_segments(front, "again", 1)
            folder = tmp_path / "again" / "240p"

            playlist = await front.origin.get("/again/240p/playlist.m3u8")
            assert playlist.status_code == 200
            init_name = re.search(r'#EXT-X-MAP:URI="([^"]+)"', playlist.text)
            assert init_name is not None, playlist.text
            first_segment = next(
                line for line in playlist.text.splitlines() if line.startswith("seg_")
            )
            for name in (init_name.group(1), first_segment):
                served = await front.origin.get(f"/again/240p/{name}")
                assert served.status_code == 200, (cycle, name, served.status_code)
                on_disk = (folder / name).read_bytes()
                assert served.content == on_disk, f"cycle {cycle}: {name} is another stream's"
            # documents too: the plain MPD on disk and the served one list the same segments
            manifest = await front.origin.get("/again/manifest.mpd")
            assert manifest.status_code == 200
            assert 'id="240p"' in manifest.text

            incarnation = front.service.edge("again").incarnation
            assert front.playback.cache.entries_of(incarnation) > 0
            deleted = await front.api.delete("/streams/again")
            assert deleted.status_code == 200, deleted.text
            assert not (tmp_path / "again").exists()
            # its objects left the cache with it (not only when LRU pushes them out)
            assert front.playback.cache.entries_of(incarnation) == 0
