"""The stream actor: one stream's life, from spawn to cleanup, under the root supervisor.

``StreamActor`` is the stream's *stable identity* (MediaMTX's muxer / muxer-instance split): it
keeps the spec, the packager timeline (numbering survives encoder restarts), the heartbeat lease
and the status snapshot. ``run()`` is the actor proper — a nursery owning

* the heartbeat timer (no heartbeat for STALE_THRESHOLD → ``stale``, stopped and cleaned),
* the segment janitor (segments that left the window + margin are deleted),
* the encoder, restarted under the stream's restart policy by ``supervise()``: each *encoder run*
  (``actors.encoder_run``) spawns one FFmpeg, reads one fMP4 pipe per rendition into the
  packager, follows FFmpeg's ``-progress`` feed and stderr, and is watched by a stall watchdog.
  The actor is the run's host: it owns what outlives a run (timeline, plan, status, publishing).
* for a push stream, its ``PushLoop`` (``actors.ingest.push_loop``) in place of the plain encoder
  runs, and for SRT the relay that listens. The stream is ``waiting`` until a publisher attaches;
  each encoder run then reads that publisher from a pipe, and when the publisher leaves the run
  ends as an input ending — back to ``waiting``, no restart counted — and the next publisher
  continues the timeline (new epoch). The actor is the loop's host, as it is the encoder run's.

Cleanup (kill FFmpeg, remove the stream folder) runs in ``finally`` under a shielded, bounded
scope, so cancelling the actor — DELETE, shutdown, stale lease — always leaves nothing behind.
"""

from __future__ import annotations

import dataclasses
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
import trio

from actors import janitor, publishing
from actors.disk_writer import DiskWriter, describe_write_error
from actors.edge import LiveEdge, next_incarnation
from actors.edge.gates import EdgeGates
from actors.encoder_run import EncoderRun
from actors.ffmpeg.command import SOURCE_RUNG_NAME, Rung
from actors.ffmpeg.process import Spawner
from actors.ffmpeg.sources import ValidatedSource
from actors.ffmpeg.stderr import (
    SourceInfo,
    redact_line,
)
from actors.ingest.publisher import PushInput
from actors.ingest.push_loop import PushLoop
from actors.ingest.sources import PipeInput
from actors.ingest.srt_relay import SrtListen, SrtPortHolder
from actors.lease import Lease
from actors.packager import publish
from actors.packager.layout import (
    stream_dir,
)
from actors.packager.model import TrackKind
from actors.packager.timeline import Changes, StreamTimeline, TimelinePosition
from actors.plan import AUDIO_ID, EncodePlan, Replan, plan_for
from actors.settings import StreamSettings
from actors.status import SourceDescription, StreamSpec, StreamState, StreamStatus
from supervisor.otp.policy import Intensity, RestartType
from supervisor.otp.supervise import (
    ChildExited,
    ChildRestarting,
    ChildStarted,
    GaveUp,
    OutcomeState,
    SupervisorEvent,
    describe_exception,
    exception_leaves,
    supervise,
)

log = structlog.get_logger(__name__)

_CLEANUP_TIMEOUT_S = 8.0


