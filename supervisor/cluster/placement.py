"""Placement: which live node takes a new (or orphaned) stream. Pure: node records in, a node out.

A new stream goes to the least-loaded node (:func:`choose_node`); a stream whose node died goes
to the node rendezvous hashing picks among the live ones (:func:`rendezvous_node`): every node
must agree on who claims it without talking, and loads seen at slightly different moments would
make them disagree.

Load is encoder cost against capacity, not a stream count: a node with one 1080p ladder is busier
than one with four passthrough streams. A node reports ``cost_cores`` — the CPU its FFmpeg
children were *measured* using (psutil, CPU-seconds per second, like ``streaming_cpu_percent``)
plus an *estimate* for streams not measured yet (just started) — and ``capacity_cores``. The
estimate comes from the ladder cost measured on this project's 2-core machine (DESIGN.md: a
1080p source to 1080/720/480/360/240 + AAC in one FFmpeg at x264 ``veryfast`` costs 0.85
CPU-s per media second, decode + split ~30 % of it), shared out over the rungs by their pixels.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

# x264 veryfast CPU-s per media second, measured ladder (0.85) split by pixel count per rung
_RUNG_COST_CORES: Final = {
    "1080p": 0.33,
    "720p": 0.15,
    "480p": 0.07,
    "360p": 0.04,
    "240p": 0.02,
    "source": 0.0,  # video passthrough: no encode
}
_DECODE_COST_CORES: Final = 0.24  # decoding + splitting a 1080p source (~30 % of the ladder)
_AUDIO_COST_CORES: Final = 0.014  # passthrough video + AAC measured 0.014


def estimated_cost_cores(qualities: Iterable[str]) -> float:
    """CPU cores a ladder is expected to use before it is measured (a 1080p source assumed)."""
    names = list(qualities)
    rungs = sum(_RUNG_COST_CORES.get(name, 0.33) for name in names)
    decode = 0.0 if names == ["source"] else _DECODE_COST_CORES
    return round(decode + rungs + _AUDIO_COST_CORES, 3)


@dataclass(frozen=True, slots=True)
class NodeInfo:
    """One node as its heartbeat describes it (``membership`` stores it in Redis)."""

    node_id: str
    api_url: str
    origin_url: str
    cost_cores: float  # measured encoder CPU + estimates for streams not measured yet
    capacity_cores: float
    streams: int
    draining: bool
    started_unix_s: float
    seen_unix_s: float  # the node's wall clock at its latest heartbeat

    @property
    def load(self) -> float:
        """Fraction of capacity in use (may exceed 1 when over-committed)."""
        return self.cost_cores / self.capacity_cores if self.capacity_cores > 0 else float("inf")


def choose_node(
    nodes: Sequence[NodeInfo],
    cost_cores: float,
    *,
    reserved_cores: Mapping[str, float] | None = None,
    exclude: Iterable[str] = (),
) -> NodeInfo | None:
    """The least-loaded node that accepts streams, counting this stream's cost on it.

    ``reserved_cores`` are placements made since the nodes last reported (so a burst of POSTs
    spreads instead of landing on the node that looked idlest a moment ago). Ties go to fewer
    streams, then the lower id (every node computes the same answer). None: no node accepts.
    """
    reserved = reserved_cores or {}
    excluded = set(exclude)
    candidates = [n for n in nodes if not n.draining and n.node_id not in excluded]
    if not candidates:
        return None

    def after_placing(node: NodeInfo) -> tuple[float, int, str]:
        cost = node.cost_cores + reserved.get(node.node_id, 0.0) + cost_cores
        load = cost / node.capacity_cores if node.capacity_cores > 0 else float("inf")
        return (round(load, 6), node.streams, node.node_id)

    return min(candidates, key=after_placing)


def rendezvous_node(stream_id: str, node_ids: Iterable[str]) -> str | None:
    """The node that should claim an orphaned stream: highest random weight (rendezvous)
    hashing over the live nodes. It depends only on the stream id and the set of live nodes, so
    every node that sees the same set agrees without exchanging anything, whatever each one's
    view of the others' loads at that moment; the orphans of a dead node spread evenly over the
    survivors, and a node's death moves only the streams it would have claimed."""
    best: tuple[bytes, str] | None = None
    for node_id in node_ids:
        weight = hashlib.blake2b(f"{stream_id}\0{node_id}".encode(), digest_size=8).digest()
        if best is None or (weight, node_id) > best:
            best = (weight, node_id)
    return None if best is None else best[1]
