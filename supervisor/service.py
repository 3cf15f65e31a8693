"""The stream service: root supervisor + registry of stream actors + orphan-folder sweeper.

The HTTP layer talks to this and nothing deeper: create / list / get / delete / heartbeat, and a
read-only handle on each actor's live edge. It never touches an actor's process.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
import random
import subprocess
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from pathlib import Path

import structlog
import trio

from actors import janitor
from actors.edge import LiveEdge
from actors.ffmpeg.host_guard import (
    SourceGuard,
    SourceRefused,
    SourceUnresolvable,
    this_host_addresses,
)
from actors.ffmpeg.host_policy import HostPolicy
from actors.ffmpeg.process import Spawner, spawn_process
from actors.ffmpeg.sources import SourceError, ValidatedSource, redact_url, validate_source_url
from actors.ingest.publisher import IngestProtocol, PushInput, new_stream_key
from actors.ingest.sources import push_placeholder_source
from actors.ingest.srt_relay import SrtListen
from actors.packager.timeline import TimelinePosition
from actors.settings import StreamSettings
from actors.status import StreamSpec
from actors.stream import StreamActor
from supervisor.allocator import give_back_free_memory
from supervisor.config import Settings
from supervisor.errors import HlsdashError
from supervisor.ingest.srt_ports import NoIngestPort, SrtPorts, StreamSrtPort
from supervisor.ingest.whip import WhipIngest, peer_settings_from, push_lookup
from supervisor.otp.backoff import Backoff
from supervisor.otp.errors import TooManyChildren, UnknownChild
from supervisor.otp.policy import RestartType
from supervisor.otp.supervise import SupervisionOutcome
from supervisor.registry.codec import (
    CorruptRecord,
    PushIngest,
    decode_push_ingest,
    encode_push_ingest,
)
from supervisor.registry.interface import (
    JsonValue,
    RegistryUnavailable,
    StaleFencingEpoch,
    StreamAlreadyRegistered,
    StreamNotRegistered,
    StreamRecord,
    StreamRegistry,
)
from supervisor.registry.writer import DEFAULT_WRITE_INTERVAL_S, RegistryWriter
from supervisor.root import RootSupervisor

log = structlog.get_logger(__name__)

# Ended streams stay visible (state, last error) until deleted or replaced; bounded.
_MAX_ENDED_KEPT = 200
# How a stream's actor ends when the service stops: these keep it in the registry (resume).
_SHUTDOWN_REASONS = frozenset({"shutdown", "supervisor cancelled"})


class StreamExists(HlsdashError):  # noqa: N818
    def __init__(self, stream_id: str) -> None:
        super().__init__(f"stream {stream_id!r} already exists")
        self.stream_id = stream_id


class StreamNotFound(HlsdashError, LookupError):  # noqa: N818
    def __init__(self, stream_id: str) -> None:
        super().__init__(f"no stream {stream_id!r}")
        self.stream_id = stream_id


class NotPushStream(HlsdashError):  # noqa: N818
    def __init__(self, stream_id: str) -> None:
        super().__init__(f"stream {stream_id!r} is not a push stream (it pulls its source_url)")
        self.stream_id = stream_id


class AtCapacity(HlsdashError):  # noqa: N818
    def __init__(self, max_streams: int) -> None:
        super().__init__(f"the service already runs its maximum of {max_streams} streams")
        self.max_streams = max_streams


def _run_ffmpeg(path: str, option: str) -> subprocess.CompletedProcess[bytes] | None:
    """Blocking: ``ffmpeg -hide_banner <option>``, or None if it cannot run at all."""
    try:
        return subprocess.run(
            [path, "-hide_banner", option], capture_output=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None


def ffmpeg_version(path: str) -> str | None:
    """Blocking: FFmpeg's version line, or None if it cannot run (for /ready)."""
    result = _run_ffmpeg(path, "-version")
    if result is None or result.returncode != 0:
        return None
    first = result.stdout.decode("utf-8", "replace").splitlines()
    return first[0] if first else None


@functools.lru_cache(maxsize=8)
def ffmpeg_has_filter(path: str, name: str) -> bool:
    """Blocking: does this FFmpeg build have filter ``name``? (False if it cannot run.)"""
    result = _run_ffmpeg(path, "-filters")
    if result is None:
        return False
    # rows look like " ... zscale            V->V       Apply resizing, colorspace and ..."
    return any(
        line.split()[1:2] == [name]
        for line in result.stdout.decode("utf-8", "replace").splitlines()
    )