class StreamActor:
    """One live stream. Create it, then run ``run()`` under the root supervisor."""

    def __init__(
        self,
        spec: StreamSpec,
        source: ValidatedSource,
        settings: StreamSettings,
        *,
        spawner: Spawner,
        wall_clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        push: PushInput | None = None,
        srt_listen: SrtListen | None = None,
        srt_port_holder: SrtPortHolder | None = None,
        resume_from: TimelinePosition | None = None,
        created_unix_s: float | None = None,
        on_position: Callable[[TimelinePosition], None] | None = None,
        run_blocking: Callable[..., Awaitable[Any]] = trio.to_thread.run_sync,
    ) -> None:
        """``push``: a push stream's input (``source`` is then a placeholder the encoder run
        replaces with the publisher's pipe); ``srt_listen``: where its SRT relay listens, and
        ``srt_port_holder`` the service's side of that port.
        ``resume_from``/``created_unix_s``: a stream an earlier process published (the
        registry's record): its timeline continues from there. ``on_position`` is told the
        timeline's position after every commit; it must only note it (no I/O, no await).
        ``run_blocking`` runs the disk writes (a thread; tests hold or time them)."""
        self.spec = spec
        self._resume_from = resume_from
        self._on_position = on_position
        self.source = source
        self.settings = settings
        self._spawn = spawner
        self._wall = wall_clock
        self._rng = rng or random.Random()  # noqa: S311 - restart jitter, not security
        self.folder = stream_dir(settings.output_dir, spec.stream_id)
        self.low_latency = spec.low_latency and settings.low_latency_allowed
        self.push = push
        self._push_loop = (
            PushLoop(
                push,
                srt_listen,
                ffmpeg_path=settings.ffmpeg_path,
                spawner=spawner,
                wall_clock=wall_clock,
                srt_port_holder=srt_port_holder,
            )
            if push is not None
            else None
        )
        now = wall_clock()
        first_state = StreamState.WAITING if push is not None else StreamState.STARTING
        self.status = StreamStatus(
            spec=spec,
            state=first_state,
            created_unix_s=now if created_unix_s is None else created_unix_s,
            last_heartbeat_unix_s=now,
            lease_expires_unix_s=now + settings.stale_threshold_s,
            state_changed_unix_s=now,
            history=((first_state.value, now),),
        )
        self.publish_settings = publish.PublishSettings(
            segment_duration_s=settings.segment_duration_s,
            playlist_size=settings.playlist_size,
            part_target_s=settings.part_target_s,
            low_latency=self.low_latency,
            passthrough_video=SOURCE_RUNG_NAME in spec.qualities,
        )
        self.timeline: StreamTimeline | None = None
        self.metas: tuple[publish.RenditionMeta, ...] = ()
        self._plan: EncodePlan | None = None
        self._lease: Lease | None = None
        self._cancel_scope: trio.CancelScope | None = None
        self._stop_reason: str | None = None
        self._source_refused: str | None = None  # FFmpeg reached a refused host: fail, no restart
        # live-edge waits (held parts, blocking reloads), opened where the edge moves: _notify
        self.gates = EdgeGates()
        self.incarnation = next_incarnation()  # never reused, unlike id(): see actors.edge
        self.edge = LiveEdge(self)  # what the HTTP layer may ask of this stream
        self._disk = DiskWriter(
            self.folder,
            on_failed=self._disk_failed,
            on_recovered=self._disk_recovered,
            oldest_retained_number=self._oldest_retained_number,
            run_blocking=run_blocking,
        )
        self.finished = trio.Event()
        self.bytes_served = 0  # by the origin; read by metrics at scrape time

    # ------------------------------------------------------------------ public surface

    def wall_now(self) -> float:
        return self._wall()

    @property
    def srt_port(self) -> int | None:
        """The UDP port an SRT push stream listens on."""
        return self._push_loop.srt_port if self._push_loop is not None else None

    def note_error(self, error: str) -> None:
        """Keep an error reported from outside (the supervisor) if the actor recorded none."""
        if self.status.last_error is None:
            self.update_status(last_error=redact_line(error))

    def heartbeat(self) -> float:
        """Renew the lease; returns the new wall-clock expiry."""
        now = self._wall()
        remaining = self._lease.renew() if self._lease else self.settings.stale_threshold_s
        self.update_status(last_heartbeat_unix_s=now, lease_expires_unix_s=now + remaining)
        return now + remaining

    def request_stop(self, reason: str) -> None:
        """Stop the actor (DELETE): cancels its scope; cleanup runs in ``run()``'s finally."""
        self._stop_reason = reason
        if self._cancel_scope is not None:
            self._cancel_scope.cancel(reason=reason)

    @property
    def awaiting_first_segment_after_resume(self) -> bool:
        """Resumed from the registry, and no segment committed in this life yet."""
        if self._resume_from is None:
            return False
        timeline = self.timeline
        return timeline is None or timeline.awaiting_first_segment_after_resume

    @property
    def version(self) -> int:
        """Changes whenever anything at the live edge changes (part, segment, init, end)."""
        return self.gates.version

    # ------------------------------------------------------------------ the actor

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        # the spawner's context (an HTTP request's, say) is copied into this task: start clean
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(stream_id=self.spec.stream_id)
        self._lease = Lease(self.settings.stale_threshold_s)
        terminal = StreamState.STOPPED
        try:
            await self._disk.ensure_folder()
            with trio.CancelScope() as scope:
                self._cancel_scope = scope
                if self._stop_reason is not None:
                    scope.cancel(reason=self._stop_reason)
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._lease_timer, scope)
                    nursery.start_soon(self._janitor_loop)
                    nursery.start_soon(self._disk.run)
                    if self._push_loop is not None:
                        self._push_loop.start_listening(nursery)
                    task_status.started()
                    outcome = await supervise(
                        self._encoder_run,
                        restart_type=RestartType.PERMANENT,
                        intensity=Intensity(
                            max_restarts=self.settings.restart_max,
                            period_s=self.settings.restart_period_s,
                        ),
                        backoff=self.settings.backoff,
                        rng=self._rng,
                        on_event=self._on_supervisor_event,
                    )
                    if outcome.state is OutcomeState.FAILED:
                        terminal = StreamState.FAILED
                        error = outcome.last_error or outcome.reason or "encoder gave up"
                        self.update_status(last_error=redact_line(error))
                    nursery.cancel_scope.cancel(reason="encoder supervision ended")
        except Exception as error:
            # Nothing restarts the actor's own shell (the root runs it TEMPORARY): end as failed,
            # cleaned up below like any other end, with the error for the status API.
            terminal = StreamState.FAILED
            leaves = exception_leaves(error) if isinstance(error, ExceptionGroup) else [error]
            self.update_status(last_error=f"actor crashed: {describe_exception(leaves[0])}")
            log.exception("stream_actor_crashed")
            raise
        finally:
            if self._push_loop is not None:
                self._push_loop.close(self._stop_reason or "the stream ended")
            if terminal is StreamState.STOPPED and self.status.state is StreamState.STALE:
                terminal = StreamState.STALE
            if self._source_refused is not None:
                terminal = StreamState.FAILED
            if terminal is StreamState.STOPPED:
                self._set_state(StreamState.STOPPING)
            with trio.CancelScope(shield=True) as cleanup:
                cleanup.deadline = trio.current_time() + _CLEANUP_TIMEOUT_S
                await trio.to_thread.run_sync(janitor.remove_tree, self.folder)
            self._set_state(terminal)
            self.finished.set()
            self._notify()
            log.info("stream_ended", state=terminal.value, reason=self._stop_reason)

    async def _lease_timer(self, actor_scope: trio.CancelScope) -> None:
        assert self._lease is not None
        await self._lease.wait_expired()
        log.warning("heartbeat_lease_expired", stale_threshold_s=self.settings.stale_threshold_s)
        self._stop_reason = "stale: no heartbeat"
        self._set_state(StreamState.STALE)
        actor_scope.cancel(reason="heartbeat lease expired")

    async def _janitor_loop(self) -> None:
        interval_s = self.settings.segment_duration_s
        while True:
            await trio.sleep(interval_s)
            timeline = self.timeline
            if timeline is None:
                continue
            for rid in timeline.rendition_ids:
                folder = self.folder / rid
                names = await trio.to_thread.run_sync(janitor.list_names, folder)
                # What is live is read after the listing: an init written during the thread hop
                # is then in the listing *and* known live, never taken for an old one.
                oldest = timeline.oldest_retained_number()
                edge = timeline.edge(rid)
                # the current init and any older one a retained segment still decodes with
                live_inits = {s.init_name for s in edge.committed}
                if edge.init_name:
                    live_inits.add(edge.init_name)
                expired = janitor.expired_media_files(
                    names, oldest_retained_number=oldest, live_init_names=live_inits
                )
                if expired:
                    await trio.to_thread.run_sync(janitor.delete_files, folder, expired)

    # ------------------------------------------------------------------ supervision events

    def _on_supervisor_event(self, event: SupervisorEvent) -> None:
        match event:
            case ChildStarted():
                pass
            case ChildExited(kind=kind, error=error):
                if error and self._source_refused is None:  # keep why the source was refused
                    error = redact_line(error)
                    log.warning("encoder_exited", kind=kind.value, error=error)
                    self.update_status(last_error=error)
            case ChildRestarting(delay_s=delay_s, attempt=attempt):
                self.update_status(restarts=self.status.restarts + 1, encoder_pid=None)
                self._set_state(StreamState.RESTARTING)
                log.info("encoder_restarting", delay_s=round(delay_s, 3), attempt=attempt)
            case GaveUp(reason=reason, last_error=last_error):
                log.error(
                    "encoder_gave_up", reason=reason, last_error=redact_line(last_error or "")
                )

    # ------------------------------------------------------------------ one encoder run

    async def _encoder_run(self, *, task_status: trio.TaskStatus[None]) -> None:
        if self._push_loop is not None:
            await self._push_loop.encoder_runs(self, task_status)
        else:
            await self._encode(task_status)

    async def _encode(
        self,
        task_status: trio.TaskStatus[None] | None,
        pipe_input: PipeInput | None = None,
    ) -> None:
        """Encoder runs until one ends other than by a re-plan (it always raises)."""
        plan = self._plan or plan_for(self.spec.qualities, None)
        reported = task_status is None
        while True:
            try:
                run = EncoderRun(self, plan, spawner=self._spawn, pipe_input=pipe_input)
                await run.run(task_status if not reported else None)
                return
            except Replan as replan:
                log.info(
                    "ladder_adjusted",
                    qualities=[r.name for r in replan.plan.rungs],
                    dropped=list(replan.plan.dropped),
                    audio=replan.plan.include_audio,
                )
                plan = replan.plan
                reported = True

    # ------------------------------------------------------------------ the push loop's host

    def publisher_awaited(self) -> None:
        self._set_state(StreamState.WAITING)

    async def encode_publisher(self, pipe_input: PipeInput) -> None:
        await self._encode(None, pipe_input=pipe_input)

    # ------------------------------------------------------------------ the encoder run's host

    def refuse_source(self, reason: str) -> None:
        """FFmpeg reached a host the policy refuses: fail the stream, no restart."""
        self._source_refused = reason
        self._stop_reason = reason
        self.update_status(last_error=reason)
        if self._cancel_scope is not None:
            self._cancel_scope.cancel(reason=reason)

    def ensure_timeline(self, plan: EncodePlan) -> StreamTimeline:
        kinds: list[tuple[str, TrackKind]] = [(r.name, "video") for r in plan.rungs]
        if plan.include_audio:
            kinds.append((AUDIO_ID, "audio"))
        if self.timeline is None or self.timeline.rendition_ids != tuple(k for k, _ in kinds):
            if self.timeline is not None and self.timeline.segments_committed_total:
                # the ladder changed mid-life (the source changed size): keep the old set so
                # players keep their renditions; FFmpeg still produces them (it may upscale).
                return self.timeline
            self.timeline = publishing.new_timeline(
                kinds,
                self.settings,
                availability_start_unix_s=self.status.created_unix_s,
                resume_from=self._resume_from,
                target_duration_s=publish.target_duration_s(self.publish_settings),
            )
            self.metas = publishing.rendition_metas(plan.rungs, include_audio=plan.include_audio)
        return self.timeline

    def check_plan(self, plan: EncodePlan, source: SourceInfo) -> EncodePlan | None:
        """Remember the source; return a new plan if the running one does not fit it."""
        self.update_status(
            source=SourceDescription(
                width=source.width,
                height=source.height,
                frame_rate=source.frame_rate,
                video_codec=source.video_codec,
                has_audio=source.has_audio,
            )
        )
        wanted = plan_for(self.spec.qualities, source)
        if self.timeline is not None and self.timeline.segments_committed_total:
            # keep the published rendition set; only remember the source
            self._plan = dataclasses.replace(plan, source_known=True)
            return None
        self._plan = wanted
        if wanted.rendition_ids != plan.rendition_ids:
            return wanted
        return None

    def active_rungs(self, plan: EncodePlan) -> tuple[Rung, ...]:
        if self.timeline is None:
            return plan.rungs
        ids = set(self.timeline.rendition_ids)
        return tuple(r for r in plan.rungs if r.name in ids)

    async def apply_changes(self, changes: Changes) -> None:
        if not changes.anything:
            return
        timeline = self.timeline
        assert timeline is not None
        # The timeline has already moved (the caller changed it, no await since): a new live-edge
        # version now, before the disk write below awaits. Requests answered meanwhile see the
        # moved timeline; under the old version the origin would hand them the playlist it
        # cached for it — without the position a blocking reload was just told is there, and
        # cacheable 6 × TD under that URL (Shaka LL-HLS froze ~10 s on it, issue 10). Waking
        # waiters before the files are on disk is safe: the origin serves the newest segments
        # and parts from memory, and the nginx front falls back to the origin (try_files).
        self._notify()
        writes = [(f"{w.rendition_id}/{w.name}", w.data) for w in changes.writes]
        if changes.segments_abandoned:
            log.warning(
                "segments_given_up",
                count=changes.segments_abandoned,
                total=timeline.segments_abandoned_total,
                waiting=timeline.waiting_segments(),
            )
        if changes.segments_committed or changes.epoch_ended:
            # (an ended run changes the MPD too: publish.time_shift_buffer_depth_s)
            writes.extend(
                publishing.static_files(
                    timeline,
                    self.metas,
                    self.publish_settings,
                    self.spec,
                    now_unix_s=self._wall(),
                )
            )
        if changes.segments_committed:
            self.update_status(
                segments_produced=timeline.segments_committed_total,
                last_segment_unix_s=timeline.last_commit_unix_s,
            )
            position = timeline.position()
            if self._on_position is not None and position is not None:
                self._on_position(position)
        await self._disk.write(writes)
        if changes.segments_committed and self.status.state in {
            StreamState.STARTING,
            StreamState.RESTARTING,
            StreamState.WAITING,
        }:
            self._set_state(StreamState.DEGRADED if self._disk.degraded else StreamState.LIVE)
        self._notify()

    def _oldest_retained_number(self) -> int | None:
        return self.timeline.oldest_retained_number() if self.timeline is not None else None

    def _disk_failed(self, error: OSError) -> None:
        self.update_status(
            last_error=f"cannot write to the output folder ({describe_write_error(error)}): "
            "serving from memory, retrying"
        )
        if self.status.state in {StreamState.STARTING, StreamState.LIVE, StreamState.RESTARTING}:
            self._set_state(StreamState.DEGRADED)

    def _disk_recovered(self) -> None:
        if self.status.state is StreamState.DEGRADED:
            committed = self.timeline is not None and self.timeline.segments_committed_total > 0
            self._set_state(StreamState.LIVE if committed else StreamState.STARTING)

    # ------------------------------------------------------------------ status

    def _notify(self) -> None:
        if self.finished.is_set():
            self.gates.close()
        else:
            self.gates.changed()

    def update_status(self, **changes: Any) -> None:
        self.status = dataclasses.replace(self.status, **changes)

    def _set_state(self, state: StreamState) -> None:
        if self.status.state is state:
            return
        now = self._wall()
        previous = self.status.state
        history = (*self.status.history, (state.value, now))[-20:]
        self.update_status(state=state, state_changed_unix_s=now, history=history)
        log.info("stream_state", state=state.value, previous=previous.value)
