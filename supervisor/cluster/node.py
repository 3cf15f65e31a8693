"""One node of the cluster: membership beats, stream leases, the reconciler, placement, drain.

Every node is equal and runs the same two loops (each every ``lease_ttl_s / 3``, a "round"):

* **keep alive**: publish this node's record (URLs, measured load, streams, draining) with a
  TTL (``membership``) and learn whether it was asked to drain; and renew the registry lease
  of every stream running here, each with the fencing epoch it holds, all in one call
  (``renew_many``: one Redis round trip per node per round). Both are sent at once, so a
  node's record and its leases end together when it dies. A refused renewal (the stream was claimed
  elsewhere: a stale epoch) or a lease not renewed by its local deadline (``gate``: the
  registry unreachable, or this process frozen) stops the stream here at once and fences it
  from the origin — split brain ends on our side.
* **watch**: look at the membership (who is live, and how long each record has left), then
  reconcile: streams whose owner is dead (its membership key expired) and whose lease has
  expired, and streams released by a draining node, are shared out over the live nodes
  (``placement.rendezvous_node``: every node agrees without talking); each node claims its
  share with the registry's compare-and-set on the epoch it read (exactly one claimer wins)
  and starts it. Besides every round, the watch wakes at the instant a silent node's record
  expires and at the instant a dead node's leases end, so a fail-over is not rounded up to the
  next round. Only nodes that beat recently share streams out (a node silent for longer than a
  live one ever is — killed, its record not expired yet — is left out); a stream still
  unclaimed two rounds after it was first seen may be claimed by any node, so a disagreement
  about the live set never leaves a stream behind.

What this module reads and writes in Redis is the registry's (``supervisor.registry``: records,
epochs, leases) and ``membership``'s keys; it adds one: ``hlsdash:orphans`` (a set of stream ids
released by a draining or stopping node, so a claimer finds them without listing every stream).
"""

from __future__ import annotations

import contextlib
import functools
import math
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import coredis
import structlog
import trio

from actors.status import StreamSpec
from supervisor.cluster.gate import LeaseGate
from supervisor.cluster.membership import KEY_PREFIX, Membership
from supervisor.cluster.placement import (
    NodeInfo,
    choose_node,
    estimated_cost_cores,
    rendezvous_node,
)
from supervisor.registry.interface import (
    RegistryError,
    RegistryUnavailable,
    StaleFencingEpoch,
    StreamNotRegistered,
    StreamRecord,
    StreamRegistry,
)

log = structlog.get_logger(__name__)

ORPHANS_KEY = KEY_PREFIX + "orphans"
# an owner lookup by the origin is kept this long (one Redis read per stream per second at most)
_OWNER_CACHE_S = 1.0


@dataclass(frozen=True, slots=True)
class _Route:
    """What the registry says about a stream for the origin."""

    owner_url: str | None  # another live node runs it: proxy there
    registered: bool  # the stream exists in the cluster (whoever runs it, if anyone)


# a placement made here counts on its node until that node has reported twice since
_RESERVATION_BEATS = 2
# an orphan still unclaimed this many rounds after it was first seen here may be claimed by any
# node (the node it was meant for saw things differently, or died too): a bound on the delay
# views can add
_OVERDUE_ROUNDS = 2
# a live node beats every round ± 10 % jitter; one whose record has not been refreshed for this
# many rounds is not counted on to claim streams (it is dying, or too starved to be quick)
_SILENT_ROUNDS = 1.35
# a wake-up for an expiry comes this long after it (Redis expires a key on the millisecond)
_EXPIRY_SLACK_S = 0.05
# every this many rounds, the lowest-id live node looks at every record for lapsed leases
_SWEEP_ROUNDS = 15
# orphans this node claims and starts at the same time
_CLAIMS_AT_ONCE = 4
# bounds on the work done while stopping (releasing leases, leaving the member set)
_STOP_TIMEOUT_S = 5.0


@dataclass(frozen=True, slots=True)
class ClusterSettings:
    node_id: str
    api_url: str  # how peers reach this node's API (NODE_API_URL)
    origin_url: str  # how peers reach this node's origin (NODE_ORIGIN_URL)
    capacity_cores: float
    lease_ttl_s: float = 6.0
    # deadline kept short of the lease's end: clock-rate drift and the time to stop an encoder
    safety_margin_s: float = 1.0

    @property
    def round_s(self) -> float:
        """Beat, renewal and reconcile period: three tries fit in one lease."""
        return self.lease_ttl_s / 3


