"""The opt-in memory reports (HLSDASH_TRACEMALLOC): off by default, and what a report holds."""

from __future__ import annotations

import collections
import sys
import tracemalloc

import pytest

from supervisor import memory_trace


@pytest.mark.parametrize(
    ("value", "reports"),
    [("", False), ("0", False), ("no", False), ("1", True), ("on", True), ("rss", True)],
)
def test_switch_is_off_unless_asked(value: str, reports: bool) -> None:
    assert memory_trace.enabled({memory_trace.ENV_VAR: value} if value else {}) is reports


def test_rss_only_reports_without_tracing() -> None:
    assert not tracemalloc.is_tracing()
    assert memory_trace.start({memory_trace.ENV_VAR: "rss"}) is True
    assert not tracemalloc.is_tracing()
    assert memory_trace.start({}) is False
    assert not tracemalloc.is_tracing()


def test_type_growth_names_what_grew_most_first() -> None:
    old = collections.Counter({"StreamActor": 1, "dict": 100, "str": 50})
    new = collections.Counter({"StreamActor": 4, "dict": 90, "str": 60, "Task": 1})
    assert memory_trace.type_growth(old, new) == ["+10 str", "+3 StreamActor", "+1 Task"]


def test_reports_name_the_line_that_keeps_allocating() -> None:
    kept: list[bytes] = []
    tracemalloc.start(memory_trace.TRACE_FRAMES)
    try:
        reporter = memory_trace.MemoryReporter()
        first = reporter.report()
        kept.extend(bytes(1024) for _ in range(512))  # the "leak": 512 KiB held on this line
        second = reporter.report()
    finally:
        tracemalloc.stop()
    assert first["report"] == 1
    assert "since_baseline" not in first
    assert second["report"] == 2
    sites = second["since_baseline"]
    assert isinstance(sites, list)
    assert "test_memory_trace.py" in sites[0]
    assert sites[0].startswith("+5")  # ~+512 KiB
    assert isinstance(second["rss_after_gc_and_trim_mib"], float)
    assert second["traced_mib"] >= 0.5  # type: ignore[operator]


def test_pymalloc_stats_reads_the_arenas_and_restores_stderr(
    capfd: pytest.CaptureFixture[str],
) -> None:
    stats = memory_trace.pymalloc_stats()
    assert stats["pymalloc_arenas"] >= 1
    assert 0 < stats["pymalloc_used_bytes"] <= stats["pymalloc_total_bytes"]
    assert capfd.readouterr().err == ""  # the stats went to the capture, not to fd 2
    print("still here", file=sys.stderr, flush=True)
    assert capfd.readouterr().err == "still here\n"
