"""What the reliability cases look at from outside the service: its process, its FFmpeg children,
its streams' status and playlists. The service itself is ``ops.bench.common.running_service``
(``python -m supervisor.cli serve`` on free loopback ports), the same launcher the benchmarks use.
"""

from __future__ import annotations

import collections
import contextlib
import json
import signal
import statistics
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from ops.bench.common import Service, http, lavfi_source, running_service
from ops.reliability.player import PlayerWatch
from ops.reliability.playlist import PlaylistError, ReloadChecker, media_playlist_uris
from ops.reliability.report import Report

# the cheapest real transcoded stream: a 240p test pattern + tone made in real time
LAVFI_240P = "lavfi:" + lavfi_source(426, 240)
# short segments so that every case sees many of them in little time
FAST_SERVICE = {
    "SEGMENT_DURATION": "1",
    "PART_TARGET": "0.5",
    "PLAYLIST_SIZE": "6",
    "SEGMENT_MARGIN": "2",
    "ENCODER_PRESET": "ultrafast",
}
TERMINAL_STATES = frozenset({"stopped", "failed", "stale"})


@dataclass(frozen=True, slots=True)
class Resources:
    """One sample of the service process (its own, FFmpeg excluded)."""

    open_fds: int
    threads: int
    rss_bytes: int


def resources(process: psutil.Process) -> Resources:
    with process.oneshot():
        return Resources(process.num_fds(), process.num_threads(), process.memory_info().rss)


def ffmpeg_pids(process: psutil.Process) -> set[int]:
    """Live (not zombie) FFmpeg processes below ``process``."""
    found = set()
    with contextlib.suppress(psutil.NoSuchProcess):
        for child in process.children(recursive=True):
            with contextlib.suppress(psutil.Error):
                if "ffmpeg" in child.name() and child.status() != psutil.STATUS_ZOMBIE:
                    found.add(child.pid)
    return found


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def wait_until(
    check: Callable[[], bool], timeout_s: float, what: str, poll_s: float = 0.05
) -> float:
    """Poll ``check`` until true; the seconds it took. TimeoutError naming ``what`` if never."""
    began = time.monotonic()
    while not check():
        if time.monotonic() - began > timeout_s:
            raise TimeoutError(f"timed out after {timeout_s:g} s waiting for {what}")
        time.sleep(poll_s)
    return time.monotonic() - began


def status(service: Service, stream_id: str) -> dict[str, object]:
    return service.stream(stream_id)


def encoder_pid(info: dict[str, object]) -> int | None:
    encoder = info.get("encoder")
    pid = encoder.get("pid") if isinstance(encoder, dict) else None
    return pid if isinstance(pid, int) and pid > 0 else None


def signal_encoder(
    report: Report, service: Service, stream_id: str, sig: signal.Signals, when: str
) -> tuple[int, int, float] | None:
    """Send ``sig`` to the stream's FFmpeg: (its pid, restarts so far, monotonic time sent), or
    None (a problem recorded) if the stream has no encoder to signal."""
    info = status(service, stream_id)
    pid = encoder_pid(info)
    if pid is None:
        report.problem(f"{when}: {stream_id} has no encoder pid: {info}")
        return None
    send_signal([pid], sig)
    return pid, as_int(info["restarts"]), time.monotonic()


def as_int(value: object) -> int:
    assert isinstance(value, int), value
    return value


def wait_live(service: Service, stream_id: str, segments: int, timeout_s: float = 60) -> None:
    """Live with at least ``segments`` segments; an ended stream fails at once."""

    def reached() -> bool:
        info = status(service, stream_id)
        if info.get("state") in TERMINAL_STATES:
            raise RuntimeError(f"{stream_id} ended: {info}")
        return info.get("state") == "live" and as_int(info.get("segments_produced")) >= segments

    wait_until(reached, timeout_s, f"{stream_id} live with {segments} segments", poll_s=0.1)


def fetch(url: str, timeout_s: float = 10) -> str:
    code, body, _ = http("GET", url, timeout=timeout_s)
    if code != 200:
        raise PlaylistError(f"GET {url} → {code}: {body[:200]!r}")
    return body.decode()


@dataclass(slots=True)
class PlaylistWatch:
    """Every media playlist of one stream on the origin, each followed by a ReloadChecker."""

    service: Service
    stream_id: str
    checkers: dict[str, ReloadChecker] = field(default_factory=dict)

    def check_now(self) -> dict[str, int]:
        """Reload every media playlist once and check it; returns each one's discontinuities."""
        base = f"{self.service.origin}/{self.stream_id}"
        uris = media_playlist_uris(fetch(f"{base}/playlist.m3u8"))
        if not uris:
            raise PlaylistError(f"{self.stream_id}: the multivariant playlist names no media")
        found = {}
        for uri in uris:
            checker = self.checkers.setdefault(uri, ReloadChecker(f"{self.stream_id}/{uri}"))
            found[uri] = checker.feed(fetch(f"{base}/{uri}")).discontinuities
        return found

    @property
    def reloads(self) -> int:
        return sum(c.reloads for c in self.checkers.values())

    def numbers_seen(self) -> set[int]:
        seen: set[int] = set()
        for checker in self.checkers.values():
            seen |= checker.numbers_seen
        return seen


def check_playlists(report: Report, when: str, watch: PlaylistWatch) -> dict[str, int] | None:
    """``watch.check_now()`` with a broken rule recorded as a problem (then None)."""
    try:
        return watch.check_now()
    except PlaylistError as error:
        report.problem(f"{when}: {error}")
        return None


def encoder_exit_causes(log_path: Path, stream_id: str) -> dict[str, int]:
    """Why the stream's encoders exited, counted from the JSON log (``encoder_exited`` lines)."""
    causes: collections.Counter[str] = collections.Counter()
    with contextlib.suppress(OSError), log_path.open(errors="replace") as log:
        for line in log:
            if '"encoder_exited"' not in line:
                continue
            with contextlib.suppress(ValueError):
                event = json.loads(line)
                if event.get("stream_id") == stream_id:
                    causes[str(event.get("error"))] += 1
    return dict(causes)


def spread(values: Sequence[float]) -> str:
    """``p50 / max`` in seconds, for the figures a case prints."""
    if not values:
        return "n/a"
    return f"p50 {statistics.median(values):.2f} s / max {max(values):.2f} s (n={len(values)})"


@contextlib.contextmanager
def service_for_case(
    workdir: Path | None = None,
    *,
    ports: tuple[int, int] | None = None,
    log_name: str = "service.log",
    **overrides: str,
) -> Iterator[Service]:
    """The real service with short segments (FAST_SERVICE), anything else overridden."""
    with running_service(
        workdir, ports=ports, log_name=log_name, **{**FAST_SERVICE, **overrides}
    ) as service:
        yield service


def send_signal(pids: Iterable[int], sig: signal.Signals) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            psutil.Process(pid).send_signal(sig)


def start_watched_stream(
    report: Report,
    service: Service,
    stream_id: str,
    source: str,
    *,
    player: PlayerWatch | None,
    player_src: str,
) -> PlaylistWatch:
    """Create a 240p LL stream, wait until it is live, check its playlists once, and (with a
    player) start playing ``player_src``; returns the watch that follows its playlists."""
    service.create(stream_id, source, qualities=["240p"], low_latency=True)
    wait_live(service, stream_id, segments=2)
    watch = PlaylistWatch(service, stream_id)
    check_playlists(report, "before", watch)
    if player is not None:
        player.open(service.api, player_src)
        player.check_playing(2.0)
    return watch
