"""What ``GET /ready`` checks, and how often it really checks it.

``/ready`` is public and load balancers probe it every few seconds; each FFmpeg check forks a
process and each disk check writes and fsyncs a file. So every check's answer is kept for a few
seconds (:class:`CachedCheck`, on an injected clock), and probes arriving while a check runs wait
for that one instead of starting their own.

The disk check writes a real probe (4 KiB, fsync, delete) *and* reads the free space: a 0-byte
write succeeds on a full file system (it needs an inode, no block), which is how a full
``OUTPUT_DIR`` used to look ready.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import trio

PROBE_BYTES: Final = 4096
# how long an answer stands: FFmpeg does not disappear often; a disk fills up faster
FFMPEG_CHECK_TTL_S: Final = 5.0
DISK_CHECK_TTL_S: Final = 1.0


@dataclass(frozen=True, slots=True)
class CheckResult:
    ok: bool
    error: str | None = None  # why not, for the operator reading /ready


class CachedCheck:
    """An async check whose result is reused for ``ttl_s`` after it completes.

    Concurrent callers share the check in flight. The clock is injected (trio's by default) so
    the caching is tested on virtual time.
    """

    def __init__(
        self,
        check: Callable[[], Awaitable[CheckResult]],
        *,
        ttl_s: float,
        clock: Callable[[], float] = trio.current_time,
    ) -> None:
        self._check = check
        self._ttl_s = ttl_s
        self._clock = clock
        self._result: CheckResult | None = None
        self._valid_until = float("-inf")
        self._running: trio.Event | None = None

    async def __call__(self) -> CheckResult:
        while True:
            if self._result is not None and self._clock() < self._valid_until:
                return self._result
            if self._running is None:
                break
            await self._running.wait()  # someone else is checking; take their answer
        running = self._running = trio.Event()
        try:
            result = await self._check()
        finally:
            self._running = None
            running.set()
        self._result = result
        self._valid_until = self._clock() + self._ttl_s
        return result


def disk_check(folder: Path, *, min_free_bytes: int) -> CheckResult:
    """Blocking: can the service write media into ``folder`` right now? Run in a thread.

    Writes ``PROBE_BYTES`` with fsync (so a full disk fails here, not later in the page cache),
    deletes them, then asks statvfs for the space left to unprivileged writers.
    """
    probe = folder / f".ready-{secrets.token_hex(4)}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        try:
            with open(probe, "wb") as handle:
                handle.write(b"\0" * PROBE_BYTES)
                handle.flush()
                os.fsync(handle.fileno())
        finally:
            probe.unlink(missing_ok=True)
        stats = os.statvfs(folder)
    except OSError as error:
        return CheckResult(False, f"{error.strerror or error} ({folder})")
    free_bytes = stats.f_bavail * stats.f_frsize
    if free_bytes < min_free_bytes:
        return CheckResult(
            False, f"{free_bytes} bytes free in {folder}, below the minimum {min_free_bytes}"
        )
    return CheckResult(True)
