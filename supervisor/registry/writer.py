"""The service's one writer of its streams' registry state, off every hot path.

Actors *note* their timeline position after each commit (a dict store: no I/O, no await); one
task writes each stream's newest noted position, at most once per ``interval_s`` for all of them
together (so at most one write per stream per interval, whatever the segment rate), and removes
the records of streams that ended for good. A write refused for a stale fencing epoch means
another node claimed the stream: the writer stops tracking it and calls ``on_lost`` (the service
stops its copy; the new owner's record is left alone). A registry that stops answering loses
nothing: positions stay noted and are written when it answers again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import structlog
import trio

from actors.packager.timeline import TimelinePosition
from supervisor.registry.interface import (
    RegistryError,
    RegistryUnavailable,
    StaleFencingEpoch,
    StreamNotRegistered,
    StreamRegistry,
)

log = structlog.get_logger(__name__)

DEFAULT_WRITE_INTERVAL_S = 1.0


@dataclass(slots=True)
class _Tracked:
    fencing_epoch: int
    lease_sent_at: float | None = None  # trio clock: when the register/claim call was sent
    position: TimelinePosition | None = None  # noted, not yet written
    ending: bool = False  # ended for good: remove the record
    leaving: bool = False  # stopped by a shutdown: write the last position, keep the record


class RegistryWriter:
    def __init__(
        self,
        registry: StreamRegistry,
        *,
        interval_s: float = DEFAULT_WRITE_INTERVAL_S,
        on_lost: Callable[[str], None] = lambda stream_id: None,
    ) -> None:
        self.registry = registry
        self.interval_s = interval_s
        self._on_lost = on_lost
        self._tracked: dict[str, _Tracked] = {}
        self._pending = trio.Event()
        self._unavailable_logged = False
        self.writes_total = 0  # registry writes made (positions and removals), for tests/metrics

    @property
    def available(self) -> bool:
        """False from a write the registry did not answer until one it did (for /metrics)."""
        return not self._unavailable_logged

    # ------------------------------------------------------------------ what the service calls

    def own(
        self, stream_id: str, fencing_epoch: int, *, lease_sent_at: float | None = None
    ) -> None:
        """This service now runs ``stream_id`` under ``fencing_epoch``, its lease taken by a
        registry call sent at ``lease_sent_at`` (trio clock; None: not known)."""
        self._tracked[stream_id] = _Tracked(fencing_epoch, lease_sent_at=lease_sent_at)

    def fencing_epoch(self, stream_id: str) -> int | None:
        tracked = self._tracked.get(stream_id)
        return None if tracked is None else tracked.fencing_epoch

    def lease_sent_at(self, stream_id: str) -> float | None:
        tracked = self._tracked.get(stream_id)
        return None if tracked is None else tracked.lease_sent_at

    def note_position(self, stream_id: str, position: TimelinePosition) -> None:
        """Synchronous and O(1): the actor calls it on every commit."""
        tracked = self._tracked.get(stream_id)
        if tracked is None or tracked.ending:
            return
        tracked.position = position
        self._pending.set()

    def end(self, stream_id: str) -> None:
        """The stream ended for good (failed, stale, stopped): remove its record (background)."""
        tracked = self._tracked.get(stream_id)
        if tracked is not None:
            tracked.ending = True
            tracked.position = None
            self._pending.set()

    def forget(self, stream_id: str) -> None:
        """Stop tracking without touching the record."""
        self._tracked.pop(stream_id, None)

    def leave(self, stream_id: str) -> None:
        """The service is stopping: keep the record for resume, with the last position noted."""
        tracked = self._tracked.get(stream_id)
        if tracked is None:
            return
        if tracked.position is None:
            del self._tracked[stream_id]
        else:
            tracked.leaving = True
            self._pending.set()

    async def remove_now(self, stream_id: str) -> None:
        """DELETE: remove the record before answering (a crash right after must not resume it).

        Raises RegistryUnavailable (the caller answers 503 and keeps the stream running)."""
        tracked = self._tracked.get(stream_id)
        if tracked is None:
            return
        try:
            await self.registry.remove(stream_id, fencing_epoch=tracked.fencing_epoch)
        except StaleFencingEpoch as stale:
            log.warning("registry_stream_owned_elsewhere", stream_id=stream_id, error=str(stale))
        except StreamNotRegistered:
            pass
        self.writes_total += 1
        self._tracked.pop(stream_id, None)

    # ------------------------------------------------------------------ the writing task

    async def run(self) -> None:
        while True:
            await self._pending.wait()
            await self.flush()
            await trio.sleep(self.interval_s)

    async def flush(self) -> None:
        """Write every noted position and pending removal now (also the last act at shutdown)."""
        self._pending = trio.Event()
        for stream_id, tracked in list(self._tracked.items()):
            if tracked.ending:
                await self._write(stream_id, tracked, remove=True)
            elif tracked.position is not None:
                await self._write(stream_id, tracked, remove=False)

    async def _write(self, stream_id: str, tracked: _Tracked, *, remove: bool) -> None:
        position = tracked.position
        try:
            if remove:
                await self.registry.remove(stream_id, fencing_epoch=tracked.fencing_epoch)
            else:
                assert position is not None
                await self.registry.write_position(
                    stream_id, fencing_epoch=tracked.fencing_epoch, position=position
                )
        except RegistryUnavailable as error:
            if not self._unavailable_logged:
                self._unavailable_logged = True
                log.error("registry_unavailable", error=str(error))
            self._pending.set()  # try again after the interval; nothing noted is lost
            return
        except (StaleFencingEpoch, StreamNotRegistered) as lost:
            self._untrack(stream_id, tracked)
            if not remove:
                log.warning("registry_ownership_lost", stream_id=stream_id, error=str(lost))
                self._on_lost(stream_id)
            return
        except RegistryError as error:  # a damaged record: say so, keep the stream running
            log.error("registry_write_failed", stream_id=stream_id, error=str(error))
            self._untrack(stream_id, tracked)
            return
        except Exception:
            # a bug (ours or the client library's) must not take the service and its streams
            # down with the writer: log it with its traceback, try again after the interval
            log.exception("registry_write_crashed", stream_id=stream_id)
            self._pending.set()
            return
        self.writes_total += 1
        if self._unavailable_logged:
            self._unavailable_logged = False
            log.info("registry_available_again")
        if remove or tracked.leaving:
            self._untrack(stream_id, tracked)
        elif tracked.position is position:
            tracked.position = None  # nothing newer was noted meanwhile

    def _untrack(self, stream_id: str, tracked: _Tracked) -> None:
        # only that entry: the same id may have been created again while the write awaited
        if self._tracked.get(stream_id) is tracked:
            del self._tracked[stream_id]
