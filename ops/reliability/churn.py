"""Create/delete churn: the service's fds, threads and RSS stay flat, nothing is left behind.

    python -m ops.reliability.churn --count 1000

One stream id, created and deleted ``count`` times from a passthrough source (``"qualities":
["source"]``: video copied from a looping H.264 file, no x264) so a cycle costs little. Each cycle
waits until the new FFmpeg has published its first part (the playlist answers on the origin, so
pipes, readers and the live edge all exist), then DELETEs: every DELETE must be 200, the stream's
folder gone and its FFmpeg reaped when it returns. The service's open fds, threads and RSS are
sampled after each cycle; after a warm-up (a tenth of the cycles, at least 5) the last sample must
be within 5 % of the warm-up one (fds and threads: and at most +1; see ``_judge_flatness``).

With ``HLSDASH_TRACEMALLOC=1`` in the environment the service traces its allocations and the
run asks it (SIGUSR2) for a memory report after the warm-up, at half-way and at the end: RSS
before and after ``gc.collect()`` + ``malloc_trim(0)`` and the source lines that grew most
(``supervisor/memory_trace.py``), printed with the figures.
"""

from __future__ import annotations

import json
import os
import signal
import tempfile
import time
from pathlib import Path

from ops.bench.common import Service, http
from ops.bench.control_plane import passthrough_source
from ops.reliability.probe import (
    Resources,
    alive,
    encoder_pid,
    ffmpeg_pids,
    resources,
    service_for_case,
    spread,
    wait_until,
)
from ops.reliability.report import Report, main
from supervisor import memory_trace

STREAM_ID = "churn"
FLAT_FRACTION = 0.05
FIRST_PART_TIMEOUT_S = 30.0
MEMORY_REPORT_TIMEOUT_S = 300.0


