"""The node's view of its own stream service: what runs here, what it costs, start and stop."""

from __future__ import annotations

import dataclasses
import os
import socket

from actors.status import StreamSpec, StreamState
from supervisor.cluster.node import ClusterSettings
from supervisor.cluster.placement import estimated_cost_cores
from supervisor.config import Settings
from supervisor.registry.interface import StreamRecord
from supervisor.service import StreamService


class ServiceStreams:
    """``LocalStreams`` over the stream service (registration, positions and resume are the
    service's; the node only asks it to run claimed streams and to hand streams over)."""

    def __init__(self, service: StreamService) -> None:
        self._service = service

    def running(self) -> dict[str, StreamSpec]:
        return {a.spec.stream_id: a.spec for a in self._service.list() if not a.finished.is_set()}

    def fencing_epoch(self, stream_id: str) -> int | None:
        writer = self._service.registry_writer
        return writer.fencing_epoch(stream_id) if writer is not None else None

    def lease_sent_at(self, stream_id: str) -> float | None:
        writer = self._service.registry_writer
        return writer.lease_sent_at(stream_id) if writer is not None else None

    def unmeasured_cost_cores(self) -> float:
        """Streams whose encoder has not reported yet: psutil cannot have measured them."""
        return sum(
            estimated_cost_cores(a.spec.qualities)
            for a in self._service.list()
            if not a.finished.is_set()
            and (a.status.state is StreamState.STARTING or a.status.encoder_fps is None)
        )

    async def resume(self, record: StreamRecord) -> bool:
        """The service's resume: claim, source checked against this node's allow-list and host
        policy (nodes may differ), numbers above the last published."""
        return await self._service.resume(record)

    async def stop(self, stream_id: str, reason: str) -> None:
        await self._service.hand_over(stream_id, reason)


def with_cluster_node_id(settings: Settings) -> Settings:
    """In a cluster, the single-node default ``NODE_ID`` (``local``, which would be every
    node's) becomes the host name (a StatefulSet pod's is stable across restarts)."""
    if settings.node_id not in {"", "local"}:
        return settings
    return dataclasses.replace(settings, node_id=socket.gethostname())


def cluster_settings_from(settings: Settings) -> ClusterSettings:
    """NODE_* settings with their defaults: its ports on the host name, its CPU count."""
    host = socket.gethostname()
    return ClusterSettings(
        node_id=settings.node_id,
        api_url=settings.node_api_url or f"http://{host}:{settings.api_port}",
        origin_url=settings.node_origin_url or f"http://{host}:{settings.origin_port}",
        capacity_cores=settings.node_capacity_cores or float(os.cpu_count() or 1),
        lease_ttl_s=settings.cluster_lease_ttl_s,
        safety_margin_s=min(1.0, settings.cluster_lease_ttl_s / 6),
    )
