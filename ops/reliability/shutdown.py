"""SIGTERM to a busy service: exit 0 within 5 s, every FFmpeg stopped, every folder removed.

    python -m ops.reliability.shutdown --count 3

Each round starts a fresh service with 4 live 240p LL streams and 100 viewers on the origin, each
on its own keep-alive connection: half reload a media playlist and fetch its newest part every
0.5 s, half hold LL-HLS blocking reloads (``_HLS_msn`` of the next segment). Once every viewer has
had an answer, the service gets SIGTERM. Promised: exit code 0 within 5 s, none of its FFmpeg
processes left, its stream folders removed (the actors' own cleanup ran, not just PDEATHSIG).
"""

from __future__ import annotations

import contextlib
import http.client
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from ops.bench.common import Service, newest_segment
from ops.reliability.probe import (
    LAVFI_240P,
    alive,
    ffmpeg_pids,
    service_for_case,
    spread,
    wait_live,
    wait_until,
)
from ops.reliability.report import Report, main

STREAMS = 4
VIEWERS = 100
EXIT_WITHIN_S = 5.0
POLL_PERIOD_S = 0.5


@dataclass
class Viewer:
    """One player-like client on its own connection; runs in a thread until ``stop`` is set."""

    port: int
    stream_id: str
    blocking: bool
    stop: threading.Event
    answers: int = 0
    errors: int = 0
    thread: threading.Thread | None = field(default=None, repr=False)

    def start(self) -> None:
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        playlist_path = f"/{self.stream_id}/240p/playlist.m3u8"
        try:
            while not self.stop.is_set():
                try:
                    playlist = self._get(conn, playlist_path)
                    newest = newest_segment(playlist)
                    if self.blocking and newest is not None:
                        self._get(conn, f"{playlist_path}?_HLS_msn={newest + 1}")
                    elif not self.blocking:
                        self.stop.wait(POLL_PERIOD_S)
                except (OSError, http.client.HTTPException):
                    self.errors += 1
                    conn.close()
                    self.stop.wait(0.2)
        finally:
            conn.close()

    def _get(self, conn: http.client.HTTPConnection, path: str) -> str:
        conn.request("GET", path)
        response = conn.getresponse()
        body = response.read()
        if response.status == 200:
            self.answers += 1
        return body.decode(errors="replace")


def run(count: int = 3, *, viewers: int = VIEWERS, workdir: Path | None = None) -> Report:
    report = Report(f"SIGTERM with {STREAMS} streams and {viewers} viewers", count)
    exits_s: list[float] = []
    for round_ in range(1, count + 1):
        exit_s = _one_round(report, round_, viewers, workdir)
        if exit_s is not None:
            exits_s.append(exit_s)
    report.figure("SIGTERM → exit", spread(exits_s))
    return report


def _one_round(report: Report, round_: int, viewers: int, workdir: Path | None) -> float | None:
    stop = threading.Event()
    crowd: list[Viewer] = []
    try:
        with service_for_case(workdir, MAX_STREAMS=str(STREAMS)) as service:
            ids = [f"live{i}" for i in range(STREAMS)]
            for stream_id in ids:
                service.create(stream_id, LAVFI_240P, qualities=["240p"], low_latency=True)
            for stream_id in ids:
                wait_live(service, stream_id, segments=2)
            crowd = [
                Viewer(service.origin_port, ids[i % STREAMS], blocking=i % 2 == 1, stop=stop)
                for i in range(viewers)
            ]
            for viewer in crowd:
                viewer.start()
            wait_until(
                lambda: all(v.answers > 0 for v in crowd), 30, "every viewer answered", poll_s=0.1
            )
            time.sleep(1.0)  # blocking reloads are now held, pollers mid-cycle
            return _terminate(report, round_, service, ids, crowd)
    finally:
        stop.set()
        for viewer in crowd:
            if viewer.thread is not None:
                viewer.thread.join(timeout=15)


def _terminate(
    report: Report, round_: int, service: Service, ids: list[str], crowd: list[Viewer]
) -> float | None:
    process = service.process
    encoders = ffmpeg_pids(service.ps)
    report.expect(len(encoders) == STREAMS, f"round {round_}: {len(encoders)} FFmpeg before")
    answers_before = sum(v.answers for v in crowd)
    process.send_signal(signal.SIGTERM)
    began = time.monotonic()
    code: int | None = None
    with contextlib.suppress(Exception):
        code = process.wait(timeout=30)
    exit_s = time.monotonic() - began
    report.expect(code == 0, f"round {round_}: exit code {code}")
    report.expect(exit_s <= EXIT_WITHIN_S, f"round {round_}: exit took {exit_s:.2f} s")
    left = sorted(pid for pid in encoders if alive(pid))
    report.expect(not left, f"round {round_}: FFmpeg left after the exit: {left}")
    folders = [s for s in ids if (service.output_dir / s).exists()]
    report.expect(not folders, f"round {round_}: stream folders left: {folders}")
    report.figure(
        f"round {round_}",
        f"exit {code} after {exit_s:.2f} s, {len(encoders)} FFmpeg before / {len(left)} after, "
        f"{answers_before} viewer answers before the SIGTERM",
    )
    return exit_s if code is not None else None


if __name__ == "__main__":
    main(run, description=__doc__ or "", default_count=3)
