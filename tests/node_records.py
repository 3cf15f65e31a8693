"""A cluster node's membership record for tests (the values matter only where a test sets them)."""

from __future__ import annotations

from supervisor.cluster.placement import NodeInfo


def node_info(node_id: str, *, cost: float = 0.0) -> NodeInfo:
    return NodeInfo(
        node_id=node_id,
        api_url=f"http://127.0.0.1:1/{node_id}",
        origin_url=f"http://127.0.0.1:2/{node_id}",
        cost_cores=cost,
        capacity_cores=2.0,
        streams=0,
        draining=False,
        started_unix_s=1.0,
        seen_unix_s=2.0,
    )
