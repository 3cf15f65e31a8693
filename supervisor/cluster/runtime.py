"""Joining the cluster: the registry, this node's loops, the peer proxy and API forwarding, run
together for as long as the service runs (``REGISTRY_URL=redis://…``)."""

from __future__ import annotations

from dataclasses import dataclass

import coredis
import trio

from supervisor.cluster.front import ClusterFront
from supervisor.cluster.local import ServiceStreams, cluster_settings_from
from supervisor.cluster.node import ClusterNode
from supervisor.config import Settings
from supervisor.http.cluster_api import ClusterApi
from supervisor.http.peer_proxy import PeerProxy
from supervisor.metrics import ProcessSampler
from supervisor.service import StreamService

_REDIS_TIMEOUT_S = 5.0


def _encoder_cores(sampler: ProcessSampler) -> float:
    """CPU cores this node's FFmpeg children used since the last sample (the encoders' cost:
    the service's own CPU — start-up, HTTP — says nothing about what another ladder would cost)."""
    sampler.sample()
    return sampler.children_cpu_percent / 100


@dataclass(frozen=True, slots=True)
class ClusterParts:
    node: ClusterNode
    api: ClusterApi
    proxy: PeerProxy


async def run_cluster(
    settings: Settings,
    service: StreamService,
    *,
    task_status: trio.TaskStatus[ClusterParts] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Join, report the parts the HTTP layer needs, and stay in until cancelled (then leave:
    this node's streams, already stopped by then, are released for the others to claim)."""
    sampler = ProcessSampler()
    redis: coredis.Redis[str] = coredis.Redis.from_url(
        settings.registry_url,
        decode_responses=True,
        connect_timeout=_REDIS_TIMEOUT_S,
        stream_timeout=_REDIS_TIMEOUT_S,
    )
    registry = service.registry
    if registry is None:
        raise ValueError("a cluster node needs the service's registry (REGISTRY_URL=redis://…)")
    async with redis, trio.open_nursery() as nursery:
        node = ClusterNode(
            cluster_settings_from(settings),
            redis=redis,
            registry=registry,
            streams=ServiceStreams(service),
            measured_cost_cores=lambda: _encoder_cores(sampler),
        )
        proxy = PeerProxy()
        front = ClusterFront(node)
        await nursery.start(proxy.run)
        await nursery.start(front.run)
        await nursery.start(node.run)
        task_status.started(ClusterParts(node, ClusterApi(front), proxy))
