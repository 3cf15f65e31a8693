"""A frozen FFmpeg (SIGSTOP) is replaced by the watchdog within WATCHDOG_SEGMENTS segments.

    python -m ops.reliability.sigstop --count 10

One 240p LL stream, ``SEGMENT_DURATION=1``, ``WATCHDOG_SEGMENTS=2``. For each round: SIGSTOP the
FFmpeg, measure until the stream says it restarts (the watchdog fired), until the frozen process
is gone and until a new FFmpeg commits a segment. Promised: the watchdog fires no earlier than
WATCHDOG_SEGMENTS × SEGMENT_DURATION after the last media and no later than that plus
``margin_s`` (its own 0.5 s poll, the last part's age and scheduling on a loaded machine), with
``last_error`` saying "no media"; the playlists stay valid throughout.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

from ops.reliability.playlist import PlaylistError
from ops.reliability.probe import (
    LAVFI_240P,
    PlaylistWatch,
    alive,
    as_int,
    encoder_pid,
    send_signal,
    service_for_case,
    signal_encoder,
    spread,
    status,
    wait_live,
    wait_until,
)
from ops.reliability.report import Report, main

STREAM_ID = "frozen"
SEGMENT_DURATION_S = 1.0
WATCHDOG_SEGMENTS = 2.0
# detection may lag the stall window by the watchdog's poll (0.5 s), the age of the last part
# (≤ a part) and, on this shared 2-core machine, scheduling
DEFAULT_MARGIN_S = 3.0


def run(
    count: int = 10, *, margin_s: float = DEFAULT_MARGIN_S, workdir: Path | None = None
) -> Report:
    report = Report("FFmpeg SIGSTOP", count)
    stall_s = WATCHDOG_SEGMENTS * SEGMENT_DURATION_S
    overrides = {
        "SEGMENT_DURATION": f"{SEGMENT_DURATION_S:g}",
        "WATCHDOG_SEGMENTS": f"{WATCHDOG_SEGMENTS:g}",
        "RESTART_MAX": "1000",
        "RESTART_BACKOFF_MAX": "1",
    }
    with service_for_case(workdir, **overrides) as service:
        service.create(STREAM_ID, LAVFI_240P, qualities=["240p"], low_latency=True)
        wait_live(service, STREAM_ID, segments=2)
        watch = PlaylistWatch(service, STREAM_ID)
        detected_s: list[float] = []
        replaced_s: list[float] = []
        for round_ in range(1, count + 1):
            frozen = signal_encoder(report, service, STREAM_ID, signal.SIGSTOP, f"round {round_}")
            if frozen is None:
                break
            pid, restarts, stopped_at = frozen
            try:
                detected_s.append(
                    wait_until(
                        lambda r=restarts: as_int(status(service, STREAM_ID)["restarts"]) > r,
                        stall_s + 30,
                        f"round {round_}: the watchdog",
                    )
                )
                wait_until(
                    lambda p=pid: not alive(p), 15, f"round {round_}: the frozen FFmpeg gone"
                )
                wait_until(
                    lambda p=pid: _live_with_new_encoder(status(service, STREAM_ID), p),
                    60,
                    f"round {round_}: a new FFmpeg's first segment",
                )
            except TimeoutError as error:
                send_signal([pid], signal.SIGCONT)
                report.problem(f"{error}: {status(service, STREAM_ID)}")
                break
            replaced_s.append(time.monotonic() - stopped_at)
            error_text = str(status(service, STREAM_ID)["last_error"] or "")
            report.expect("no media" in error_text, f"round {round_}: last_error {error_text!r}")
            try:
                watch.check_now()
            except PlaylistError as error:
                report.problem(f"round {round_}: {error}")
        # the watchdog counts from the last media, which is ≤ one part older than the SIGSTOP
        late = [d for d in detected_s if d > stall_s + margin_s]
        early = [d for d in detected_s if d < stall_s - 0.5]
        report.expect(not late, f"watchdog later than {stall_s:g} + {margin_s:g} s: {late}")
        report.expect(not early, f"watchdog earlier than the {stall_s:g} s window: {early}")
        report.figure("stall window (WATCHDOG_SEGMENTS × SEGMENT_DURATION)", f"{stall_s:g} s")
        report.figure("SIGSTOP → watchdog restart", spread(detected_s))
        report.figure("SIGSTOP → new FFmpeg's first segment", spread(replaced_s))
        report.figure("playlist reloads checked", watch.reloads)
    return report


def _live_with_new_encoder(info: dict[str, object], old_pid: int) -> bool:
    return info["state"] == "live" and encoder_pid(info) not in (None, old_pid)


if __name__ == "__main__":
    main(run, description=__doc__ or "", default_count=10)