class LocalStreams(Protocol):
    """What the node needs of the local stream service (``local.ServiceStreams`` adapts
    ``StreamService``; the scale benchmark has a synthetic one)."""

    def running(self) -> dict[str, StreamSpec]:
        """The streams running here now, by id."""
        ...

    def fencing_epoch(self, stream_id: str) -> int | None:
        """The epoch under which this node registered or claimed the stream (None: unknown)."""
        ...

    def lease_sent_at(self, stream_id: str) -> float | None:
        """When (trio clock) the register/claim call that gave this node the stream's lease was
        sent (None: unknown); the lease runs from no earlier than then."""
        ...

    def unmeasured_cost_cores(self) -> float:
        """Estimated cost of the streams whose encoders cannot have been measured yet."""
        ...

    async def resume(self, record: StreamRecord) -> bool:
        """Claim ``record`` (compare-and-set on its epoch) and run it here, its timeline going
        on from its registered position; False when another node won the claim."""
        ...

    async def stop(self, stream_id: str, reason: str) -> None:
        """Stop the stream here (FFmpeg killed, folder removed); its record is not touched."""
        ...


@dataclass(eq=False, slots=True)
class _Orphan:
    record: StreamRecord
    first_seen_at: float  # trio clock


@dataclass(eq=False, slots=True)
class Reservation:
    """A placement made here that the target node may not have reported yet."""

    node_id: str
    cost_cores: float
    until: float  # trio clock: forgotten then in any case
    done_unix_s: float | None = None  # the stream exists on the node since (this wall clock)

    def pending(self, node: NodeInfo, now: float) -> bool:
        """Not in the node's record yet: its record is older than the stream."""
        if now >= self.until:
            return False
        return self.done_unix_s is None or node.seen_unix_s < self.done_unix_s


