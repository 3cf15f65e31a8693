"""Push streams in the registry (the service with a real SQLite registry file, no FFmpeg: an RTMP
push stream spawns nothing before a publisher comes): the record keeps the key's hash and never
the key, rotate-key writes the record before the key changes (a registry that does not answer
leaves the old key working), and a service started again resumes the stream waiting with it."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio

from actors.ingest.publisher import IngestProtocol
from actors.settings import StreamSettings
from actors.status import StreamSpec, StreamState
from supervisor.config import Settings
from supervisor.registry import open_registry
from supervisor.registry.interface import JsonValue, RegistryUnavailable, StreamRegistry
from supervisor.service import StreamService
from tests.integration.live import wait_for

SPEC = StreamSpec(stream_id="cam", source_url="", qualities=("240p",), ingest="rtmp")


class UnansweringIngestWrites:
    """The real registry, except that ``write_ingest`` finds it down."""

    def __init__(self, registry: StreamRegistry) -> None:
        self._registry = registry

    def __getattr__(self, name: str) -> object:
        return getattr(self._registry, name)

    async def write_ingest(
        self, stream_id: str, *, fencing_epoch: int, ingest: Mapping[str, JsonValue]
    ) -> None:
        raise RegistryUnavailable("registry test: down")


@asynccontextmanager
async def service_on(
    tmp_path: Path, *, ingest_writes_fail: bool = False
) -> AsyncIterator[StreamService]:
    output_dir = tmp_path / "streams"
    settings = Settings(output_dir=output_dir, ffmpeg_path="/no")
    stream_settings = StreamSettings(output_dir=output_dir, ffmpeg_path="/no")
    async with open_registry(f"sqlite:///{tmp_path / 'registry.db'}") as registry:
        used: StreamRegistry = registry
        if ingest_writes_fail:
            used = UnansweringIngestWrites(registry)  # type: ignore[assignment]
        service = StreamService(settings, stream_settings=stream_settings, registry=used)
        async with trio.open_nursery() as nursery:
            await nursery.start(service.run)
            yield service
            nursery.cancel_scope.cancel()


async def stored_ingest(service: StreamService) -> dict[str, JsonValue]:
    assert service.registry is not None
    record = await service.registry.get("cam")
    assert record is not None
    assert record.spec == SPEC
    assert record.ingest is not None
    return dict(record.ingest)


def sha256_hex(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


async def test_a_push_stream_is_registered_with_its_key_hash_and_rotation_updates_it(
    tmp_path: Path,
) -> None:
    async with service_on(tmp_path) as service:
        _, key = await service.create_push(SPEC)
        stored = await stored_ingest(service)
        assert stored == {"protocol": "rtmp", "key_sha256": sha256_hex(key)}
        rotated = await service.rotate_key("cam")
        assert (await stored_ingest(service))["key_sha256"] == sha256_hex(rotated)


async def test_rotation_with_the_registry_down_keeps_the_old_key(tmp_path: Path) -> None:
    async with service_on(tmp_path, ingest_writes_fail=True) as service:
        actor, key = await service.create_push(SPEC)
        with pytest.raises(RegistryUnavailable):
            await service.rotate_key("cam")
        assert actor.push is not None
        assert actor.push.check_key(key)  # a restart could not bring back a revoked key
        assert (await stored_ingest(service))["key_sha256"] == sha256_hex(key)
        assert actor.status.state is StreamState.WAITING


async def test_a_restarted_service_resumes_the_push_stream_waiting_with_its_key(
    tmp_path: Path,
) -> None:
    async with service_on(tmp_path) as service:
        _, key = await service.create_push(SPEC)
    async with service_on(tmp_path) as service:
        actor = service.get("cam")
        assert actor.push is not None
        assert actor.push.protocol is IngestProtocol.RTMP
        assert actor.push.check_key(key)
        assert service.push_input("cam", IngestProtocol.RTMP) is actor.push
        await wait_for(lambda: actor.status.state is StreamState.WAITING, 5, "cam waiting")