def resolve_ffmpeg_path(configured: str) -> str:
    if configured:
        return configured
    import imageio_ffmpeg  # noqa: PLC0415 - only needed when no FFMPEG_PATH is given

    path: str = imageio_ffmpeg.get_ffmpeg_exe()
    return path


def source_host_policy(settings: Settings) -> HostPolicy:
    return HostPolicy(
        deny_loopback=settings.source_deny_loopback,
        deny_private=settings.source_deny_private,
        deny_networks=settings.source_deny_networks,
        allow_networks=settings.source_allow_networks,
        own_ports=frozenset({settings.api_port, settings.origin_port}),
        local_addresses=this_host_addresses(),
    )


def stream_settings_from(
    settings: Settings, ffmpeg_path: str, source_guard: SourceGuard | None = None
) -> StreamSettings:
    return StreamSettings(
        output_dir=settings.output_dir,
        ffmpeg_path=ffmpeg_path,
        segment_duration_s=settings.segment_duration_s,
        playlist_size=settings.playlist_size,
        part_target_s=settings.part_target_s,
        low_latency_allowed=settings.low_latency_hls,
        preset=settings.encoder_preset,
        hw_encoder=settings.hw_encoder,
        # zimg's scaler makes the ladder ~6 % cheaper; builds without it (FFMPEG_PATH) still work
        zscale=ffmpeg_has_filter(ffmpeg_path, "zscale"),
        stale_threshold_s=settings.stale_threshold_s,
        watchdog_segments=settings.watchdog_segments,
        segment_margin=settings.segment_margin,
        restart_max=settings.restart_max,
        restart_period_s=settings.restart_period_s,
        backoff=Backoff(max_s=settings.restart_backoff_max_s),
        source_watch=source_guard.watch if source_guard is not None else None,
    )


@dataclasses.dataclass(frozen=True, slots=True)
class PublisherState:
    protocol: str
    address: str
    codec: str | None
    bitrate_in_bps: int | None
    bytes_in: int
    connected_since_unix_s: float


@dataclasses.dataclass(frozen=True, slots=True)
class IngestState:
    """A push stream's ingest side, as the API shows it (no key: keys are shown once)."""

    protocol: str
    srt_port: int | None
    srt_latency_ms: int | None
    publisher: PublisherState | None
    publishes: int
    reconnects: int
    bytes_total: int


