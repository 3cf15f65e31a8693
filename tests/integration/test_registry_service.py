"""The service with a real registry behind its API (in-process, real FFmpeg): what it writes while
streams run, what it removes, and a registry that stops answering (a real redis-server shut down
under it): 503 registry_unavailable, nothing started, nothing running lost."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import trio

from supervisor.registry import open_registry
from supervisor.registry.writer import DEFAULT_WRITE_INTERVAL_S
from tests.integration.http_helpers import running_front, stream_body, wait_live_segments
from tests.integration.live import wait_for
from tests.redis_server import redis_command, running_redis

pytestmark = [pytest.mark.integration, pytest.mark.slow]


async def test_positions_are_written_and_ended_streams_removed(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path / 'registry.db'}"
    async with open_registry(url) as registry, running_front(
        tmp_path / "streams", registry=registry, STALE_THRESHOLD="6"
    ) as front:
        assert (await front.api.post("/streams", json=stream_body("kept"))).status_code == 201
        assert (await front.api.post("/streams", json=stream_body("stale"))).status_code == 201
        record = await registry.get("kept")
        assert record is not None
        assert record.owner_node_id == "local"
        await wait_live_segments(front, "kept", 3)
        # written off the hot path, within about one write interval of the commit
        await trio.sleep(DEFAULT_WRITE_INTERVAL_S + 0.5)
        record = await registry.get("kept")
        assert record is not None
        assert record.position is not None
        produced = front.service.get("kept").status.segments_produced
        assert produced - 2 <= record.position.last_number + 1 <= produced
        assert record.position.availability_start_unix_s == record.created_unix_s
        # no heartbeat: "stale" ends by itself after STALE_THRESHOLD and leaves the registry
        # ("kept" gets its heartbeats)
        assert (await front.api.post("/streams/kept/heartbeat")).status_code == 200
        await wait_for(
            front.service.get("stale").finished.is_set, 20, "the stale stream to end"
        )
        assert (await front.api.post("/streams/kept/heartbeat")).status_code == 200
        await trio.sleep(DEFAULT_WRITE_INTERVAL_S + 0.5)
        assert await registry.get("stale") is None
        metrics = (await front.api.get("/metrics")).text
        assert "hlsdash_registry_available 1.0" in metrics
        writes = float(re.search(r"^hlsdash_registry_writes_total (\S+)$", metrics, re.M)[1])
        assert writes >= 2  # positions of "kept", the removal of "stale"
        # DELETE removes the record before it answers
        assert (await front.api.delete("/streams/kept")).status_code == 200
        assert await registry.get("kept") is None
        assert await registry.list_streams() == []


async def test_a_registry_that_stops_answering_is_a_503_and_loses_nothing(tmp_path: Path) -> None:
    # (and when it answers again, nothing was lost: the client reconnects by itself)
    with running_redis(tmp_path / "redis") as port:
        async with open_registry(f"redis://127.0.0.1:{port}/0") as registry, running_front(
            tmp_path / "streams", registry=registry
        ) as front:
            assert (await front.api.post("/streams", json=stream_body("cam"))).status_code == 201
            await wait_live_segments(front, "cam", 1)
            redis_command(port, "SHUTDOWN", "SAVE")  # the registry goes away (data on disk)

            created = await front.api.post("/streams", json=stream_body("new"))
            assert created.status_code == 503
            assert created.json()["error"]["code"] == "registry_unavailable"
            assert created.headers["retry-after"] == "5"
            assert (await front.api.get("/streams/new")).status_code == 404  # nothing started

            deleted = await front.api.delete("/streams/cam")
            assert deleted.status_code == 503
            assert deleted.json()["error"]["code"] == "registry_unavailable"
            # the stream runs on and keeps publishing (its position writes wait for the registry)
            before = front.service.get("cam").status.segments_produced
            await wait_live_segments(front, "cam", before + 2)
            stream = (await front.api.get("/streams/cam")).json()
            assert stream["state"] == "live"
            await trio.sleep(DEFAULT_WRITE_INTERVAL_S + 0.5)
            metrics = (await front.api.get("/metrics")).text
            assert "hlsdash_registry_available 0.0" in metrics

            # Redis back (same port, its data reloaded): the client reconnects by itself, the
            # waiting positions are written, DELETE works
            with running_redis(tmp_path / "redis", port=port):
                await wait_for(
                    lambda: front.service.registry_writer is not None
                    and front.service.registry_writer.available,
                    10,
                    "registry writes to succeed again",
                )
                record = await registry.get("cam")
                assert record is not None
                assert record.position is not None
                assert record.position.last_number + 1 >= before
                assert (await front.api.delete("/streams/cam")).status_code == 200
                assert await registry.get("cam") is None


async def test_a_created_or_claimed_stream_gets_the_normal_lease_counted_from_the_call(
    tmp_path: Path,
) -> None:
    """The first lease of a stream is CLUSTER_LEASE_TTL, as every renewal's (it was 30 s, so a
    node dying right after a create left the stream unowned that long), and the node's gate
    counts it from when the register/claim call was sent: a node cut off from the registry
    before its first renewal stops publishing when that lease ends, as for any other lease."""
    import time  # noqa: PLC0415

    from actors.status import StreamSpec  # noqa: PLC0415
    from supervisor.cluster.local import ServiceStreams  # noqa: PLC0415
    from tests.integration.live import LAVFI_SOURCE  # noqa: PLC0415

    ttl_s = 4.0
    url = f"sqlite://{tmp_path / 'registry.db'}"
    async with open_registry(url) as registry, running_front(
        tmp_path / "streams", registry=registry, CLUSTER_LEASE_TTL=str(ttl_s)
    ) as front:
        local = ServiceStreams(front.service)
        asked_unix_s, asked_at = time.time(), trio.current_time()
        assert (await front.api.post("/streams", json=stream_body("made"))).status_code == 201
        record = await registry.get("made")
        assert record is not None
        assert record.lease_expires_unix_s is not None
        assert asked_unix_s + ttl_s <= record.lease_expires_unix_s <= time.time() + ttl_s
        sent_at = local.lease_sent_at("made")
        assert sent_at is not None
        assert asked_at <= sent_at <= trio.current_time()

        # a stream another node registered (with a long lease) and this one claims
        spec = StreamSpec(stream_id="taken", source_url=LAVFI_SOURCE, qualities=("240p",))
        await registry.register(spec, node_id="gone", created_unix_s=time.time(), lease_ttl_s=60)
        before = await registry.get("taken")
        assert before is not None
        asked_unix_s, asked_at = time.time(), trio.current_time()
        assert await front.service.resume(before)
        claimed = await registry.get("taken")
        assert claimed is not None
        assert claimed.owner_node_id == "local"
        assert claimed.lease_expires_unix_s is not None
        assert asked_unix_s + ttl_s <= claimed.lease_expires_unix_s <= time.time() + ttl_s
        sent_at = local.lease_sent_at("taken")
        assert sent_at is not None
        assert asked_at <= sent_at <= trio.current_time()
        assert (await front.api.delete("/streams/taken")).status_code == 200
        assert (await front.api.delete("/streams/made")).status_code == 200
