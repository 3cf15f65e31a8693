"""Node membership against a real redis-server: beats, expiry of a silent node, drain requests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import coredis
import pytest
import trio

from supervisor.cluster.membership import Membership, decode_node, encode_node, node_key
from tests.node_records import node_info as info
from tests.redis_server import running_redis

pytestmark = pytest.mark.integration


@asynccontextmanager
async def joined(
    folder: Path, ttls: dict[str, float]
) -> AsyncIterator[tuple[coredis.Redis[str], list[Membership]]]:
    """A redis-server, its client, and one joined Membership per ``node id → TTL`` (in order)."""
    with running_redis(folder / "redis") as port:
        client = coredis.Redis(host="127.0.0.1", port=port, decode_responses=True)
        async with client:
            members = [Membership(client, node_id=n, node_ttl_s=t) for n, t in ttls.items()]
            for member in members:
                await member.join()
            yield client, members


def test_a_record_survives_its_encoding() -> None:
    record = info("n1", cost=0.42)
    assert decode_node(encode_node(record)) == record
    assert decode_node("not json") is None
    assert decode_node('{"node_id": "x"}') is None


async def test_live_nodes_dead_nodes_and_drain(tmp_path: Path) -> None:
    async with joined(tmp_path, {"n1": 0.3, "n2": 30}) as (client, (one, two)):
        assert not await one.beat(info("n1"))
        assert not await two.beat(info("n2", cost=1.0))
        live, dead = await two.live_nodes()
        assert [n.node_id for n in live] == ["n1", "n2"]
        assert dead == set()
        assert live[1].cost_cores == 1.0

        # n1 stops beating: gone after its TTL (Redis expires the key), still known
        await trio.sleep(0.5)
        live, dead = await two.live_nodes()
        assert [n.node_id for n in live] == ["n2"]
        assert dead == {"n1"}
        await two.forget("n1")
        assert await two.known_ids() == {"n2"}

        # a drain asked on any node reaches the drained node with its next beat
        await one.request_drain("n2")
        assert await two.beat(info("n2"))
        # a restart of that node id starts undrained
        await two.join()
        assert not await two.beat(info("n2"))

        await two.leave()
        assert await client.get(node_key("n2")) is None


async def test_a_look_says_how_long_each_record_has_left(tmp_path: Path) -> None:
    """The time left on each record (from Redis, one call): a silent node is seen going before
    its record expires, and the reader knows the instant it will."""
    async with joined(tmp_path, {"quiet": 6, "busy": 6}) as (client, (quiet, busy)):
        for member in (quiet, busy):
            assert not await member.beat(info(member.node_id))
        await trio.sleep(1.0)
        assert not await busy.beat(info("busy"))  # busy beats again, quiet does not
        view = await busy.look()
        assert [n.node_id for n in view.live] == ["busy", "quiet"]
        assert 5.0 < view.expires_in_s["busy"] <= 6.0
        assert 4.0 < view.expires_in_s["quiet"] <= 5.0
        assert view.next_expiry_s(besides="busy") == view.expires_in_s["quiet"]
        # silent for more than 0.5 s: not counted on
        assert view.recently_beating(ttl_s=6, silent_after_s=0.5) == {"busy"}
        assert view.recently_beating(ttl_s=6, silent_after_s=2.0) == {"busy", "quiet"}
        # a key written without a TTL (by something else) never expires by itself
        await client.set(node_key("quiet"), encode_node(info("quiet")))
        view = await busy.look()
        assert "quiet" not in view.expires_in_s
        assert view.next_expiry_s(besides="busy") is None
        assert view.recently_beating(ttl_s=6, silent_after_s=0.5) == {"busy", "quiet"}
        await client.delete([node_key("quiet")])
        view = await busy.look()
        assert view.dead == {"quiet"}
        assert [n.node_id for n in view.live] == ["busy"]
