"""One measuring method for every encoder the ladder bench compares: the same steady-state window.

Whoever runs FFmpeg (this bench directly, or the service), its own ``-progress`` frame count
decides when the window opens (after the warm-up) and closes (after the media asked for), and the
CPU-seconds of the processes in between are divided by the media seconds in between.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import IO

import psutil

from actors.ffmpeg.process import die_with_this_thread
from ops.bench.common import FPS, Service, cpu_seconds


@dataclass
class Run:
    """CPU-seconds and wall seconds spent on ``media_s`` seconds of media."""

    cpu_s: float
    wall_s: float
    media_s: float

    @property
    def cpu_per_media_s(self) -> float:
        return self.cpu_s / self.media_s

    @property
    def speed(self) -> float:
        return self.media_s / self.wall_s


def steady_window(
    wait_for_frames: Callable[[int], int],
    cpu_now: Callable[[], Sequence[float]],
    clock: Callable[[], float],
    *,
    warmup_frames: int,
    window_frames: int,
) -> list[Run]:
    """CPU over the same stretch of media, whoever the encoder is.

    ``wait_for_frames(n)`` blocks until FFmpeg's ``-progress`` reports at least ``n`` frames and
    returns the count reported. The window opens at the first report at or past
    ``warmup_frames`` and closes at the first report at least ``window_frames`` later; media
    seconds are the frames in between (not the wall time, so a late report costs nothing). One
    ``Run`` per CPU counter that ``cpu_now`` returns.
    """
    first = wait_for_frames(warmup_frames)
    cpu_before, opened_at = cpu_now(), clock()
    last = wait_for_frames(first + window_frames)
    cpu_after, closed_at = cpu_now(), clock()
    media_s = (last - first) / FPS
    return [
        Run(after - before, closed_at - opened_at, media_s)
        for before, after in zip(cpu_before, cpu_after, strict=True)
    ]


def waiting_on(reports: Iterator[int]) -> Callable[[int], int]:
    """``wait_for_frames`` over a stream of progress reports (an FFmpeg's own pipe)."""

    def wait_for_frames(target: int) -> int:
        for frames in reports:
            if frames >= target:
                return frames
        raise RuntimeError("the encoder stopped before the measured window was complete")

    return wait_for_frames


def progress_frames(lines: Iterable[bytes]) -> Iterator[int]:
    """Media progress in frames from an FFmpeg ``-progress`` feed, one per report.

    Video feeds say ``frame=``; an audio-only feed has no frame count, so its ``out_time_us``
    is turned into frames at the bench's frame rate (the same media time).
    """
    frames: int | None = None
    out_time_us = 0
    for raw in lines:
        key, _, value = raw.decode(errors="replace").strip().partition("=")
        if key == "frame" and value.isdigit():
            frames = int(value)
        elif key == "out_time_us" and value.isdigit():
            out_time_us = int(value)
        elif key == "progress":
            yield frames if frames is not None else round(out_time_us * FPS / 1_000_000)


def start_encoders(
    jobs: Sequence[tuple[list[str], list[int]]], *, stdout: int, stderr: int | IO[bytes]
) -> list[subprocess.Popen[bytes]]:
    """Start FFmpeg processes side by side, each with its pipe fds and no stdin."""
    return [
        subprocess.Popen(
            argv,
            pass_fds=fds,
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            preexec_fn=die_with_this_thread(),  # noqa: PLW1509 - prctl only
        )
        for argv, fds in jobs
    ]


def measure_encoders(
    jobs: Sequence[tuple[list[str], list[int]]], *, warmup_frames: int, window_frames: int
) -> Run:
    """Run FFmpeg processes side by side on an endless source (each with ``-progress pipe:1``).

    Each process is measured over its own window of the same media, and their CPU-s per media-s
    add up: on a loaded machine processes that read at real time drift apart (the cheap ones
    keep up, the expensive ones lag), so one wall-clock window would not be the same media for
    all. The result is that sum, over the first process's window. All are killed at the end.
    """
    with tempfile.TemporaryFile() as stderr_log:
        procs = start_encoders(jobs, stdout=subprocess.PIPE, stderr=stderr_log)
        results: list[Run | Exception | None] = [None] * len(procs)
        measured = [threading.Event() for _ in procs]

        def measure(index: int) -> None:
            stdout = procs[index].stdout
            assert stdout is not None
            reports = progress_frames(stdout)
            try:
                handle = psutil.Process(procs[index].pid)
                (results[index],) = steady_window(
                    waiting_on(reports),
                    lambda: (cpu_seconds(handle),),
                    time.monotonic,
                    warmup_frames=warmup_frames,
                    window_frames=window_frames,
                )
            except (RuntimeError, psutil.Error) as error:
                results[index] = error
            finally:
                measured[index].set()
            for _ in reports:  # keep the pipe drained: a full pipe would stall this encoder
                pass

        readers = [
            threading.Thread(target=measure, args=(i,), daemon=True) for i in range(len(procs))
        ]
        try:
            for reader in readers:
                reader.start()
            for done in measured:
                done.wait()
        finally:
            for proc in procs:
                proc.kill()
                proc.wait()
            for reader in readers:
                reader.join(timeout=10)
        runs = [r for r in results if isinstance(r, Run)]
        if len(runs) != len(procs):
            stderr_log.seek(0)
            tail = stderr_log.read().decode(errors="replace")[-1500:]
            raise RuntimeError(
                f"{[r for r in results if not isinstance(r, Run)]}; ffmpeg said:\n{tail}"
            )
    first = runs[0]
    total_per_media_s = sum(r.cpu_per_media_s for r in runs)
    return Run(total_per_media_s * first.media_s, first.wall_s, first.media_s)


def waiting_on_service(service: Service, stream_id: str, pid: int) -> Callable[[int], int]:
    """``wait_for_frames`` over the service's view of the same feed (``encoder.frames``).

    The bench's own status requests cost the service CPU, which (b) measures: so it sleeps until
    shortly before the frame count is due at real time (FFmpeg reports every 0.5 s) and only
    then polls, a dozen requests or so per window instead of a steady stream.
    """

    def wait_for_frames(target: int) -> int:
        while True:
            info = service.stream(stream_id)
            encoder = info["encoder"]
            assert isinstance(encoder, dict)
            if encoder["pid"] != pid:
                raise RuntimeError(f"encoder restarted during the window: {info.get('last_error')}")
            frames = int(encoder["frames"])
            if frames >= target:
                return frames
            time.sleep(max(0.05, (target - frames) / FPS - 0.75))

    return wait_for_frames


def argv_difference(ours: Sequence[str], theirs: Sequence[str]) -> list[tuple[str, str]]:
    """Where two FFmpeg command lines differ, ignoring the binary and the pipe fd numbers."""

    def normal(argv: Sequence[str]) -> list[str]:
        return [re.sub(r"^pipe:\d+$", "pipe:N", a) for a in argv[1:]]

    a, b = normal(ours), normal(theirs)
    differences = [(x, y) for x, y in zip(a, b, strict=False) if x != y]
    if len(a) != len(b):
        differences.append((f"{len(a)} args", f"{len(b)} args"))
    return differences


def per_round_ratios(numerators: Sequence[Run], denominators: Sequence[Run]) -> list[float]:
    pairs = zip(numerators, denominators, strict=True)
    return [n.cpu_per_media_s / d.cpu_per_media_s for n, d in pairs]


def cpu_rates(runs: Sequence[Run]) -> list[float]:
    return [r.cpu_per_media_s for r in runs]
