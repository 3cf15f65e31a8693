"""The stream service: root supervisor + registry of stream actors + orphan-folder sweeper.

The HTTP layer talks to this and nothing deeper: create / list / get / delete / heartbeat, and a
read-only handle on each actor's live edge. It never touches an actor's process.
"""

from __future__ import annotations

import contextlib
import functools
import random
import subprocess
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

import structlog
import trio

from actors import janitor
from actors.edge import LiveEdge
from actors.ffmpeg.host_guard import SourceGuard, this_host_addresses
from actors.ffmpeg.host_policy import HostPolicy
from actors.ffmpeg.process import Spawner, spawn_process
from actors.ffmpeg.sources import ValidatedSource, redact_url
from actors.settings import StreamSettings
from actors.status import StreamSpec
from actors.stream import StreamActor
from supervisor.config import Settings
from supervisor.errors import HlsdashError
from supervisor.otp.backoff import Backoff
from supervisor.otp.errors import TooManyChildren, UnknownChild
from supervisor.otp.policy import RestartType
from supervisor.otp.supervise import SupervisionOutcome
from supervisor.root import RootSupervisor

log = structlog.get_logger(__name__)

# Ended streams stay visible (state, last error) until deleted or replaced; bounded.
_MAX_ENDED_KEPT = 200


class StreamExists(HlsdashError):  # noqa: N818
    def __init__(self, stream_id: str) -> None:
        super().__init__(f"stream {stream_id!r} already exists")
        self.stream_id = stream_id


class StreamNotFound(HlsdashError, LookupError):  # noqa: N818
    def __init__(self, stream_id: str) -> None:
        super().__init__(f"no stream {stream_id!r}")
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
    ) -> None:
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
        self._unmarked_reported: set[str] = set()
        # told the incarnation of every stream that ends (the origin drops its cached objects)
        self._end_listeners: list[Callable[[int], None]] = []
        self.running = False

    @property
    def output_dir(self) -> Path:
        return self.settings.output_dir

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        await trio.to_thread.run_sync(lambda: self.output_dir.mkdir(parents=True, exist_ok=True))
        async with trio.open_nursery() as nursery:
            await nursery.start(self.root.run)
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

    async def create(self, spec: StreamSpec, source: ValidatedSource) -> StreamActor:
        """Start a stream. Raises SourceRefused (the host policy, checked first: it resolves the
        host, so it awaits, and nothing below may), StreamExists or AtCapacity."""
        await self.source_guard.admit(source)
        existing = self._actors.get(spec.stream_id)
        if existing is not None:
            if not existing.status.state.is_terminal or not existing.finished.is_set():
                raise StreamExists(spec.stream_id)
            del self._actors[spec.stream_id]  # an ended stream's id may be reused
        if self.active_count() >= self.settings.max_streams:
            raise AtCapacity(self.settings.max_streams)
        actor = StreamActor(
            spec,
            source,
            self.stream_settings,
            spawner=self._spawner,
            wall_clock=self._wall,
            rng=random.Random(self._rng.random()),  # noqa: S311
        )
        self._actors[spec.stream_id] = actor
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
            self._actors.pop(spec.stream_id, None)
            raise AtCapacity(self.settings.max_streams) from None
        except BaseException:
            self._actors.pop(spec.stream_id, None)
            raise
        log.info(
            "stream_created",
            stream_id=spec.stream_id,
            source=redact_url(source.url),
            qualities=list(spec.qualities),
        )
        return actor

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
        actor = self.get(stream_id)
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
        actor = self._actors.get(stream_id)
        if actor is not None and outcome.last_error:
            actor.note_error(outcome.last_error)
        if actor is not None:
            for listener in self._end_listeners:
                listener(actor.edge.incarnation)
        ended = [sid for sid, a in self._actors.items() if a.finished.is_set()]
        for sid in ended[: max(0, len(ended) - _MAX_ENDED_KEPT)]:
            del self._actors[sid]
