"""The node's view of its own stream service: what runs here, what it costs, start and stop."""

from __future__ import annotations

import contextlib
import os
import socket

from actors.ffmpeg.sources import validate_source_url
from actors.status import StreamSpec, StreamState
from supervisor.cluster.node import ClusterSettings, LocalStreams
from supervisor.cluster.placement import estimated_cost_cores
from supervisor.config import Settings
from supervisor.registry.interface import StreamRecord
from supervisor.service import StreamNotFound, StreamService


class ServiceStreams(LocalStreams):
    def __init__(self, service: StreamService) -> None:
        self._service = service

    def running(self) -> dict[str, StreamSpec]:
        return {a.spec.stream_id: a.spec for a in self._service.list() if not a.finished.is_set()}

    def ended(self) -> list[str]:
        return [a.spec.stream_id for a in self._service.list() if a.finished.is_set()]

    def unmeasured_cost_cores(self) -> float:
        """Streams whose encoder has not reported yet: psutil cannot have measured them."""
        return sum(
            estimated_cost_cores(a.spec.qualities)
            for a in self._service.list()
            if not a.finished.is_set()
            and (a.status.state is StreamState.STARTING or a.status.encoder_fps is None)
        )

    async def start(self, record: StreamRecord) -> None:
        """Run a claimed stream here. The URL was validated when it was created; it is checked
        again against this node's allow-list and host policy (nodes may differ)."""
        settings = self._service.settings
        source = validate_source_url(record.spec.source_url, frozenset(settings.allowed_protocols))
        await self._service.create(record.spec, source)

    async def stop(self, stream_id: str, reason: str) -> None:
        with contextlib.suppress(StreamNotFound):
            await self._service.delete(stream_id)


def cluster_settings_from(settings: Settings) -> ClusterSettings:
    """NODE_* settings with their defaults: the host name (a StatefulSet pod's is stable; the
    single-node default id ``local`` would be every node's), its ports, its CPU count."""
    host = socket.gethostname()
    return ClusterSettings(
        node_id=settings.node_id if settings.node_id not in {"", "local"} else host,
        api_url=settings.node_api_url or f"http://{host}:{settings.api_port}",
        origin_url=settings.node_origin_url or f"http://{host}:{settings.origin_port}",
        capacity_cores=settings.node_capacity_cores or float(os.cpu_count() or 1),
        lease_ttl_s=settings.cluster_lease_ttl_s,
        safety_margin_s=min(1.0, settings.cluster_lease_ttl_s / 6),
    )
