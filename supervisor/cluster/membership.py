"""Node membership on Redis: who is alive, where it is reached, how loaded, whether it drains.

Every key this module touches, and its lifetime (nothing else in the service writes them):

* ``hlsdash:member:{node_id}`` — string, the node's JSON record (:class:`NodeInfo`), written by the
  node every ``heartbeat_interval_s`` with ``PX = node_ttl_s``. Present ⇔ the node is alive: a
  node that stops heartbeating (killed, frozen, cut off) is gone ``node_ttl_s`` after its last
  beat, and the reconciler of any other node then claims its streams.
* ``hlsdash:members`` — set of every node id ever seen (listing without ``SCAN``). An id whose
  node key is gone is a dead node; it is removed once it owns nothing (``forget``).
* ``hlsdash:drain:{node_id}`` — string ``"1"``, set by ``POST /cluster/nodes/{id}/drain`` on any
  node, ``PX = drain_ttl_s`` (a drain request does not outlive a forgotten rolling deploy). The
  node reads it with its heartbeat, stops taking streams and hands its streams away. A node
  clears it when it starts (a restarted pod under the same id takes streams again).

Cost: one ``SET`` + one ``GET`` per node per heartbeat; a listing (:meth:`Membership.look`) is
one Lua script call (``SMEMBERS``, then ``GET`` + ``PTTL`` of each node key, inside Redis): the
remaining TTL of each record tells a reader exactly when a silent node's record will expire, so
it can look again at that instant instead of at its next beat, and which nodes have not beaten
for longer than a live node ever waits (not to be counted on to claim streams).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, Final

import coredis

from supervisor.cluster.placement import NodeInfo

KEY_PREFIX: Final = "hlsdash:"
NODES_KEY: Final = KEY_PREFIX + "members"


def node_key(node_id: str) -> str:
    return f"{KEY_PREFIX}member:{node_id}"


def drain_key(node_id: str) -> str:
    return f"{KEY_PREFIX}drain:{node_id}"


def encode_node(info: NodeInfo) -> str:
    return json.dumps(asdict(info), separators=(",", ":"), sort_keys=True)


def decode_node(raw: str | bytes) -> NodeInfo | None:
    """A node record, or None if it is not one (a foreign or older value is skipped, not fatal)."""
    try:
        data = json.loads(raw)
        return NodeInfo(
            node_id=str(data["node_id"]),
            api_url=str(data["api_url"]),
            origin_url=str(data["origin_url"]),
            cost_cores=float(data["cost_cores"]),
            capacity_cores=float(data["capacity_cores"]),
            streams=int(data["streams"]),
            draining=bool(data["draining"]),
            started_unix_s=float(data["started_unix_s"]),
            seen_unix_s=float(data["seen_unix_s"]),
        )
    except (ValueError, KeyError, TypeError):
        return None


# ARGV: prefix → {id, record or false, pttl ms} for every known id
_LOOK = """
local prefix = ARGV[1]
local out = {}
for _, id in ipairs(redis.call('SMEMBERS', prefix .. 'members')) do
  local key = prefix .. 'member:' .. id
  out[#out + 1] = {id, redis.call('GET', key) or '', redis.call('PTTL', key)}
end
return out
"""


@dataclass(frozen=True, slots=True)
class MembershipView:
    """What one look at the membership keys saw."""

    live: list[NodeInfo]  # by id
    dead: set[str]  # known ids whose record is gone
    # seconds until each live node's record expires unless it beats again (Redis's clock rate)
    expires_in_s: dict[str, float] = field(default_factory=dict)

    def recently_beating(self, *, ttl_s: float, silent_after_s: float) -> set[str]:
        """Live nodes whose record was refreshed less than ``silent_after_s`` ago (its time left
        is at least ``ttl_s - silent_after_s``). A node with no TTL on its record counts."""
        least_left_s = ttl_s - silent_after_s
        return {
            n.node_id for n in self.live if self.expires_in_s.get(n.node_id, ttl_s) >= least_left_s
        }

    def next_expiry_s(self, *, besides: str) -> float | None:
        """Seconds until the first live record (other than ``besides``) expires if not renewed."""
        left = [s for node_id, s in self.expires_in_s.items() if node_id != besides]
        return min(left, default=None)


class Membership:
    """Reads and writes the membership keys for one node (``node_id``) and about all others."""

    def __init__(
        self,
        redis: coredis.Redis[str],
        *,
        node_id: str,
        node_ttl_s: float,
        drain_ttl_s: float = 3600,
    ) -> None:
        self._redis = redis
        self.node_id = node_id
        self.node_ttl_s = node_ttl_s
        self.drain_ttl_s = drain_ttl_s
        self._look = redis.register_script(_LOOK)

    async def join(self) -> None:
        """On start: register the id, forget a drain left from a previous life of this id."""
        await self._redis.sadd(NODES_KEY, [self.node_id])
        await self._redis.delete([drain_key(self.node_id)])

    async def beat(self, info: NodeInfo) -> bool:
        """Publish this node's record for another ``node_ttl_s``; returns whether it must drain."""
        await self._redis.set(
            node_key(self.node_id), encode_node(info), px=int(self.node_ttl_s * 1000)
        )
        return await self._redis.get(drain_key(self.node_id)) is not None

    async def leave(self) -> None:
        """A clean stop: gone at once instead of after the TTL."""
        await self._redis.delete([node_key(self.node_id)])

    async def request_drain(self, node_id: str) -> None:
        await self._redis.set(drain_key(node_id), "1", px=int(self.drain_ttl_s * 1000))

    async def known_ids(self) -> set[str]:
        return set(await self._redis.smembers(NODES_KEY))

    async def live_nodes(self) -> tuple[list[NodeInfo], set[str]]:
        """(records of live nodes by id, ids known but dead)."""
        view = await self.look()
        return view.live, view.dead

    async def look(self) -> MembershipView:
        """Every known node: live (with the time left on its record) or dead; one round trip."""
        rows: list[list[Any]] = await self._look(args=[KEY_PREFIX])
        live: list[NodeInfo] = []
        dead: set[str] = set()
        expires_in_s: dict[str, float] = {}
        for node_id, raw, pttl_ms in sorted((str(r[0]), r[1], int(r[2])) for r in rows):
            info = decode_node(raw) if raw else None
            if info is None or pttl_ms == -2:  # gone (or expired between GET and PTTL)
                dead.add(node_id)
                continue
            live.append(info)
            if pttl_ms >= 0:  # -1: no TTL (written by something else): never expires by itself
                expires_in_s[node_id] = pttl_ms / 1000
        return MembershipView(live, dead, expires_in_s)

    async def forget(self, node_id: str) -> None:
        """Drop a dead node that owns nothing from the listing."""
        await self._redis.srem(NODES_KEY, [node_id])
