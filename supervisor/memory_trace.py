"""Opt-in memory reports for leak hunts: ``HLSDASH_TRACEMALLOC=1``, then ``kill -USR2 <pid>``.

Off by default (tracemalloc costs CPU and memory on every allocation). When on, the service
starts tracemalloc at launch and, on each SIGUSR2, writes one ``memory_report`` log line (at
warning level, so it shows under the usual ``LOG_LEVEL``) with:

* RSS before and after a full ``gc.collect()`` and glibc ``malloc_trim(0)``: what trimming gives
  back is free memory the allocator kept (fragmentation), not a leak;
* the live objects whose count grew since the first report, by type;
* memory tracemalloc sees Python holding now, and the allocation sites that grew most since the
  first report (the baseline) and since the previous one, grouped by source line.

Snapshots are big (they copy every trace), so with tracing on the RSS itself is not a figure to
trust. ``HLSDASH_TRACEMALLOC=rss`` gives the reports without tracemalloc: RSS, trim and types only.

Nothing a client sends can trigger it: a signal needs the process's owner.
"""

from __future__ import annotations

import collections
import contextlib
import gc
import os
import signal
import tempfile
import tracemalloc
from collections.abc import Mapping
from dataclasses import dataclass, field

# CPython's documented debug hook (sys docs), the only way to read pymalloc's arenas
from sys import _debugmallocstats

import psutil
import structlog
import trio

from supervisor.allocator import give_back_free_memory

log = structlog.get_logger(__name__)

ENV_VAR = "HLSDASH_TRACEMALLOC"
TRACE_FRAMES = 8
TOP_SITES = 25
# the frames of tracemalloc itself and of this module are noise in a diff
_IGNORED = (
    tracemalloc.Filter(inclusive=False, filename_pattern=tracemalloc.__file__),
    tracemalloc.Filter(inclusive=False, filename_pattern="<frozen importlib._bootstrap*>"),
    tracemalloc.Filter(inclusive=False, filename_pattern="<unknown>"),
)


RSS_ONLY = "rss"


def _switch(environ: Mapping[str, str]) -> str:
    return environ.get(ENV_VAR, "").strip().lower()


def enabled(environ: Mapping[str, str]) -> bool:
    """Memory reports on SIGUSR2 (with or without tracemalloc)."""
    return _switch(environ) in {"1", "true", "yes", "on", RSS_ONLY}


def start(environ: Mapping[str, str] = os.environ) -> bool:
    """Start tracemalloc if the switch asks for it (call as early as possible); True if reports
    are on."""
    if not enabled(environ):
        return False
    if _switch(environ) != RSS_ONLY and not tracemalloc.is_tracing():
        tracemalloc.start(TRACE_FRAMES)
    return True


def top_growth(
    old: tracemalloc.Snapshot, new: tracemalloc.Snapshot, limit: int = TOP_SITES
) -> list[str]:
    """The ``limit`` source lines whose traced memory grew most from ``old`` to ``new``."""
    diffs = new.filter_traces(_IGNORED).compare_to(old.filter_traces(_IGNORED), "lineno")
    grown = [d for d in diffs if d.size_diff > 0][:limit]
    return [
        f"{d.size_diff / 1024:+.1f} KiB ({d.count_diff:+d} blocks) "
        f"{d.traceback[0].filename}:{d.traceback[0].lineno}"
        for d in grown
    ]


_MALLOCSTATS_FIELDS = {
    "# arenas allocated current": "pymalloc_arenas",
    "# bytes in allocated blocks": "pymalloc_used_bytes",
    "Total": "pymalloc_total_bytes",
}


def pymalloc_stats() -> dict[str, int]:
    """Python's own allocator (``sys._debugmallocstats``): arenas held and bytes in use. Arenas
    growing while the bytes in use stay flat is fragmentation inside pymalloc, which neither
    ``gc`` nor ``malloc_trim`` gives back. The stats go to fd 2 only: it is pointed at a file
    for the call (debug reports only; a stray line of another thread may land there too)."""
    with tempfile.TemporaryFile() as capture:
        saved = os.dup(2)
        try:
            os.dup2(capture.fileno(), 2)
            _debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        capture.seek(0)
        text = capture.read().decode("ascii", "replace")
    found = {}
    for line in text.splitlines():
        name, _, value = line.partition("=")
        key = _MALLOCSTATS_FIELDS.get(name.strip())
        number = value.strip().replace(",", "")
        # the first "Total" is the arenas' (a second one totals the arena map)
        if key is not None and key not in found and number.isdigit():
            found[key] = int(number)
    return found


def object_types() -> collections.Counter[str]:
    """Live objects the garbage collector tracks, counted by type name (what a leak is made of:
    a per-stream class whose count only grows names its holder's suspect)."""
    return collections.Counter(type(o).__qualname__ for o in gc.get_objects())


def type_growth(
    old: collections.Counter[str], new: collections.Counter[str], limit: int = TOP_SITES
) -> list[str]:
    grown = sorted(((new[k] - old[k], k) for k in new if new[k] > old[k]), reverse=True)
    return [f"{delta:+d} {name}" for delta, name in grown[:limit]]


@dataclass(slots=True)
class MemoryReporter:
    """Snapshots kept between reports: the first (baseline) and the previous one."""

    process: psutil.Process = field(default_factory=psutil.Process)
    baseline: tracemalloc.Snapshot | None = None
    previous: tracemalloc.Snapshot | None = None
    baseline_types: collections.Counter[str] | None = None
    reports: int = 0

    def report(self) -> dict[str, object]:
        rss_before = self.process.memory_info().rss
        gc.collect()
        trimmed = give_back_free_memory()
        rss_after = self.process.memory_info().rss
        types = object_types()
        self.reports += 1
        fields: dict[str, object] = {
            "report": self.reports,
            "rss_mib": round(rss_before / 2**20, 2),
            "rss_after_gc_and_trim_mib": round(rss_after / 2**20, 2),
            "malloc_trim": trimmed,
            "gc_objects": types.total(),
            **pymalloc_stats(),
        }
        if self.baseline_types is None:
            self.baseline_types = types
        else:
            fields["types_since_baseline"] = type_growth(self.baseline_types, types)
        if not tracemalloc.is_tracing():
            return fields
        snapshot = tracemalloc.take_snapshot()
        traced_now, traced_peak = tracemalloc.get_traced_memory()
        fields["traced_mib"] = round(traced_now / 2**20, 2)
        fields["traced_peak_mib"] = round(traced_peak / 2**20, 2)
        if self.baseline is not None:
            fields["since_baseline"] = top_growth(self.baseline, snapshot)
        if self.previous is not None and self.previous is not self.baseline:
            fields["since_previous"] = top_growth(self.previous, snapshot)
        if self.baseline is None:
            self.baseline = snapshot
        self.previous = snapshot
        return fields


async def report_on_signal(
    *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
) -> None:
    """Write a ``memory_report`` log line on every SIGUSR2 (run only when tracing is on)."""
    reporter = MemoryReporter()
    with trio.open_signal_receiver(signal.SIGUSR2) as signals:
        task_status.started()
        async for _signum in signals:
            # a snapshot of a big heap takes a while: in a thread, so HTTP keeps answering
            try:
                fields = await trio.to_thread.run_sync(reporter.report)
            except Exception:  # a failed report must never stop the service
                log.exception("memory_report_failed")
                continue
            with contextlib.suppress(Exception):
                log.warning("memory_report", **fields)
