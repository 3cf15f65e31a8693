"""A playlist or manifest is held once: in the origin's object cache, not also by the live edge.

Review finding: the live edge kept each document's bytes per live-edge version and the playback
object cache kept them again (with hash and gzip), with two different lifetimes: a document the
object cache had dropped (LRU, or its stream ended) stayed alive in the edge. The edge now renders
on demand and the object cache is the only copy. Real FFmpeg, real origin over HTTP.
"""

from __future__ import annotations

import gc
import sys
from pathlib import Path

import pytest

from tests.integration.http_helpers import running_front, stream_body, wait_live_segments
from tests.integration.live import LAVFI_SOURCE

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DOCUMENTS = ("playlist.m3u8", "240p/playlist.m3u8", "manifest.mpd")


async def test_documents_live_in_the_object_cache_only(tmp_path: Path) -> None:
    async with running_front(tmp_path) as front:
        created = await front.api.post(
            "/streams", json=stream_body("once", source_url=LAVFI_SOURCE, qualities=["240p"])
        )
        assert created.status_code == 201, created.text
        await wait_live_segments(front, "once", 1)
        edge = front.service.edge("once")
        version = edge.version
        served = {}
        for name in DOCUMENTS:
            response = await front.origin.get(f"/once/{name}")
            assert response.status_code == 200, (name, response.text)
            served[name] = response.content
        assert served["240p/playlist.m3u8"].startswith(b"#EXTM3U")
        assert b"<MPD" in served["manifest.mpd"]
        cached = [
            front.playback.cache.get((edge.incarnation, name, False, version))
            for name in DOCUMENTS
        ]
        if edge.version != version:  # the edge moved while we asked: compare what was served
            cached = [
                front.playback.cache.get((edge.incarnation, name, False, edge.version))
                for name in DOCUMENTS
            ]
        documents = [c.data for c in cached if c is not None]
        assert documents, "no document of the current version in the object cache"

        # the object cache drops the stream's objects: nothing else may still hold their bytes
        # (counted references: the GC does not track a dict of bytes, so get_referrers misses it)
        front.playback.cache.forget(edge.incarnation)
        del cached
        gc.collect()
        for index in range(len(documents)):
            # two references are ours: the list and getrefcount's own argument
            holders = sys.getrefcount(documents[index]) - 2
            assert holders == 0, f"document {index}: still held {holders} more time(s)"

        deleted = await front.api.delete("/streams/once")
        assert deleted.status_code == 200, deleted.text
