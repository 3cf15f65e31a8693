"""One encoder run: a single FFmpeg process of a stream, from spawn to reaped.

The stream actor (``actors.stream``) restarts encoder runs under its restart policy; each run is an
``EncoderRun``. It spawns FFmpeg with one fMP4 pipe per rendition, reads the pipes into the
packager timeline (through its host, the actor), follows FFmpeg's ``-progress`` feed and stderr
(source description, errors, the ladder check), and runs the stall watchdog. It ends by raising:
``Replan`` when the ladder must change, ``EncoderExited`` when FFmpeg exited, ``StallDetected``
from the watchdog. Cleanup (kill FFmpeg, close pipes, end the epoch) is shielded and bounded.

The run keeps its own state (what it read, when media last came), so a restart starts clean; what
must outlive a run (the timeline, the plan, the status) belongs to the host.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

import structlog
import trio

from actors.errors import EncoderExited
from actors.ffmpeg.command import Rung, build_ffmpeg_argv
from actors.ffmpeg.process import ProcessHandle, Spawner, make_pipe
from actors.ffmpeg.progress import ProgressParser
from actors.ffmpeg.sources import ValidatedSource
from actors.ffmpeg.stderr import (
    SourceInfo,
    SourceInfoCollector,
    classify_error,
    parse_source_info,
    redact_line,
)
from actors.ingest.publisher import pump_into
from actors.ingest.sources import PipeInput
from actors.packager.bmff import BmffError, FragmentedMp4Reader
from actors.packager.model import Fragment, InitSegment
from actors.packager.timeline import Changes, StreamTimeline
from actors.pipes import receive_chunks
from actors.plan import EncodePlan, Replan, encode_spec
from actors.settings import StreamSettings
from actors.watchdog import find_stall
from supervisor.otp.errors import StallDetected

log = structlog.get_logger(__name__)

_CLEANUP_TIMEOUT_S = 8.0
_DRAIN_TIMEOUT_S = 2.0  # after FFmpeg exits, how long its pipes may still deliver
_STDERR_TAIL_LINES = 60


class EncoderHost(Protocol):
    """What an encoder run needs from the stream it belongs to (the actor; fakes in tests)."""

    settings: StreamSettings
    source: ValidatedSource

    def wall_now(self) -> float: ...
    def ensure_timeline(self, plan: EncodePlan) -> StreamTimeline: ...
    def check_plan(self, plan: EncodePlan, source: SourceInfo) -> EncodePlan | None: ...
    def active_rungs(self, plan: EncodePlan) -> tuple[Rung, ...]: ...
    async def apply_changes(self, changes: Changes) -> None: ...
    def update_status(self, **changes: Any) -> None: ...
    def refuse_source(self, reason: str) -> None: ...


class EncoderRun:
    """One FFmpeg process of a stream. ``await run.run(task_status)`` once, then discard it."""

    def __init__(
        self,
        host: EncoderHost,
        plan: EncodePlan,
        *,
        spawner: Spawner,
        pipe_input: PipeInput | None = None,
    ) -> None:
        """``pipe_input``: a push stream's publisher; FFmpeg then reads it from a pipe instead
        of ``host.source``."""
        self._host = host
        self.plan = plan
        self._spawn = spawner
        self._pipe_input = pipe_input
        self.confirmed = trio.Event()  # FFmpeg described the source and the ladder fits it
        self.replan: EncodePlan | None = None
        self.epoch_started = False
        self._timeline: StreamTimeline | None = None
        # trio clock of each rendition's latest media (the stall watchdog)
        self._media_at: dict[str, float] = {}
        self._first_media_at: float | None = None
        self._stderr_tail: deque[str] = deque(maxlen=_STDERR_TAIL_LINES)
        self._last_stderr_error: str | None = None

    async def run(self, task_status: trio.TaskStatus[None] | None) -> None:
        host = self._host
        plan = self.plan
        timeline = self._timeline = host.ensure_timeline(plan)
        rendition_ids = plan.rendition_ids
        pipes = [make_pipe() for _ in rendition_ids]
        write_fds = [w for _, w in pipes]
        ffmpeg_input = host.source
        # a push stream: FFmpeg reads the publisher's bytes from this pipe (the read end is the
        # child's; we keep the write end for the pump)
        input_read_fds: list[int] = []
        input_write_fd: int | None = None
        if self._pipe_input is not None:
            input_read, input_write_fd = make_pipe()
            input_read_fds = [input_read]
            ffmpeg_input = self._pipe_input.source(input_read)
        argv = build_ffmpeg_argv(encode_spec(plan, host.settings, ffmpeg_input, write_fds))
        read_streams: list[trio.lowlevel.FdStream] = []
        try:
            # spawned from this (the trio) thread so PR_SET_PDEATHSIG stays tied to a thread that
            # lives as long as the service; the spawner closes the passed fds in the parent
            process = self._spawn(argv, pass_fds=[*write_fds, *input_read_fds])
            read_streams = [trio.lowlevel.FdStream(r) for r, _ in pipes]
        except BaseException:
            for r, _ in pipes:
                os.close(r)
            if input_write_fd is not None:
                os.close(input_write_fd)
            raise
        input_pipe = trio.lowlevel.FdStream(input_write_fd) if input_write_fd is not None else None
        log.info("encoder_spawned", pid=process.pid, renditions=list(rendition_ids))
        host.update_status(encoder_pid=process.pid)
        spawned_at = trio.current_time()
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._read_stderr, nursery.cancel_scope, process)
                nursery.start_soon(self._read_progress, process)
                readers_done = []
                for rid, stream in zip(rendition_ids, read_streams, strict=True):
                    done = trio.Event()
                    readers_done.append(done)
                    nursery.start_soon(self._read_rendition, rid, stream, done)
                nursery.start_soon(self._watchdog, spawned_at)
                if self._pipe_input is not None and input_pipe is not None:
                    nursery.start_soon(pump_into, self._pipe_input.feed, input_pipe)
                if host.settings.source_watch is not None:
                    nursery.start_soon(self._watch_source, host.settings.source_watch, process)
                if task_status is not None:
                    task_status.started()
                await process.wait()
                with trio.move_on_after(_DRAIN_TIMEOUT_S):
                    for done in readers_done:
                        await done.wait()
                nursery.cancel_scope.cancel(reason="encoder exited")
            # Raised outside the nursery so they are plain exceptions, not exception groups.
            if self.replan is not None:
                raise Replan(self.replan)
            if not self.confirmed.is_set():
                # FFmpeg printed all it knew about the source before dying; use it
                source = parse_source_info(list(self._stderr_tail))
                if source is not None:
                    new_plan = host.check_plan(plan, source)
                    if new_plan is not None:
                        raise Replan(new_plan)
            returncode = process.returncode if process.returncode is not None else -1
            raise EncoderExited(returncode, self._last_stderr_error or "")
        finally:
            with trio.CancelScope(shield=True) as cleanup:
                cleanup.deadline = trio.current_time() + _CLEANUP_TIMEOUT_S
                await process.aclose("encoder run ended")
                for stream in read_streams:
                    await stream.aclose()
                if input_pipe is not None:
                    await input_pipe.aclose()
                if self.epoch_started:
                    await host.apply_changes(timeline.end_epoch(now_unix_s=host.wall_now()))
                host.update_status(encoder_pid=None)

    async def _watch_source(
        self, watch: Callable[[int], Awaitable[str]], process: ProcessHandle
    ) -> None:
        """Kill FFmpeg and fail the stream (a restart would only go back) once it has connected
        to a host the policy refuses, e.g. after an HTTP redirect or a DNS answer that changed."""
        reason = await watch(process.pid)
        if process.returncode is not None:
            return  # reaped meanwhile: the pid may already be someone else's
        process.kill()
        log.error("source_refused_at_connect", reason=reason)
        self._host.refuse_source(reason)

    async def _read_stderr(self, scope: trio.CancelScope, process: ProcessHandle) -> None:
        collector = SourceInfoCollector()
        buffer = b""
        async for chunk in receive_chunks(process.stderr):
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for raw in lines:
                # credentials in the source URL never reach the logs, the tail or last_error
                line = redact_line(raw.decode("utf-8", "replace").rstrip("\r"))
                if not line:
                    continue
                self._stderr_tail.append(line)
                error = classify_error(line)
                if error is not None:
                    self._last_stderr_error = error
                    log.warning("ffmpeg_stderr", line=line[:300])
                else:
                    log.debug("ffmpeg_stderr", line=line[:300])
                if self.confirmed.is_set():
                    continue
                source = collector.feed_line(line)
                if source is None:
                    continue
                new_plan = self._host.check_plan(self.plan, source)
                if new_plan is not None:
                    self.replan = new_plan
                    scope.cancel(reason="ladder adjusted to the source")
                    return
                self._host.update_status(
                    qualities=tuple(r.name for r in self._host.active_rungs(self.plan)),
                    dropped_qualities=self.plan.dropped,
                    has_audio=self.plan.include_audio,
                )
                self.confirmed.set()

    async def _read_progress(self, process: ProcessHandle) -> None:
        parser = ProgressParser()
        async for chunk in receive_chunks(process.stdout):
            for progress in parser.feed(chunk):
                self._host.update_status(
                    encoder_fps=progress.fps,
                    encoder_speed=progress.speed,
                    encoder_frames=progress.frame,
                )

    async def _read_rendition(
        self, rendition_id: str, stream: trio.abc.ReceiveStream, done: trio.Event
    ) -> None:
        reader = FragmentedMp4Reader()
        # records that arrive before the source is confirmed wait: the ladder may still change
        pending: list[InitSegment | Fragment] = []
        try:
            async for chunk in receive_chunks(stream):
                records = reader.feed(chunk)
                if not records:
                    continue
                self._note_media(rendition_id)
                if not self.confirmed.is_set():
                    pending.extend(records)
                    continue
                if pending:
                    records = [*pending, *records]
                    pending = []
                await self._ingest(rendition_id, records)
            if self.confirmed.is_set() and pending:
                await self._ingest(rendition_id, pending)
            try:
                reader.close()
            except BmffError as error:
                log.info("rendition_stream_truncated", rendition=rendition_id, error=str(error))
        finally:
            done.set()

    async def _ingest(self, rendition_id: str, records: Sequence[InitSegment | Fragment]) -> None:
        timeline = self._timeline
        if timeline is None or rendition_id not in timeline.rendition_ids:
            return
        if not self.epoch_started:
            self.epoch_started = True
            self._host.update_status(epoch=timeline.begin_epoch())
        changes = Changes()
        now = self._host.wall_now()
        for record in records:
            if isinstance(record, InitSegment):
                changes.merge(timeline.on_init(rendition_id, record))
            else:
                changes.merge(timeline.on_fragment(rendition_id, record, now_unix_s=now))
        await self._host.apply_changes(changes)

    def _note_media(self, rendition_id: str) -> None:
        now = trio.current_time()
        self._media_at[rendition_id] = now
        if self._first_media_at is None:
            self._first_media_at = now

    async def _watchdog(self, spawned_at: float) -> None:
        settings = self._host.settings
        stall_s = settings.watchdog_segments * settings.segment_duration_s
        while True:
            await trio.sleep(min(stall_s / 4, 0.5))
            stall = find_stall(
                media_at=self._media_at,
                first_media_at=self._first_media_at,
                rendition_ids=self.plan.rendition_ids,
                spawned_at=spawned_at,
                now=trio.current_time(),
                stall_s=stall_s,
                start_timeout_s=settings.start_timeout_s,
            )
            if stall is not None:
                raise StallDetected(stall.message, idle_s=stall.idle_s)