class ClusterNode:
    """This node's membership, leases and reconciler; the API and origin ask it where things are."""

    def __init__(
        self,
        settings: ClusterSettings,
        *,
        redis: coredis.Redis[str],
        registry: StreamRegistry,
        streams: LocalStreams,
        measured_cost_cores: Callable[[], float],
        wall_clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings
        self.node_id = settings.node_id
        self._redis = redis
        self.registry = registry
        self.streams = streams
        self._measured = measured_cost_cores
        self._wall = wall_clock
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not security
        self.membership = Membership(redis, node_id=self.node_id, node_ttl_s=settings.lease_ttl_s)
        self.gate = LeaseGate(safety_margin_s=settings.safety_margin_s)
        self.owned: dict[str, int] = {}  # stream id → the fencing epoch this node holds
        self.nodes: list[NodeInfo] = []
        self.dead_nodes: set[str] = set()
        # live nodes that beat recently enough to share orphans out to (this node included)
        self.claimer_ids: set[str] = set()
        # trio clock: when the membership must be looked at again (a silent node's record
        # expires), and when to reconcile again (a dead node's lease ends), if before the round
        self._look_at = math.inf
        self._reconcile_at = math.inf
        self.draining = False
        self.stopping = False
        self._started_unix_s = wall_clock()
        self._reserved: list[Reservation] = []
        self._owner_cache: dict[str, tuple[float, _Route]] = {}
        self._orphans: dict[str, _Orphan] = {}
        self._round = 0
        self._nursery: trio.Nursery | None = None
        self._changed = trio.Event()  # a lease deadline moved: the fence watcher looks again
        self.claims_won = 0
        self._giving_up: set[str] = set()

    # ------------------------------------------------------------------ running

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        await self.membership.join()
        await self._beat()
        await self._look()
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                nursery.start_soon(self._every_round, self._keep_alive)
                nursery.start_soon(self._watch)
                nursery.start_soon(self._fence_watch)
                task_status.started()
        finally:
            self._nursery = None
            with trio.CancelScope(shield=True), trio.move_on_after(_STOP_TIMEOUT_S):
                await self._leave()

    def _next_round_at(self) -> float:
        # jittered so that many nodes do not beat in lockstep
        return trio.current_time() + self.settings.round_s * self._rng.uniform(0.9, 1.1)

    async def _every_round(self, work: Callable[[], Awaitable[None]]) -> None:
        while True:
            await trio.sleep_until(self._next_round_at())
            await self._attempt(work)

    async def _attempt(self, work: Callable[[], Awaitable[None]]) -> None:
        try:
            await work()
        except (RegistryError, coredis.exceptions.RedisError, OSError) as error:
            log.warning("cluster_round_failed", work=work.__name__, error=str(error))

    async def _keep_alive(self) -> None:
        """The node's record and its leases, sent at once (so both end at about the same time
        if it dies; neither waits for the other to answer)."""
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._attempt, self._beat)
            nursery.start_soon(self._attempt, self._renew_all)

    async def _watch(self) -> None:
        """Look and reconcile every round, and at once when a silent node's record or a dead
        node's lease is due to end (``_look_at``/``_reconcile_at``)."""
        next_round = self._next_round_at()
        while True:
            # both wake-ups are set by this task alone (in _look and _reconcile)
            await trio.sleep_until(min(next_round, self._look_at, self._reconcile_at))
            now = trio.current_time()
            regular = now >= next_round
            if regular:
                next_round = self._next_round_at()
            look = regular or now >= self._look_at
            if look:
                self._look_at = math.inf
            if regular or now >= self._reconcile_at:
                self._reconcile_at = math.inf
            if look:
                await self._attempt(self._look)
            await self._attempt(functools.partial(self._reconcile, regular=regular))

    async def _leave(self) -> None:
        """A clean stop: the local streams are already stopped; hand them to the others now."""
        self.stopping = True
        for stream_id, epoch in sorted(self.owned.items()):
            try:
                await self.registry.release(stream_id, fencing_epoch=epoch)
                await self._redis.sadd(ORPHANS_KEY, [stream_id])
            except (RegistryError, coredis.exceptions.RedisError, OSError) as error:
                log.warning("cluster_release_failed", stream_id=stream_id, error=str(error))
        self.owned.clear()
        try:
            await self.membership.leave()
        except (coredis.exceptions.RedisError, OSError) as error:
            log.warning("cluster_leave_failed", error=str(error))

    # ------------------------------------------------------------------ beat

    def info(self) -> NodeInfo:
        running = self.streams.running()
        return NodeInfo(
            node_id=self.node_id,
            api_url=self.settings.api_url,
            origin_url=self.settings.origin_url,
            cost_cores=round(self._measured() + self.streams.unmeasured_cost_cores(), 3),
            capacity_cores=self.settings.capacity_cores,
            streams=len(running),
            draining=self.draining,
            started_unix_s=self._started_unix_s,
            seen_unix_s=self._wall(),
        )

    async def _look(self) -> None:
        """Who is live, who is dead, who may claim; when to look again (a silent node's record
        expiring before the next round: its streams are claimable from then on)."""
        view = await self.membership.look()
        now = trio.current_time()
        newly_dead = view.dead - self.dead_nodes
        if newly_dead:
            log.info("cluster_nodes_dead", nodes=sorted(newly_dead))
        self.nodes, self.dead_nodes = view.live, view.dead
        self.claimer_ids = {self.node_id} | view.recently_beating(
            ttl_s=self.settings.lease_ttl_s, silent_after_s=_SILENT_ROUNDS * self.settings.round_s
        )
        expiry_s = view.next_expiry_s(besides=self.node_id)
        if expiry_s is not None:
            self._look_at = min(self._look_at, now + expiry_s + _EXPIRY_SLACK_S)

    async def _beat(self) -> None:
        must_drain = await self.membership.beat(self.info())
        now = trio.current_time()
        self._reserved = [r for r in self._reserved if r.until > now]
        if must_drain and not self.draining:
            self.draining = True
            log.info("cluster_drain_started", node_id=self.node_id, streams=len(self.owned))
            if self._nursery is not None:
                self._nursery.start_soon(self._drain)

    async def _drain(self) -> None:
        """Hand every stream here to the others: stop it, release its lease, list it as orphan."""
        await self.membership.beat(self.info())  # advertise draining first: nothing new comes
        for stream_id in sorted(self.owned):
            await self.give_up(stream_id, reason="node draining", release=True)
        log.info("cluster_drain_done", node_id=self.node_id)

    # ------------------------------------------------------------------ leases

    def adopt(self, stream_id: str, fencing_epoch: int, *, sent_at: float) -> None:
        """This node registered or claimed the stream under ``fencing_epoch`` at ``sent_at``
        (trio clock): its lease runs from then."""
        self.owned[stream_id] = fencing_epoch
        self.gate.renewed(stream_id, sent_at=sent_at, ttl_s=self.settings.lease_ttl_s)
        self._changed.set()

    async def _renew_all(self) -> None:
        running = self.streams.running()
        for stream_id in [s for s in self.owned if s not in running]:
            # ended here (deleted, failed, stale: the service removed its record) or stopped
            self.owned.pop(stream_id, None)
            self.gate.forget(stream_id)
        for stream_id in running:
            if stream_id not in self.owned and not self.gate.knows(stream_id):
                # created here, or resumed by the service at start (its own streams): renewed
                # from now on; until then its lease is the one register/claim gave it, so the
                # gate counts from that call (a node cut off from Redis right after a create
                # stops publishing when that first lease ends, as for any other lease)
                epoch = self.streams.fencing_epoch(stream_id)
                if epoch is not None:
                    self.owned[stream_id] = epoch
                    sent_at = self.streams.lease_sent_at(stream_id)
                    if sent_at is not None:
                        self.gate.renewed(
                            stream_id, sent_at=sent_at, ttl_s=self.settings.lease_ttl_s
                        )
        leases = dict(self.owned)
        if not leases:
            return
        sent_at = trio.current_time()
        try:
            # every lease of this node in one call: one Redis round trip per node per round
            answers = await self.registry.renew_many(
                self.node_id, leases, lease_ttl_s=self.settings.lease_ttl_s
            )
        except RegistryUnavailable as error:
            log.warning("cluster_leases_not_renewed", streams=len(leases), error=str(error))
            return  # each stream's gate deadline decides if this goes on too long
        lost: list[str] = []
        for stream_id, answer in answers.items():
            if isinstance(answer, StaleFencingEpoch | StreamNotRegistered):
                log.warning("cluster_lease_lost", stream_id=stream_id, reason=str(answer))
                lost.append(stream_id)
            elif self.owned.get(stream_id) == leases[stream_id]:
                self.gate.renewed(stream_id, sent_at=sent_at, ttl_s=self.settings.lease_ttl_s)
        self._changed.set()
        if lost:
            async with trio.open_nursery() as nursery:
                for stream_id in lost:
                    nursery.start_soon(
                        functools.partial(
                            self.give_up, stream_id, reason="claimed by another node", release=False
                        )
                    )

    def _sweeps_for_all(self) -> bool:
        """The live node with the lowest id does the catch-all sweep (the others need not
        agree: a second sweeper costs reads, and claims are compare-and-set anyway)."""
        live = [n.node_id for n in self.nodes]
        return bool(live) and min(live) == self.node_id

    def forget(self, stream_id: str) -> None:
        """The stream no longer runs here (deleted: the service removed its record)."""
        self.owned.pop(stream_id, None)
        self.gate.forget(stream_id)

    async def _fence_watch(self) -> None:
        """Stop every stream whose local lease deadline passed without a renewal, all at once
        (the gate already fences them from the origin; this stops their encoders)."""
        while True:
            expired = [s for s in self.gate.expired() if s in self.owned]
            if expired:
                async with trio.open_nursery() as nursery:
                    for stream_id in expired:
                        log.warning("cluster_lease_expired_locally", stream_id=stream_id)
                        nursery.start_soon(
                            functools.partial(
                                self.give_up,
                                stream_id,
                                reason="lease not renewed in time",
                                release=False,
                            )
                        )
            self._changed = trio.Event()
            with trio.move_on_at(self.gate.next_deadline()):
                await self._changed.wait()

    async def give_up(self, stream_id: str, *, reason: str, release: bool) -> None:
        """Stop publishing the stream at once, stop it here, and (``release``) hand it over.

        The gate stays fenced until the local copy is gone: only then may the origin look for
        the stream elsewhere (or answer 404)."""
        if stream_id in self._giving_up:
            return
        self._giving_up.add(stream_id)
        epoch = self.owned.pop(stream_id, None)
        self.gate.lost(stream_id)  # fenced from this instant: the origin answers nothing of it
        try:
            await self.streams.stop(stream_id, reason)
        finally:
            self.gate.forget(stream_id)
            self._giving_up.discard(stream_id)
        if release and epoch is not None:
            try:
                await self.registry.release(stream_id, fencing_epoch=epoch)
                await self._redis.sadd(ORPHANS_KEY, [stream_id])
            except (StaleFencingEpoch, StreamNotRegistered):
                log.info("cluster_release_refused", stream_id=stream_id)
        elif epoch is not None:
            # our lease lapsed (nobody claimed it yet, or we would have been refused): list it,
            # so the others take it once the lease is over in Redis too — best effort, Redis may
            # be what we lost
            with contextlib.suppress(coredis.exceptions.RedisError, OSError):
                await self._redis.sadd(ORPHANS_KEY, [stream_id])

    def fenced(self, stream_id: str) -> bool:
        return self.gate.fenced(stream_id)

    # ------------------------------------------------------------------ reconcile

    async def _reconcile(self, *, regular: bool = True) -> None:
        if regular:
            self._round += 1
        server_now = await self._server_time()
        candidates: dict[str, StreamRecord] = {}
        lease_ends: list[float] = []  # dead nodes' leases not over yet: seconds from now
        for dead in sorted(self.dead_nodes):
            records = await self.registry.owned_by(dead)
            if not records:
                await self.membership.forget(dead)
            for record in records:
                if _lease_over(record, server_now):
                    candidates[record.stream_id] = record
                elif record.lease_expires_unix_s is not None:
                    lease_ends.append(record.lease_expires_unix_s - server_now)
        if lease_ends and not self.draining:
            # claimable from that instant: come back then rather than at the next round
            wake = trio.current_time() + max(min(lease_ends), 0.0) + _EXPIRY_SLACK_S
            self._reconcile_at = min(self._reconcile_at, wake)
        released = sorted(await self._redis.smembers(ORPHANS_KEY))
        for stream_id in released:
            found = await self.registry.get(stream_id)
            if found is None or (
                found.owner_node_id is not None and not _lease_over(found, server_now)
            ):
                await self._redis.srem(ORPHANS_KEY, [stream_id])  # gone, or owned again
            else:  # released, or its owner let the lease lapse (and stopped it)
                candidates[stream_id] = found
        if regular and self._round % _SWEEP_ROUNDS == 0 and self._sweeps_for_all():
            # a catch-all for a lease that lapsed where nobody listed it (its node alive but
            # cut off when it gave the stream up): one node reads every record now and then
            for record in await self.registry.list_streams():
                if record.owner_node_id != self.node_id and _lease_over(record, server_now):
                    candidates.setdefault(record.stream_id, record)
        for stream_id in list(self._orphans):
            if stream_id not in candidates:
                del self._orphans[stream_id]
        if not candidates or self.draining:
            return
        now = trio.current_time()
        for stream_id, record in candidates.items():
            known = self._orphans.get(stream_id)
            if known is None or known.record.fencing_epoch != record.fencing_epoch:
                self._orphans[stream_id] = _Orphan(record, now)
        claimers = [
            n.node_id for n in self.nodes if not n.draining and n.node_id in self.claimer_ids
        ]
        overdue_s = _OVERDUE_ROUNDS * self.settings.round_s
        mine = [
            orphan.record
            for stream_id, orphan in sorted(self._orphans.items())
            if rendezvous_node(stream_id, claimers) == self.node_id
            or now - orphan.first_seen_at >= overdue_s
        ]
        # a few at a time: each start resolves a host and spawns an encoder, and starting them
        # all at once only makes them all late
        limiter = trio.CapacityLimiter(_CLAIMS_AT_ONCE)

        async def claim_one(record: StreamRecord) -> None:
            async with limiter:
                await self.claim(record)

        async with trio.open_nursery() as nursery:
            for record in mine:
                nursery.start_soon(claim_one, record)

    async def claim(self, record: StreamRecord) -> bool:
        """Take an orphan (compare-and-set on the epoch read) and run it here, numbers going on
        above its last position; False when another node won it or it cannot run here."""
        stream_id = record.stream_id
        sent_at = trio.current_time()
        try:
            started = await self.streams.resume(record)
        except Exception:  # a stream that cannot start here: the others may try
            log.exception("cluster_claimed_stream_failed_to_start", stream_id=stream_id)
            return False
        epoch = self.streams.fencing_epoch(stream_id) if started else None
        if epoch is None:
            return False  # another node won
        self.claims_won += 1
        self._orphans.pop(stream_id, None)
        await self._redis.srem(ORPHANS_KEY, [stream_id])
        self.owned[stream_id] = epoch
        self.gate.renewed(stream_id, sent_at=sent_at, ttl_s=self.settings.lease_ttl_s)
        self._changed.set()
        log.info(
            "cluster_stream_claimed",
            stream_id=stream_id,
            previous_owner=record.owner_node_id,
            fencing_epoch=epoch,
        )
        return True

    async def _server_time(self) -> float:
        """Redis's clock, the one leases are written on (nodes' clocks may disagree)."""
        server_time = await self._redis.time()  # coredis: a datetime (seconds + µs)
        return server_time.timestamp()

    # ------------------------------------------------------------------ placement, lookups

    def place(self, spec: StreamSpec) -> Reservation | None:
        """Where a new stream goes: the least-loaded node, this node as it is now (not as it
        last reported), others as reported plus the placements made here that their records do
        not show yet. Call :meth:`placed` once the stream exists there."""
        cost = estimated_cost_cores(spec.qualities)
        now = trio.current_time()
        nodes = [self.info() if n.node_id == self.node_id else n for n in self.nodes]
        reserved: dict[str, float] = {}
        for node in nodes:
            if node.node_id != self.node_id:
                reserved[node.node_id] = sum(
                    r.cost_cores
                    for r in self._reserved
                    if r.node_id == node.node_id and r.pending(node, now)
                )
        chosen = choose_node(nodes, cost, reserved_cores=reserved)
        if chosen is None:
            return None
        until = now + _RESERVATION_BEATS * self.settings.round_s
        reservation = Reservation(chosen.node_id, cost, until)
        self._reserved.append(reservation)
        return reservation

    def placed(self, reservation: Reservation) -> None:
        """The placed stream exists on its node now (or failed: either way, its next record
        tells the truth)."""
        reservation.done_unix_s = self._wall()

    def node(self, node_id: str) -> NodeInfo | None:
        return next((n for n in self.nodes if n.node_id == node_id), None)

    async def owner_of(self, stream_id: str) -> tuple[StreamRecord | None, NodeInfo | None]:
        """The stream's registry record and its owner's live record (None: no live owner)."""
        record = await self.registry.get(stream_id)
        if record is None or record.owner_node_id is None:
            return record, None
        return record, self.node(record.owner_node_id)

    async def proxy_target(self, stream_id: str) -> str | None:
        if stream_id in self.owned and not self.gate.fenced(stream_id):
            return None
        return (await self._route(stream_id)).owner_url

    async def moving(self, stream_id: str) -> bool:
        if stream_id in self.owned:
            return False  # it runs here: a miss is a real miss (a fenced one is answered before)
        return (await self._route(stream_id)).registered

    async def _route(self, stream_id: str) -> _Route:
        """Where the origin finds the stream, from the registry at most once a second."""
        now = trio.current_time()
        cached = self._owner_cache.get(stream_id)
        if cached is not None and now - cached[0] < _OWNER_CACHE_S:
            return cached[1]
        try:
            record, owner = await self.owner_of(stream_id)
        except RegistryError:
            return _Route(owner_url=None, registered=False)
        elsewhere = owner is not None and owner.node_id != self.node_id
        route = _Route(
            owner_url=owner.origin_url if owner is not None and elsewhere else None,
            registered=record is not None,
        )
        self._owner_cache[stream_id] = (now, route)
        if len(self._owner_cache) > 10_000:
            self._owner_cache = {
                s: v for s, v in self._owner_cache.items() if now - v[0] < _OWNER_CACHE_S
            }
        return route

    def describe(self) -> dict[str, Any]:
        """``GET /cluster``."""
        return {
            "node_id": self.node_id,
            "nodes": [
                {
                    "node_id": n.node_id,
                    "api_url": n.api_url,
                    "origin_url": n.origin_url,
                    "load": round(n.load, 3) if math.isfinite(n.load) else None,
                    "cost_cores": n.cost_cores,
                    "capacity_cores": n.capacity_cores,
                    "streams": n.streams,
                    "draining": n.draining,
                    "alive": True,
                    "last_seen_unix_s": n.seen_unix_s,
                }
                for n in self.nodes
            ]
            + [{"node_id": d, "alive": False} for d in sorted(self.dead_nodes)],
        }


def _lease_over(record: StreamRecord, server_now: float) -> bool:
    expires = record.lease_expires_unix_s
    return expires is None or expires <= server_now
