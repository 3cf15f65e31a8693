"""ClusterNode against a real redis-server and the real Redis registry, with in-memory local
streams: leases renewed, a refused renewal and an unreachable registry both stop the stream here,
orphans of a dead node claimed once, drain hands streams over. Real time, short leases."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import coredis
import pytest
import trio

from actors.status import StreamSpec
from ops.bench.cluster_scale import RecordStreams
from supervisor.cluster.node import ORPHANS_KEY, ClusterNode, ClusterSettings
from supervisor.cluster.placement import rendezvous_node
from supervisor.registry import open_registry
from supervisor.registry.interface import StreamRegistry
from tests.redis_server import running_redis

pytestmark = pytest.mark.integration

TTL_S = 1.5  # rounds of 0.5 s: short, yet renewals keep up on a loaded 2-core machine


@dataclass
class Cluster:
    url: str
    redis: coredis.Redis[str]
    registry: StreamRegistry
    nursery: trio.Nursery

    async def node(
        self, node_id: str, cost: float = 0.0
    ) -> tuple[ClusterNode, RecordStreams, trio.CancelScope]:
        streams = RecordStreams(self.registry, node_id, lease_ttl_s=TTL_S)
        node = ClusterNode(
            ClusterSettings(
                node_id=node_id,
                api_url=f"http://{node_id}.invalid",
                origin_url=f"http://{node_id}.invalid:8084",
                capacity_cores=2.0,
                lease_ttl_s=TTL_S,
                safety_margin_s=0.25,
            ),
            redis=self.redis,
            registry=self.registry,
            streams=streams,
            measured_cost_cores=lambda: cost,
        )
        scope = trio.CancelScope()

        async def run(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
            with scope:
                await node.run(task_status=task_status)

        await self.nursery.start(run)
        return node, streams, scope

    async def create(self, node: ClusterNode, streams: RecordStreams, stream_id: str) -> None:
        spec = StreamSpec(
            stream_id=stream_id, source_url="http://source.invalid/x", qualities=("240p",)
        )
        sent_at = trio.current_time()
        ownership = await self.registry.register(
            spec, node_id=node.node_id, created_unix_s=time.time(), lease_ttl_s=TTL_S
        )
        node.adopt(stream_id, ownership.fencing_epoch, sent_at=sent_at)
        streams.run_here(spec, ownership.fencing_epoch)


@asynccontextmanager
async def cluster(folder: Path) -> AsyncIterator[Cluster]:
    with running_redis(folder / "redis") as port:
        url = f"redis://127.0.0.1:{port}/0"
        async with (
            open_registry(url) as registry,
            coredis.Redis.from_url(url, decode_responses=True) as redis,
            trio.open_nursery() as nursery,
        ):
            yield Cluster(url, redis, registry, nursery)
            nursery.cancel_scope.cancel()


async def wait_for(predicate: object, timeout_s: float = 10.0) -> None:
    assert callable(predicate)
    with trio.fail_after(timeout_s):
        while not predicate():  # noqa: ASYNC110 - state in another process (Redis), no event to wait on
            await trio.sleep(0.05)


async def test_leases_are_renewed_while_the_node_lives(tmp_path: Path) -> None:
    async with cluster(tmp_path) as c:
        node, streams, _ = await c.node("n1")
        await c.create(node, streams, "cam")
        await trio.sleep(TTL_S * 3)  # three leases long: only renewals keep it
        record = await c.registry.get("cam")
        assert record is not None
        assert record.owner_node_id == "n1"
        assert node.gate.valid("cam")
        assert streams.stopped == []


async def test_a_dead_nodes_streams_are_claimed_once_and_numbers_fence_the_old_owner(
    tmp_path: Path,
) -> None:
    async with cluster(tmp_path) as c:
        one, one_streams, one_scope = await c.node("n1")
        two, two_streams, _ = await c.node("n2")
        three, three_streams, _ = await c.node("n3")
        for index in range(4):
            await c.create(one, one_streams, f"cam{index}")
        old = {r.stream_id: r.fencing_epoch for r in await c.registry.owned_by("n1")}
        # n1 dies without a word (no release, no leave): its membership key and leases expire
        one._leave = _nothing  # type: ignore[method-assign]
        one_scope.cancel()
        await wait_for(lambda: len(two_streams.started) + len(three_streams.started) == 4)
        records = {r.stream_id: r for r in await c.registry.list_streams()}
        assert {r.owner_node_id for r in records.values()} <= {"n2", "n3"}
        # shared out by rendezvous hashing (the node a slower peer left them to may take some)
        expected = {s: rendezvous_node(s, ["n2", "n3"]) for s in old}
        claimed_by = dict.fromkeys(two_streams.started, "n2") | dict.fromkeys(
            three_streams.started, "n3"
        )
        assert sum(claimed_by[s] == expected[s] for s in old) >= 2
        # each claimed exactly once, under a new epoch
        assert sorted(two_streams.started + three_streams.started) == sorted(old)
        for stream_id, epoch in old.items():
            assert records[stream_id].fencing_epoch > epoch
        assert two.claims_won + three.claims_won == 4


async def test_a_renewal_refused_stops_the_stream_here_at_once(tmp_path: Path) -> None:
    async with cluster(tmp_path) as c:
        node, streams, _ = await c.node("n1")
        await c.create(node, streams, "cam")
        record = await c.registry.get("cam")
        assert record is not None
        # another node claimed it (say, while this one was frozen): the epoch moved on
        await c.registry.claim(
            "cam", node_id="other", expected_fencing_epoch=record.fencing_epoch, lease_ttl_s=60
        )
        await wait_for(lambda: streams.stopped != [])
        assert streams.stopped == [("cam", "claimed by another node")]
        assert "cam" not in node.owned
        after = await c.registry.get("cam")
        assert after is not None
        assert after.owner_node_id == "other"  # our late writes changed nothing


async def test_an_unreachable_registry_stops_streams_at_the_local_deadline(tmp_path: Path) -> None:
    async with cluster(tmp_path) as c:
        node, streams, _ = await c.node("n1")
        await c.create(node, streams, "cam")

        async def refuse(*args: object, **kwargs: object) -> None:
            from supervisor.registry.interface import RegistryUnavailable  # noqa: PLC0415

            raise RegistryUnavailable("cut off")

        node.registry = _Refusing(c.registry, refuse)  # type: ignore[assignment]
        cut_at = trio.current_time()
        await wait_for(lambda: streams.stopped != [])
        # stopped no later than one TTL after the cut (the last renewal was before it)
        assert trio.current_time() - cut_at <= TTL_S + 0.3
        assert streams.stopped == [("cam", "lease not renewed in time")]
        assert not node.gate.valid("cam")


async def test_drain_hands_every_stream_to_the_others(tmp_path: Path) -> None:
    async with cluster(tmp_path) as c:
        one, one_streams, _ = await c.node("n1")
        two, two_streams, _ = await c.node("n2")
        for index in range(3):
            await c.create(one, one_streams, f"cam{index}")
        await one.membership.request_drain("n1")
        await wait_for(lambda: len(two_streams.started) == 3)
        assert one.draining
        assert sorted(s for s, _ in one_streams.stopped) == ["cam0", "cam1", "cam2"], (
            one_streams.stopped
        )
        assert {r.owner_node_id for r in await c.registry.list_streams()} == {"n2"}
        assert await c.redis.smembers(ORPHANS_KEY) == set()
        # a draining node is never chosen (once the others' view of it says so: up to a round;
        # meanwhile the draining node itself refuses a forwarded create, 503 node_draining)
        await wait_for(lambda: (n1 := two.node("n1")) is None or n1.draining)
        spec = StreamSpec(stream_id="new", source_url="http://x.invalid/y")
        placed = two.place(spec)
        assert placed is not None
        assert placed.node_id == "n2"


async def _nothing() -> None:
    return None


class _Refusing:
    """The registry as seen from behind a network cut: renewals fail."""

    def __init__(self, registry: StreamRegistry, refuse: object) -> None:
        self._registry = registry
        self.renew = self.renew_many = refuse

    def __getattr__(self, name: str) -> object:
        return getattr(self._registry, name)


async def test_a_miss_is_between_nodes_only_for_a_registered_stream_not_run_here(
    tmp_path: Path,
) -> None:
    """What the origin asks after a local miss (a 503 ``stream_moving`` when true, else 404)."""
    async with cluster(tmp_path) as c:
        one, one_streams, one_scope = await c.node("n1")
        two, two_streams, _ = await c.node("n2")
        await c.create(one, one_streams, "cam")
        assert not await one.moving("cam")  # it runs here: a miss is a real miss
        assert not await two.moving("nobody")  # the cluster does not have it
        assert await two.moving("cam")  # a peer asked n2 as its owner: n2 does not run it
        # n1 dies; once n2 has claimed the stream, a miss on n2 is a real miss again
        one._leave = _nothing  # type: ignore[method-assign]
        one_scope.cancel()
        await wait_for(lambda: two_streams.started == ["cam"] and "cam" in two.owned)
        assert not await two.moving("cam")
        assert await two.proxy_target("cam") is None