def run(count: int = 1000, *, workdir: Path | None = None) -> Report:
    report = Report("create/delete churn", count)
    with tempfile.TemporaryDirectory(prefix="hlsdash-churn-") as scratch:
        source = passthrough_source(Path(scratch))
        with service_for_case(workdir, MAX_STREAMS="4") as service:
            process = service.ps
            samples: list[Resources] = [resources(process)]
            cycle_s: list[float] = []
            tracing = memory_trace.enabled(os.environ)
            report_at = {_warm_up(count), max(1, count // 2), count} if tracing else set()
            for cycle in range(1, count + 1):
                began = time.monotonic()
                if not _one_cycle(report, service, source, cycle):
                    break
                cycle_s.append(time.monotonic() - began)
                samples.append(resources(process))
                if cycle in report_at:
                    _ask_memory_report(report, service, cycle)
            leftover = ffmpeg_pids(process)
            # hidden folders are the service's own state (the registry), never a stream's
            folders = sorted(
                p.name for p in service.output_dir.iterdir() if not p.name.startswith(".")
            )
            report.expect(not leftover, f"FFmpeg left after the last DELETE: {sorted(leftover)}")
            report.expect(not folders, f"folders left in OUTPUT_DIR: {folders}")
            _judge_flatness(report, samples, count)
            for name, value in _memory_reports(service).items():
                report.figure(name, value)
            report.figure("cycle (POST → first part → DELETE 200)", spread(cycle_s))
            report.figure("cycles done", len(cycle_s))
    return report


def _one_cycle(report: Report, service: Service, source: str, cycle: int) -> bool:
    service.create(STREAM_ID, source, qualities=["source"], low_latency=True)
    playlist = f"{service.origin}/{STREAM_ID}/source/playlist.m3u8"
    try:
        wait_until(
            lambda: http("GET", playlist, timeout=5)[0] == 200,
            FIRST_PART_TIMEOUT_S,
            f"cycle {cycle}: the first part",
            poll_s=0.02,
        )
    except TimeoutError as error:
        report.problem(f"{error}: {service.stream(STREAM_ID)}")
    pid = encoder_pid(service.stream(STREAM_ID))
    code, body, _ = http("DELETE", f"{service.api}/streams/{STREAM_ID}", timeout=30)
    if not report.expect(code == 200, f"cycle {cycle}: DELETE → {code}: {body[:200]!r}"):
        return False
    state = json.loads(body).get("state")
    report.expect(state == "stopped", f"cycle {cycle}: DELETE answered state {state}")
    report.expect(
        not (service.output_dir / STREAM_ID).exists(), f"cycle {cycle}: the folder is still there"
    )
    report.expect(pid is None or not alive(pid), f"cycle {cycle}: FFmpeg {pid} outlived DELETE")
    return True


def _warm_up(count: int) -> int:
    return max(5, count // 10)


def _ask_memory_report(report: Report, service: Service, cycle: int) -> None:
    """SIGUSR2 → the service logs a ``memory_report``; wait for it (snapshots of a traced heap
    and their comparison take a while on a loaded machine)."""
    before = len(_memory_report_lines(service))
    service.process.send_signal(signal.SIGUSR2)
    try:
        wait_until(
            lambda: len(_memory_report_lines(service)) > before,
            MEMORY_REPORT_TIMEOUT_S,
            f"the memory report after cycle {cycle}",
            poll_s=0.2,
        )
    except TimeoutError as error:
        report.problem(str(error))
    time.sleep(0.5)  # let the service settle before the next cycle is timed


def _memory_report_lines(service: Service) -> list[dict[str, object]]:
    found = []
    with service.log_path.open(errors="replace") as log:
        for line in log:
            if '"memory_report"' in line:
                try:
                    found.append(json.loads(line))
                except ValueError:
                    continue
    return found


def _memory_reports(service: Service) -> dict[str, str]:
    figures = {}
    for event in _memory_report_lines(service):
        number = event.get("report")
        traced = event.get("traced_mib")
        figures[f"memory report {number}"] = (
            f"RSS {event.get('rss_mib')} MiB, after gc + malloc_trim "
            f"{event.get('rss_after_gc_and_trim_mib')} MiB, gc objects {event.get('gc_objects')}, "
            f"pymalloc arenas {event.get('pymalloc_arenas')} holding "
            f"{_mib(event.get('pymalloc_total_bytes'))} MiB, "
            f"{_mib(event.get('pymalloc_used_bytes'))} MiB of it in use"
            + ("" if traced is None else f", traced by Python {traced} MiB")
        )
        for key in ("types_since_baseline", "since_baseline", "since_previous"):
            sites = event.get(key)
            if isinstance(sites, list) and sites:
                figures[f"memory report {number} {key}"] = "\n      " + "\n      ".join(
                    str(site) for site in sites[:12]
                )
    return figures


def _mib(value: object) -> str:
    return f"{value / 2**20:.2f}" if isinstance(value, int) else "?"


def _judge_flatness(report: Report, samples: list[Resources], count: int) -> None:
    """Flat = the floor of the last tenth of the run within 5 % of the floor of the tenth after
    warm-up (a tenth of the cycles, at least 5; integer counts may also grow by one). Floors,
    because a leak raises the floor while an idle worker thread trio keeps for 10 s, or a
    collection not yet run, is a passing spike. The value at each tenth of the run is printed
    too, so a steady climb shows as such, and the change over the second half separates a bounded
    structure that is still filling (trio's stale-deadline heap prunes at 1,000 entries, the
    origin's object cache holds 2,048 objects) from growth that goes on.
    """
    warm = min(len(samples) - 1, _warm_up(count))
    half = min(len(samples) - 1, max(5, count // 2))
    series = {
        "open fds": [float(s.open_fds) for s in samples],
        "threads": [float(s.threads) for s in samples],
        "RSS MiB": [s.rss_bytes / 2**20 for s in samples],
    }
    tenths = sorted({min(len(samples) - 1, round(len(samples) * k / 10)) for k in range(11)})
    window = max(1, len(samples) // 10)
    for name, values in series.items():
        base = min(values[warm : warm + window])
        last = min(values[-window:])
        report.figure(
            name,
            f"start {values[0]:.1f}, cycle {warm} {values[warm]:.1f}, cycle {half} "
            f"{values[half]:.1f}, end {values[-1]:.1f}; floor of the last tenth {last:.1f} vs "
            f"after warm-up {base:.1f}: {_percent(last, base)} (cycle {half} → end: "
            f"{_percent(values[-1], values[half])}); by tenths: "
            + " ".join(f"{values[i]:.1f}" for i in tenths),
        )
        allowed = base * (1 + FLAT_FRACTION)
        if name != "RSS MiB":  # integer counts: 5 % of 10 fds is less than one
            allowed = max(allowed, base + 1)
        report.expect(
            last <= allowed,
            f"{name}: the floor grew from {base:.1f} after warm-up to {last:.1f} at the end",
        )


def _percent(value: float, reference: float) -> str:
    return f"{(value / reference - 1) * 100:+.1f} %" if reference else "n/a"


if __name__ == "__main__":
    main(run, description=__doc__ or "", default_count=1000)
