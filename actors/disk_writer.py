"""The stream's writes to OUTPUT_DIR, and what happens when the disk refuses them.

A full disk (ENOSPC), a quota (EDQUOT) or an I/O error used to end the encoder run that happened
to write, so every stream on a full OUTPUT_DIR restarted in a loop until it failed. A refused
write now only *degrades* the stream: FFmpeg keeps running, the live edge keeps being served from
memory, the files wait in a bounded ``WriteBacklog``, and a retry loop (exponential backoff) writes
them once the disk takes them again, at which point the stream is reported healthy again.
"""

from __future__ import annotations

import errno
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import structlog
import trio

from actors import files, janitor
from actors.backlog import WriteBacklog
from supervisor.otp.backoff import Backoff

log = structlog.get_logger(__name__)

# the first retry soon (a janitor pass may already have freed space), then every 8 s at most
RETRY_BACKOFF = Backoff(initial_s=0.5, multiplier=2.0, max_s=8.0, jitter=0.0)


def describe_write_error(error: OSError) -> str:
    """``"ENOSPC: No space left on device"``: short, for a stream's ``last_error``."""
    code = errno.errorcode.get(error.errno or 0, "OSError")
    return f"{code}: {error.strerror or error}"


class DiskWriter:
    """Writes one stream's files; on a refused write, holds them and retries in ``run()``."""

    def __init__(
        self,
        folder: Path,
        *,
        on_failed: Callable[[OSError], None],
        on_recovered: Callable[[], None],
        oldest_retained_number: Callable[[], int | None],
        backoff: Backoff = RETRY_BACKOFF,
        write_files: Callable[[Path, Sequence[tuple[str, bytes]]], None] = files.write_many,
        run_blocking: Callable[..., Awaitable[Any]] = trio.to_thread.run_sync,
    ) -> None:
        self._folder = folder
        self._on_failed = on_failed
        self._on_recovered = on_recovered
        self._oldest_retained_number = oldest_retained_number
        self._backoff = backoff
        # injected: tests use a disk that fails on demand, and no threads (exact virtual time)
        self._write_files = write_files
        self._run_blocking = run_blocking
        self.backlog = WriteBacklog()
        self._error: OSError | None = None
        self._failed = trio.Event()

    @property
    def degraded(self) -> bool:
        return self._error is not None

    async def ensure_folder(self) -> None:
        try:
            # made and marked as ours (the orphan sweep deletes only marked folders)
            await self._run_blocking(lambda: janitor.create_stream_folder(self._folder))
        except OSError as error:
            self._fail(error)

    async def write(self, writes: Sequence[tuple[str, bytes]]) -> None:
        """Write now; while degraded (or when this write fails) queue for the retry loop."""
        if not writes:
            return
        if self._error is not None:
            # behind what already waits, so files still reach the disk in order
            self.backlog.add(writes)
            self.backlog.prune(self._oldest_retained_number())
            return
        try:
            await self._run_blocking(self._write_files, self._folder, writes)
        except OSError as error:
            self.backlog.add(writes)  # rewriting the ones that made it is harmless (atomic)
            self._fail(error)

    async def run(self) -> None:
        """The retry loop: a task in the actor's nursery for the actor's whole life."""
        while True:
            await self._failed.wait()
            attempt = 0
            while self._error is not None:
                attempt += 1
                await trio.sleep(self._backoff.ceiling_s(attempt))
                self.backlog.prune(self._oldest_retained_number())
                batch = self.backlog.snapshot()
                try:
                    await self._run_blocking(self._write_batch, batch)
                except OSError as error:
                    self._fail(error)
                    continue
                self.backlog.discard_written(batch)
                if not self.backlog:
                    log.info("disk_write_recovered", attempts=attempt, files=len(batch))
                    self._error = None
                    self._failed = trio.Event()
                    self._on_recovered()

    def _write_batch(self, batch: Sequence[tuple[str, bytes]]) -> None:
        """Blocking: the folder (it may not exist yet), then the files in order."""
        self._folder.mkdir(parents=True, exist_ok=True)
        self._write_files(self._folder, batch)

    def _fail(self, error: OSError) -> None:
        first = self._error is None
        self._error = error
        if first:
            log.warning(
                "disk_write_failed", error=describe_write_error(error), waiting=len(self.backlog)
            )
            self._failed.set()
        self._on_failed(error)