class StreamService:
    def __init__(
        self,
        settings: Settings,
        *,
        spawner: Spawner | None = None,
        wall_clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        stream_settings: StreamSettings | None = None,
        source_guard: SourceGuard | None = None,
        registry: StreamRegistry | None = None,
    ) -> None:
        """``registry``: where streams outlive the process (None: they live in memory only)."""
        self.settings = settings
        self.ffmpeg_path = resolve_ffmpeg_path(settings.ffmpeg_path)
        self.source_guard = source_guard or SourceGuard(source_host_policy(settings))
        self.stream_settings = stream_settings or stream_settings_from(
            settings, self.ffmpeg_path, self.source_guard
        )
        self._spawner: Spawner = spawner or functools.partial(
            spawn_process, nice=settings.encoder_nice
        )
        self._wall = wall_clock
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not security
        self.root = RootSupervisor(
            max_children=settings.max_streams, on_child_exit=self._on_child_exit
        )
        self._actors: OrderedDict[str, StreamActor] = OrderedDict()
        # the SRT port of each SRT push stream, held from its pick until the stream ends
        self.srt_ports = SrtPorts(settings.api_host, settings.srt_port_range)
        self._unmarked_reported: set[str] = set()
        # told the incarnation of every stream that ends (the origin drops its cached objects)
        self._end_listeners: list[Callable[[int], None]] = []
        self.registry = registry
        self._handing_over: set[str] = set()  # stopped here, kept registered (hand_over)
        # when the registry call that gave a stream its lease was sent (trio clock), until the
        # stream starts: its lease runs from then, so the cluster's gate counts from then too
        self._lease_sent_at: dict[str, float] = {}
        self.registry_writer = (
            RegistryWriter(registry, on_lost=self._ownership_lost) if registry is not None else None
        )
        self.running = False
        self.rtmp_port = settings.rtmp_port  # the bound port once the RTMP listener runs
        # WHIP sessions (aiortc children) live as long as the service, like its streams
        self.whip = WhipIngest(
            peer_settings=peer_settings_from(
                host_addresses=settings.webrtc_host_addresses,
                udp_ports=settings.webrtc_udp_ports,
                public_ip=settings.webrtc_public_ip,
            ),
            lookup=push_lookup(self),
        )

    @property
    def output_dir(self) -> Path:
        return self.settings.output_dir

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        await trio.to_thread.run_sync(lambda: self.output_dir.mkdir(parents=True, exist_ok=True))
        async with trio.open_nursery() as nursery:
            await nursery.start(self.root.run)
            await nursery.start(self.whip.run)
            if self.registry_writer is not None:
                # before the sweep: a resumed stream owns its folder again
                await self.resume_owned()
                nursery.start_soon(self.registry_writer.run)
            await self.sweep_orphans()
            nursery.start_soon(self._sweeper)
            self.running = True
            task_status.started()
            try:
                await trio.sleep_forever()
            finally:
                self.running = False
                with trio.CancelScope(shield=True):
                    await self.root.shutdown(timeout_s=10.0)
                    if self.registry_writer is not None:
                        # the streams stay registered; their last positions go in now
                        with trio.move_on_after(5.0):
                            await self.registry_writer.flush()
                nursery.cancel_scope.cancel(reason="service stopping")

    async def _sweeper(self) -> None:
        while True:
            await trio.sleep(self.settings.cleanup_interval_s)
            await self.sweep_orphans()

    async def sweep_orphans(self) -> list[str]:
        """Remove marked orphan folders; returns their names.

        A failing sweep (OUTPUT_DIR unmounted, replaced by a file, unreadable) is logged and
        survived: the next one tries again, and nothing else in the service notices.
        """
        try:
            result = await trio.to_thread.run_sync(
                janitor.sweep_orphans, self.output_dir, self._owns_folder
            )
        except Exception:
            log.exception("orphan_sweep_failed", output_dir=str(self.output_dir))
            return []
        if result.removed:
            log.info("orphan_folders_removed", folders=result.removed)
        unreported = [name for name in result.unmarked if name not in self._unmarked_reported]
        if unreported:
            # once per folder and process: the sweep runs every CLEANUP_INTERVAL
            self._unmarked_reported.update(unreported)
            log.warning(
                "unmarked_folders_kept",
                folders=unreported,
                output_dir=str(self.output_dir),
                reason=f"no {janitor.STREAM_MARKER} marker: not made by this service",
            )
        return result.removed

    def _owns_folder(self, name: str) -> bool:
        actor = self._actors.get(name)
        return actor is not None and not actor.finished.is_set()

    # ------------------------------------------------------------------ operations

    async def create(
        self,
        spec: StreamSpec,
        source: ValidatedSource,
        *,
        durable: bool = True,
        ingest: dict[str, JsonValue] | None = None,
    ) -> StreamActor:
        """Start a stream. Raises SourceRefused (the host policy, checked first: it resolves the
        host, so it awaits), StreamExists, AtCapacity or RegistryUnavailable.

        ``durable``: registered, so a restarted service resumes it (the demo's built-in source is
        not: it is made again at start). ``ingest``: kept opaque in the registry (push ingest).
        """
        await self.source_guard.admit(source)
        self._make_room(spec.stream_id)
        actor = await self._register_and_start(
            spec,
            ingest if durable else None,
            functools.partial(self._start_actor, spec, source),
            durable=durable,
        )
        log.info(
            "stream_created",
            stream_id=spec.stream_id,
            source=redact_url(source.url),
            qualities=list(spec.qualities),
        )
        return actor

    async def _register_and_start(
        self,
        spec: StreamSpec,
        ingest: dict[str, JsonValue] | None,
        start: Callable[..., Awaitable[StreamActor]],
        *,
        durable: bool = True,
    ) -> StreamActor:
        """Register the stream (when durable and there is a registry), then
        ``start(fencing_epoch=…, created_unix_s=…)``; a start that fails unregisters it."""
        fencing_epoch = None
        created_unix_s = self._wall()
        if durable and self.registry is not None:
            fencing_epoch = await self._register(spec, ingest, created_unix_s)
            if spec.stream_id in self._actors:  # a concurrent create won meanwhile
                await self._unregister(spec.stream_id, fencing_epoch)
                raise StreamExists(spec.stream_id)
        try:
            actor: StreamActor = await start(
                fencing_epoch=fencing_epoch, created_unix_s=created_unix_s
            )
        except BaseException:
            if fencing_epoch is not None:
                with trio.CancelScope(shield=True):
                    await self._unregister(spec.stream_id, fencing_epoch)
            raise
        return actor

    async def _start_actor(
        self,
        spec: StreamSpec,
        source: ValidatedSource,
        *,
        fencing_epoch: int | None,
        resume_from: TimelinePosition | None = None,
        created_unix_s: float | None = None,
        push: PushInput | None = None,
        srt_listen: SrtListen | None = None,
        srt_port_holder: StreamSrtPort | None = None,
        stream_settings: StreamSettings | None = None,
    ) -> StreamActor:
        """Build the actor and start it under the root (create and resume). Raises AtCapacity."""
        writer = self.registry_writer
        durable = writer is not None and fencing_epoch is not None
        actor = StreamActor(
            spec,
            source,
            stream_settings or self.stream_settings,
            spawner=self._spawner,
            wall_clock=self._wall,
            rng=random.Random(self._rng.random()),  # noqa: S311
            push=push,
            srt_listen=srt_listen,
            srt_port_holder=srt_port_holder,
            resume_from=resume_from,
            created_unix_s=created_unix_s,
            on_position=(
                functools.partial(writer.note_position, spec.stream_id)
                if writer is not None and durable
                else None
            ),
        )
        await self._start(actor, fencing_epoch)
        return actor

    async def create_push(self, spec: StreamSpec) -> tuple[StreamActor, str]:
        """Start a push stream (``spec.ingest``); returns it and its stream key, which is shown
        this once and kept only hashed (an SRT passphrase is kept: libsrt needs it). The stream
        is registered, so a restarted service resumes it waiting with the same key. Raises
        StreamExists, AtCapacity, NoIngestPort or RegistryUnavailable."""
        if spec.ingest is None:
            raise ValueError("create_push needs a spec with ingest")
        protocol = IngestProtocol(spec.ingest)
        self._make_room(spec.stream_id)
        key = new_stream_key(spec.stream_id, protocol)
        push = PushInput(spec.stream_id, protocol, key)
        srt_listen = None
        if protocol is IngestProtocol.SRT:
            srt_listen = self._srt_listen(spec, await self.srt_ports.claim(spec.stream_id))
        try:
            actor = await self._register_and_start(
                spec,
                _push_record(push, srt_listen.port if srt_listen is not None else None),
                functools.partial(self._start_push_actor, spec, push, srt_listen),
            )
        except BaseException:
            if srt_listen is not None:
                self.srt_ports.release(spec.stream_id, srt_listen.port)
            raise
        if protocol is IngestProtocol.WHIP:
            self.whip.prepare()  # a warm WebRTC peer for its first publisher
        log.info("stream_created", stream_id=spec.stream_id, ingest=spec.ingest)
        return actor, key

    async def _start_push_actor(
        self,
        spec: StreamSpec,
        push: PushInput,
        srt_listen: SrtListen | None,
        *,
        fencing_epoch: int | None,
        created_unix_s: float | None,
        resume_from: TimelinePosition | None = None,
    ) -> StreamActor:
        return await self._start_actor(
            spec,
            push_placeholder_source(),
            fencing_epoch=fencing_epoch,
            resume_from=resume_from,
            created_unix_s=created_unix_s,
            push=push,
            srt_listen=srt_listen,
            srt_port_holder=(
                StreamSrtPort(
                    self.srt_ports,
                    spec.stream_id,
                    on_moved=functools.partial(self._srt_port_moved, spec.stream_id, push),
                )
                if srt_listen is not None
                else None
            ),
            # a pipe (or the relay's own listener) has no peer for the source host policy to watch
            stream_settings=dataclasses.replace(self.stream_settings, source_watch=None),
        )

    def _srt_listen(self, spec: StreamSpec, port: int) -> SrtListen:
        return SrtListen(
            bind_host=self.settings.api_host,
            port=port,
            latency_ms=spec.srt_latency_ms or self.settings.srt_latency_ms,
        )

    def _make_room(self, stream_id: str) -> None:
        existing = self._actors.get(stream_id)
        if existing is not None:
            if not existing.status.state.is_terminal or not existing.finished.is_set():
                raise StreamExists(stream_id)
            del self._actors[stream_id]  # an ended stream's id may be reused
        if self.active_count() >= self.settings.max_streams:
            raise AtCapacity(self.settings.max_streams)

    async def _srt_port_moved(self, stream_id: str, push: PushInput, port: int) -> None:
        """A stream's SRT port was taken by another process and it listens on ``port`` now:
        record it, so a restarted service tries the new one first (best effort: the stream
        listens there either way)."""
        writer = self.registry_writer
        fencing_epoch = writer.fencing_epoch(stream_id) if writer is not None else None
        if self.registry is None or fencing_epoch is None:
            return
        try:
            await self._write_push_record(stream_id, fencing_epoch, push, port)
        except (RegistryUnavailable, StaleFencingEpoch, StreamNotRegistered) as error:
            log.warning("srt_port_not_recorded", stream_id=stream_id, port=port, error=str(error))

    def push_input(self, stream_id: str, protocol: IngestProtocol) -> PushInput | None:
        """A running push stream's input, if it takes ``protocol`` (the ingest listeners)."""
        actor = self._actors.get(stream_id)
        if actor is None or actor.finished.is_set() or actor.push is None:
            return None
        return actor.push if actor.push.protocol is protocol else None

    def ingest_state(self, actor: StreamActor) -> IngestState | None:
        push = actor.push
        if push is None:
            return None
        snapshot = push.publisher() if not actor.finished.is_set() else None
        publisher = None
        if snapshot is not None:
            publisher = PublisherState(
                protocol=snapshot.info.protocol.value,
                address=snapshot.info.address,
                codec=snapshot.info.codec,
                bitrate_in_bps=snapshot.bitrate_in_bps,
                bytes_in=snapshot.bytes_in,
                connected_since_unix_s=snapshot.info.connected_since_unix_s,
            )
        srt_latency_ms = None
        if push.protocol is IngestProtocol.SRT:
            srt_latency_ms = actor.spec.srt_latency_ms or self.settings.srt_latency_ms
        return IngestState(
            protocol=push.protocol.value,
            srt_port=actor.srt_port,
            srt_latency_ms=srt_latency_ms,
            publisher=publisher,
            publishes=push.publishes,
            reconnects=push.reconnects,
            bytes_total=push.bytes_total,
        )

    async def rotate_key(self, stream_id: str) -> str:
        """A new stream key (shown once); the old one stops working for new connections. The
        registry record is updated first: if that fails (RegistryUnavailable) the old key stays,
        so a restart never brings back a key the client was told is revoked."""
        actor = self.get(stream_id)
        if actor.status.state.is_terminal:
            raise StreamNotFound(stream_id)
        push = actor.push
        if push is None:
            raise NotPushStream(stream_id)
        key = new_stream_key(stream_id, push.protocol)
        fencing_epoch = (
            self.registry_writer.fencing_epoch(stream_id) if self.registry_writer else None
        )
        if self.registry is not None and fencing_epoch is not None:
            rotated = PushInput(stream_id, push.protocol, key)
            try:
                await self._write_push_record(stream_id, fencing_epoch, rotated, actor.srt_port)
            except (StaleFencingEpoch, StreamNotRegistered):
                self._ownership_lost(stream_id)
                raise StreamNotFound(stream_id) from None
        log.info("stream_key_rotated", stream_id=stream_id)
        return push.rotate_key(key)

    async def _start(self, actor: StreamActor, fencing_epoch: int | None) -> None:
        spec = actor.spec
        self._actors[spec.stream_id] = actor
        writer = self.registry_writer
        lease_sent_at = self._lease_sent_at.pop(spec.stream_id, None)
        if writer is not None and fencing_epoch is not None:
            writer.own(spec.stream_id, fencing_epoch, lease_sent_at=lease_sent_at)
        try:
            # TEMPORARY: the actor restarts its encoder itself (PERMANENT, with its own intensity
            # and backoff), and disk and janitor errors stay inside it; what still escapes run()
            # is a fault of the actor's shell, after which run() has already cleaned up (FFmpeg
            # reaped, folder removed, ``finished`` set, state ``failed``). Running run() again on
            # that same finished actor gave a zombie stream: playback 404, DELETE skipping it,
            # FFmpeg running. A failed stream is visible as such, DELETE answers, its id is free.
            await self.root.start_child(
                spec.stream_id, actor.run, restart_type=RestartType.TEMPORARY
            )
        except TooManyChildren:
            self._abandon_start(spec.stream_id)
            raise AtCapacity(self.settings.max_streams) from None
        except BaseException:
            self._abandon_start(spec.stream_id)
            raise

    def _abandon_start(self, stream_id: str) -> None:
        self._actors.pop(stream_id, None)
        self._lease_sent_at.pop(stream_id, None)
        if self.registry_writer is not None:
            self.registry_writer.forget(stream_id)

    # ------------------------------------------------------------------ the registry

    async def _register(
        self, spec: StreamSpec, ingest: dict[str, JsonValue] | None, created_unix_s: float
    ) -> int:
        """Register a new stream; returns its fencing epoch. Raises StreamExists when the id is
        taken in the registry by a stream that runs (here or on another node)."""
        assert self.registry is not None
        node_id = self.settings.node_id
        for _ in range(2):
            try:
                self._lease_sent_at[spec.stream_id] = trio.current_time()
                owned = await self.registry.register(
                    spec,
                    node_id=node_id,
                    created_unix_s=created_unix_s,
                    lease_ttl_s=self.settings.cluster_lease_ttl_s,
                    ingest=ingest,
                )
            except StreamAlreadyRegistered:
                record = await self.registry.get(spec.stream_id)
                mine = record is not None and record.owner_node_id == node_id
                if record is None or (mine and spec.stream_id not in self._actors):
                    # our own ended stream whose record removal is still queued: replace it
                    if record is not None:
                        await self._unregister(spec.stream_id, record.fencing_epoch)
                    continue
                raise StreamExists(spec.stream_id) from None
            return owned.fencing_epoch
        raise StreamExists(spec.stream_id)

    async def _unregister(self, stream_id: str, fencing_epoch: int) -> None:
        assert self.registry is not None
        try:
            await self.registry.remove(stream_id, fencing_epoch=fencing_epoch)
        except StaleFencingEpoch:
            pass  # someone else's now: theirs to keep
        except RegistryUnavailable:
            log.exception("registry_remove_failed", stream_id=stream_id)

    async def resume_owned(self) -> list[str]:
        """Take back the streams this node owned (a restart after SIGTERM or SIGKILL).

        Each is claimed (compare-and-set on its fencing epoch: if another node took it meanwhile
        it stays there), its source checked again against today's allow-list and host policy,
        and it starts with its timeline continuing above the numbers players have seen. Returns
        the ids resumed. Raises RegistryUnavailable if the registry cannot be read at all.
        """
        assert self.registry is not None
        records = await self.registry.owned_by(self.settings.node_id)
        resumed: list[str] = []
        # one at a time: each admission may resolve a name (bounded), and starting many
        # FFmpegs at once only makes them all late
        for record in records:
            try:
                if await self.resume(record):
                    resumed.append(record.stream_id)
            except RegistryUnavailable:
                raise
            except Exception:
                log.exception("stream_resume_failed", stream_id=record.stream_id)
        if records:
            log.info("streams_resumed", resumed=resumed, registered=len(records))
        return resumed

    async def resume(self, record: StreamRecord) -> bool:
        """Claim a registered stream (its epoch as read) and run it here, numbers above its
        last position; False when another node claimed it first or it cannot run here."""
        assert self.registry is not None
        stream_id = record.stream_id
        self._lease_sent_at[stream_id] = trio.current_time()
        owned = await self.registry.claim(
            stream_id,
            node_id=self.settings.node_id,
            expected_fencing_epoch=record.fencing_epoch,
            lease_ttl_s=self.settings.cluster_lease_ttl_s,
        )
        if owned is None:
            self._lease_sent_at.pop(stream_id, None)
            log.info("stream_resume_lost", stream_id=stream_id, reason="claimed elsewhere")
            return False
        resume_from = self._resume_point(record)
        if record.spec.ingest is not None:
            return await self._resume_push(record, owned.fencing_epoch, resume_from)
        try:
            source = validate_source_url(
                record.spec.source_url, frozenset(self.settings.allowed_protocols)
            )
            await self._admit_resumed(stream_id, source)
            # written before the stream publishes anything: a second crash before its first
            # commit must skip from here, not from the older position again
            await self.registry.write_position(
                stream_id, fencing_epoch=owned.fencing_epoch, position=resume_from
            )
            await self._start_actor(
                record.spec,
                source,
                fencing_epoch=owned.fencing_epoch,
                resume_from=resume_from,
                created_unix_s=record.created_unix_s,
            )
        except (SourceError, SourceRefused, AtCapacity) as refused:
            # today's settings refuse it: say why, and forget it (it would never start)
            log.warning(
                "stream_not_resumed",
                stream_id=stream_id,
                source=record.source_redacted,
                reason=redact_url(str(refused)),
            )
            await self._unregister(stream_id, owned.fencing_epoch)
            return False
        log.info(
            "stream_resumed",
            stream_id=stream_id,
            source=record.source_redacted,
            last_number=record.position.last_number if record.position is not None else None,
            from_number=resume_from.last_number + 1,
        )
        return True

    async def _resume_push(
        self, record: StreamRecord, fencing_epoch: int, resume_from: TimelinePosition
    ) -> bool:
        """A push stream comes back ``waiting`` with the key its publishers have (an SRT stream
        on its old port if that is still free, else on another one, written back)."""
        stream_id = record.stream_id
        srt_listen = None
        try:
            stored = decode_push_ingest(record.ingest or {})
            push = PushInput(stream_id, stored.protocol, stored.key)
            if stored.protocol is IngestProtocol.SRT:
                port = await self.srt_ports.claim(stream_id, preferred=stored.srt_port)
                srt_listen = self._srt_listen(record.spec, port)
                if port != stored.srt_port:
                    await self._write_push_record(stream_id, fencing_epoch, push, port)
            assert self.registry is not None
            # as for pull streams: a second crash before its first commit skips from here
            await self.registry.write_position(
                stream_id, fencing_epoch=fencing_epoch, position=resume_from
            )
            await self._start_push_actor(
                record.spec,
                push,
                srt_listen,
                fencing_epoch=fencing_epoch,
                created_unix_s=record.created_unix_s,
                resume_from=resume_from,
            )
        except (CorruptRecord, ValueError, NoIngestPort, AtCapacity) as refused:
            if srt_listen is not None:
                self.srt_ports.release(stream_id, srt_listen.port)
            log.warning("stream_not_resumed", stream_id=stream_id, reason=str(refused))
            await self._unregister(stream_id, fencing_epoch)
            return False
        if stored.protocol is IngestProtocol.WHIP:
            self.whip.prepare()
        log.info(
            "stream_resumed",
            stream_id=stream_id,
            ingest=stored.protocol.value,
            srt_port=srt_listen.port if srt_listen is not None else None,
            from_number=resume_from.last_number + 1,
        )
        return True

    async def _write_push_record(
        self, stream_id: str, fencing_epoch: int, push: PushInput, srt_port: int | None
    ) -> None:
        assert self.registry is not None
        await self.registry.write_ingest(
            stream_id, fencing_epoch=fencing_epoch, ingest=_push_record(push, srt_port)
        )

    async def _admit_resumed(self, stream_id: str, source: ValidatedSource) -> None:
        """The host policy, as at POST, except that a name that does not resolve right now (DNS
        not up yet at boot) does not forget the stream: it starts, its encoder retries until the
        name resolves, and FFmpeg's connections are checked against the policy as always."""
        try:
            await self.source_guard.admit(source)
        except SourceUnresolvable as unresolved:
            log.warning("stream_resumed_unresolved", stream_id=stream_id, reason=str(unresolved))

    def _resume_point(self, record: StreamRecord) -> TimelinePosition:
        """Where a resumed stream's timeline goes on from.

        Positions are written at most once per interval, so after a SIGKILL the registry may be
        a few segments behind what players saw (or have no position at all, if the first
        commit's write did not make it): skip that many numbers and that much media time, so no
        number is ever given to two different segments (a CDN keeps segments a year).
        """
        segment_s = self.settings.segment_duration_s
        # (+1 for the growing segment LL players already saw parts of, +1 for a slow write)
        skip = math.ceil(DEFAULT_WRITE_INTERVAL_S / segment_s) + 2
        # no position: nothing written yet; the first life's media time 0 was its creation
        position = record.position or TimelinePosition(
            availability_start_unix_s=record.created_unix_s,
            encoder_epoch=0,
            last_number=-1,
            media_end_s=0.0,
            discontinuities=0,
        )
        return dataclasses.replace(
            position,
            last_number=position.last_number + skip,
            media_end_s=position.media_end_s + skip * segment_s,
        )

    async def hand_over(self, stream_id: str, reason: str) -> None:
        """Stop the stream here but keep its registry record for the node that runs it next (a
        lost lease, a drain): its last position is still written if this node holds the epoch."""
        actor = self._actors.get(stream_id)
        if actor is None:
            return
        self._handing_over.add(stream_id)
        try:
            if not actor.finished.is_set():
                with contextlib.suppress(UnknownChild):
                    await self.root.terminate_child(stream_id, reason=reason)
            with trio.move_on_after(10):
                await actor.finished.wait()
        finally:
            self._handing_over.discard(stream_id)
        if self._actors.get(stream_id) is actor:
            del self._actors[stream_id]
        if self.registry_writer is not None:
            with trio.move_on_after(5.0):
                await self.registry_writer.flush()
        log.info("stream_handed_over", stream_id=stream_id, reason=reason)

    def _ownership_lost(self, stream_id: str) -> None:
        """Another node claimed the stream (its write was refused): stop our copy, leave the
        record to its new owner."""
        actor = self._actors.get(stream_id)
        if actor is not None and not actor.finished.is_set():
            actor.request_stop("ownership lost: another node claimed the stream")

    def get(self, stream_id: str) -> StreamActor:
        actor = self._actors.get(stream_id)
        if actor is None:
            raise StreamNotFound(stream_id)
        return actor

    def edge(self, stream_id: str) -> LiveEdge:
        """What the HTTP layer serves a stream from: its live-edge interface, nothing deeper."""
        return self.get(stream_id).edge

    def runs(self, stream_id: str) -> bool:
        """Is the stream running here (not ended)?"""
        actor = self._actors.get(stream_id)
        return actor is not None and not actor.finished.is_set()

    def list(self) -> list[StreamActor]:
        return list(self._actors.values())

    def active_count(self) -> int:
        return sum(1 for a in self._actors.values() if not a.finished.is_set())

    def heartbeat(self, stream_id: str) -> float:
        actor = self.get(stream_id)
        if actor.status.state.is_terminal:
            raise StreamNotFound(stream_id)
        return actor.heartbeat()

    async def delete(self, stream_id: str) -> StreamActor:
        """Stop the stream and forget it. The registry record goes first: if the registry does
        not answer, RegistryUnavailable is raised and the stream keeps running (the client may
        try again), so a stream is never stopped here yet resumed by the next start."""
        actor = self.get(stream_id)
        if self.registry_writer is not None:
            await self.registry_writer.remove_now(stream_id)
        if not actor.finished.is_set():
            with contextlib.suppress(UnknownChild):  # it ended on its own meanwhile
                await self.root.terminate_child(stream_id, reason="deleted by client")
        with trio.move_on_after(10):
            await actor.finished.wait()
        self._actors.pop(stream_id, None)
        log.info("stream_deleted", stream_id=stream_id)
        return actor

    def on_stream_end(self, listener: Callable[[int], None]) -> None:
        """Call ``listener(incarnation)`` whenever a stream actor ends (any way it ends)."""
        self._end_listeners.append(listener)

    def _on_child_exit(self, stream_id: str, outcome: SupervisionOutcome) -> None:
        if self.registry_writer is not None:
            if outcome.reason in _SHUTDOWN_REASONS or stream_id in self._handing_over:
                self.registry_writer.leave(stream_id)  # kept registered: the next start resumes
            else:
                self.registry_writer.end(stream_id)  # failed, stale, deleted: gone for good
        actor = self._actors.get(stream_id)
        if actor is not None and outcome.last_error:
            actor.note_error(outcome.last_error)
        if actor is not None:
            for listener in self._end_listeners:
                listener(actor.edge.incarnation)
        ended = [sid for sid, a in self._actors.items() if a.finished.is_set()]
        for sid in ended[: max(0, len(ended) - _MAX_ENDED_KEPT)]:
            del self._actors[sid]
        # the ended stream's buffers are free now: hand the pages back (glibc keeps them otherwise,
        # and RSS creeps up over thousands of streams; see supervisor/allocator.py)
        give_back_free_memory()


def _push_record(push: PushInput, srt_port: int | None) -> dict[str, JsonValue]:
    """The registry's ``ingest`` dict of a push stream (its key as stored, its SRT port)."""
    return encode_push_ingest(PushIngest(push.protocol, push.stored_key, srt_port))
