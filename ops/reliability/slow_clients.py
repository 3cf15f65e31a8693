"""Thousands of idle and slow connections on the origin while a real player plays.

    .venv/bin/python -m ops.reliability.slow_clients --count 2000 [--seconds 40]

Starts ``hlsdash serve`` (a subprocess, real FFmpeg), creates a low-latency stream, plays it
through the CDN origin with hls.js in headless Chromium, and then opens ``--count`` abusive
connections to the same origin port, a quarter of each kind:

* ``silent``: connects and sends nothing (must go after ``ORIGIN_HEAD_TIMEOUT``);
* ``slowloris``: sends a request head one byte a second, never finishing it (the same);
* ``idle``: one complete request, reads the answer, then sits on the keep-alive connection
  (must go after ``ORIGIN_IDLE_TIMEOUT``);
* ``slow_reader``: a tiny receive buffer, 64 pipelined segment requests, never reads (must go
  after ``ORIGIN_SEND_TIMEOUT`` without write progress).

Meanwhile a thread asks the control API (``GET /streams/{id}``, ``GET /streams``) 20 times a
second. Printed: how many of each kind the origin closed and how long after their deadline
started, the API latency p50/p99/max, how far the player advanced and its longest stall, and the
service's open origin connections over time. The machine is shared and noisy: the figures are
for the README, not for asserting; ``tests/e2e/test_slow_clients.py`` runs this at a small count
and checks only the functional parts.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import itertools
import math
import multiprocessing
import re
import resource
import selectors
import socket
import statistics
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Event as EventType

import httpx
import psutil

from tests.e2e.harness import PlayerHarness, launch_harness
from tests.e2e.live_service import LiveService, run_service

KINDS = ("silent", "slowloris", "idle", "slow_reader")
STREAM_ID = "slowclients"
_API_RATE_HZ = 20.0
_SLOW_READER_RCVBUF = 4096
_SLOW_READER_REQUESTS = 64
_TRICKLE_HEAD = (
    b"GET /" + STREAM_ID.encode() + b"/playlist.m3u8 HTTP/1.1\r\nHost: x\r\nX-Pad: " + (b"a" * 4096)
)


@dataclass
class AbuseConnection:
    kind: str
    sock: socket.socket
    deadline_from: float  # monotonic time its timeout starts counting (open, or answer read)
    sent: int = 0
    answered: bool = False  # idle: its one answer has been read
    refused: bool = False  # the origin answered 503 (over the cap)
    closed_at: float | None = None


@dataclass
class KindReport:
    opened: int = 0
    refused: int = 0
    closed: int = 0
    close_after_s: list[float] = field(default_factory=list)


@dataclass
class SlowClientsResult:
    count: int
    seconds: float
    timeouts_s: dict[str, float]
    kinds: dict[str, KindReport]
    api_samples: list[tuple[float, float]]  # (seconds since the abuse began, latency)
    api_errors: int
    player_advanced_s: float
    player_wall_s: float
    player_longest_stall_s: float
    player_playing_at_end: bool
    origin_connections: list[tuple[float, int]]  # (seconds since abuse started, count)

    @property
    def still_open(self) -> int:
        return sum(k.opened - k.refused - k.closed for k in self.kinds.values())

    @property
    def api_latencies_s(self) -> list[float]:
        return [latency for _, latency in self.api_samples]

    def api_percentile(
        self, pct: float, start_s: float = -math.inf, end_s: float = math.inf
    ) -> float:
        values = sorted(latency for at, latency in self.api_samples if start_s <= at < end_s)
        if not values:
            return float("nan")
        return values[min(len(values) - 1, round((len(values) - 1) * pct / 100))]


class AbuseClients:
    """All abusive connections, driven from one thread with a selector."""

    def __init__(self, port: int, segment_path: str) -> None:
        self._port = port
        self._segment_path = segment_path
        self.connections: list[AbuseConnection] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="abuse", daemon=True)
        self._selector = selectors.DefaultSelector()

    def open(self, count: int) -> None:
        for index in range(count):
            kind = KINDS[index % len(KINDS)]
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            if kind == "slow_reader":
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _SLOW_READER_RCVBUF)
            sock.settimeout(5)
            sock.connect(("127.0.0.1", self._port))
            sock.setblocking(False)
            connection = AbuseConnection(kind, sock, time.monotonic())
            if kind == "idle":
                sock.send(f"GET /{STREAM_ID}/playlist.m3u8 HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            elif kind == "slow_reader":
                request = f"GET {self._segment_path} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
                with contextlib.suppress(BlockingIOError):
                    sock.send(request * _SLOW_READER_REQUESTS)
            if kind != "slow_reader":  # slow readers are not read until the end
                self._selector.register(sock, selectors.EVENT_READ, connection)
            self.connections.append(connection)
        self._thread.start()

    def _run(self) -> None:
        next_trickle = time.monotonic()
        while not self._stop.is_set():
            for key, _ in self._selector.select(timeout=0.05):
                connection: AbuseConnection = key.data
                self._on_readable(connection)
            now = time.monotonic()
            if now >= next_trickle:
                next_trickle = now + 1.0
                for connection in self.connections:
                    if connection.kind == "slowloris" and connection.closed_at is None:
                        self._trickle(connection)

    def _on_readable(self, connection: AbuseConnection) -> None:
        try:
            data = connection.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if data.startswith(b"HTTP/1.1 503 "):
            connection.refused = True
        if not data:
            self._closed(connection)
        elif connection.kind == "idle" and not connection.answered:
            connection.answered = True
            connection.deadline_from = time.monotonic()  # the idle timeout starts now

    def _trickle(self, connection: AbuseConnection) -> None:
        index = connection.sent % len(_TRICKLE_HEAD)
        byte = _TRICKLE_HEAD[index : index + 1]
        try:
            connection.sock.send(byte)
            connection.sent += 1
        except BlockingIOError:
            return
        except OSError:
            self._closed(connection)

    def _closed(self, connection: AbuseConnection) -> None:
        if connection.closed_at is None:
            connection.closed_at = time.monotonic()
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(connection.sock)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def drain_slow_readers(self, timeout_s: float = 5.0) -> None:
        """At the end: read what the slow readers never read; EOF/reset = the origin closed it."""
        pending = [c for c in self.connections if c.kind == "slow_reader" and c.closed_at is None]
        deadline = time.monotonic() + timeout_s
        while pending and time.monotonic() < deadline:
            still = []
            for connection in pending:
                try:
                    while data := connection.sock.recv(1 << 20):
                        if data.startswith(b"HTTP/1.1 503 "):
                            connection.refused = True
                except BlockingIOError:
                    still.append(connection)
                    continue
                except OSError as error:
                    if error.errno not in {errno.ECONNRESET, errno.EPIPE}:
                        raise
                # EOF or reset: the origin closed it; when is unknown from this side
                connection.closed_at = connection.closed_at or -1.0
            pending = still
            time.sleep(0.05)

    def close_all(self) -> None:
        for connection in self.connections:
            connection.sock.close()
        self._selector.close()

    def report(self) -> dict[str, KindReport]:
        reports = {kind: KindReport() for kind in KINDS}
        for connection in self.connections:
            report = reports[connection.kind]
            report.opened += 1
            if connection.refused:
                report.refused += 1
            elif connection.closed_at is not None:
                report.closed += 1
                if connection.closed_at > 0:
                    report.close_after_s.append(connection.closed_at - connection.deadline_from)
        return reports


def _sample_api(api_url: str, stop: EventType, results: Connection) -> None:
    """In a child process: GET the API at a steady rate until ``stop``; send the samples back."""
    paths = (f"/streams/{STREAM_ID}", "/streams")
    samples: list[tuple[float, float, int]] = []  # (monotonic start, latency, status)
    with httpx.Client(base_url=api_url, timeout=10.0) as client:
        next_at = time.monotonic()
        while not stop.is_set():
            started = time.monotonic()
            try:
                status = client.get(paths[len(samples) % 2]).status_code
            except httpx.HTTPError:
                status = 0
            samples.append((started, time.monotonic() - started, status))
            if len(samples) == 1:
                results.send([])  # started: the parent may begin its baseline
            next_at += 1 / _API_RATE_HZ
            time.sleep(max(0.0, next_at - time.monotonic()))
    results.send(samples)


class ApiSampler:
    """Asks the control API at a steady rate from its own process (no GIL shared with the
    abusive clients and the browser driver, which would otherwise show up as API latency)."""

    def __init__(self, api_url: str) -> None:
        context = multiprocessing.get_context("spawn")
        self._stop = context.Event()
        self._receive, send = context.Pipe(duplex=False)
        self._process = context.Process(
            target=_sample_api, args=(api_url, self._stop, send), daemon=True
        )
        self.samples: list[tuple[float, float, int]] = []

    def start(self) -> None:
        self._process.start()
        if not self._receive.poll(60):
            raise RuntimeError("the API sampler process did not start")
        self._receive.recv()

    def stop(self) -> None:
        self._stop.set()
        if self._receive.poll(30):
            self.samples = self._receive.recv()
        self._process.join(timeout=10)
        if self._process.is_alive():
            self._process.kill()

    @property
    def latencies_s(self) -> list[float]:
        return [latency for _, latency, _ in self.samples]

    @property
    def errors(self) -> int:
        return sum(1 for _, _, status in self.samples if status != 200)


def origin_connections(pid: int, port: int) -> int:
    """ESTABLISHED TCP connections the service holds on the origin port."""
    return sum(
        1
        for c in psutil.Process(pid).net_connections(kind="tcp")
        if c.laddr and c.laddr.port == port and c.status == psutil.CONN_ESTABLISHED
    )


def _raise_own_fd_limit(wanted: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def _committed_segment_path(service: LiveService) -> str:
    playlist = service.client.get(f"{service.origin_url}/{STREAM_ID}/240p/playlist.m3u8").text
    segments = re.findall(r"^(seg_\d+\.m4s)", playlist, flags=re.MULTILINE)
    if not segments:
        raise RuntimeError(f"no segment in the playlist yet:\n{playlist}")
    return f"/{STREAM_ID}/240p/{segments[0]}"


@contextlib.contextmanager
def _abuse(port: int, segment_path: str, count: int) -> Iterator[AbuseClients]:
    clients = AbuseClients(port, segment_path)
    try:
        clients.open(count)
        yield clients
    finally:
        clients.stop()
        clients.close_all()


def run(
    *,
    count: int,
    seconds: float,
    head_timeout_s: float = 10.0,
    idle_timeout_s: float = 15.0,
    send_timeout_s: float = 10.0,
    harness: PlayerHarness | None = None,
) -> SlowClientsResult:
    """The whole scenario; returns what was measured (asserts nothing).

    ``harness``: a Chromium already running in this thread (the e2e suite's shared one; a second
    Playwright sync session in the same thread is refused), else one is launched for the run.
    """
    _raise_own_fd_limit(count + 1024)
    timeouts = {"head": head_timeout_s, "idle": idle_timeout_s, "send": send_timeout_s}
    env = {
        "ORIGIN_HEAD_TIMEOUT": f"{head_timeout_s:g}",
        "ORIGIN_IDLE_TIMEOUT": f"{idle_timeout_s:g}",
        "ORIGIN_SEND_TIMEOUT": f"{send_timeout_s:g}",
        "LOG_LEVEL": "warning",
    }
    with contextlib.ExitStack() as stack:
        service = stack.enter_context(run_service(extra_env=env))
        if harness is None:
            harness = stack.enter_context(launch_harness())
        service.create_stream(STREAM_ID, low_latency=True, qualities=("240p",))
        service.wait_segments(STREAM_ID, at_least=2)
        session = harness.open_player(
            service.api_url, "hlsjs", service.cdn_hls_url(STREAM_ID), low_latency=True
        )
        try:
            session.wait_playing(min_advance_s=2.0, timeout_s=30.0)
            sampler = ApiSampler(service.api_url)
            sampler.start()
            session.page.wait_for_timeout(5000)  # a baseline of API samples before the abuse
            samples: list[tuple[float, int]] = []
            positions: list[tuple[float, float]] = []
            try:
                with _abuse(service.origin_port, _committed_segment_path(service), count) as abuse:
                    began = time.monotonic()
                    while (now := time.monotonic()) - began < seconds:
                        positions.append((now, session.state().current_time_s))
                        samples.append(
                            (now - began, origin_connections(service.proc.pid, service.origin_port))
                        )
                        session.page.wait_for_timeout(1000)
                    abuse.stop()
                    abuse.drain_slow_readers()
                    kinds = abuse.report()
                    final = session.wait_playing(min_advance_s=1.0, timeout_s=15.0)
            finally:
                sampler.stop()
        finally:
            session.close()
    advanced = positions[-1][1] - positions[0][1] if positions else 0.0
    stall = longest = 0.0
    for (t0, p0), (t1, p1) in itertools.pairwise(positions):
        stall = stall + (t1 - t0) if p1 <= p0 else 0.0  # consecutive samples without progress
        longest = max(longest, stall)
    return SlowClientsResult(
        count=count,
        seconds=seconds,
        timeouts_s=timeouts,
        kinds=kinds,
        api_samples=[(at - began, latency) for at, latency, _ in sampler.samples],
        api_errors=sampler.errors,
        player_advanced_s=advanced,
        player_wall_s=positions[-1][0] - positions[0][0] if positions else 0.0,
        player_longest_stall_s=longest,
        player_playing_at_end=final.video_width > 0,
        origin_connections=samples,
    )


def print_report(result: SlowClientsResult) -> None:
    print(
        f"\n== slow clients: {result.count} connections for {result.seconds:g} s, timeouts "
        + ", ".join(f"{k} {v:g} s" for k, v in result.timeouts_s.items())
        + " =="
    )
    expected = {
        "silent": "head",
        "slowloris": "head",
        "idle": "idle",
        "slow_reader": "send",
    }
    for kind, report in result.kinds.items():
        times = report.close_after_s
        when = (
            f"closed after median {statistics.median(times):.1f} s, max {max(times):.1f} s"
            if times
            else "closing times not observable from the client"
        )
        print(
            f"{kind:12} opened {report.opened:5}  refused(503) {report.refused:4}  "
            f"closed by the origin {report.closed:5}  ({when}; {expected[kind]} timeout "
            f"{result.timeouts_s[expected[kind]]:g} s)"
        )
    print(f"still open at the end: {result.still_open}")
    latencies = result.api_latencies_s
    print(
        f"API: {len(latencies)} requests, {result.api_errors} errors, "
        f"p50 {result.api_percentile(50) * 1000:.1f} ms, "
        f"p99 {result.api_percentile(99) * 1000:.1f} ms, "
        f"max {max(latencies, default=float('nan')) * 1000:.1f} ms"
    )
    windows = [(-math.inf, 0.0, "before")] + [
        (float(t), float(t + 10), f"{t}-{t + 10} s") for t in range(0, int(result.seconds), 10)
    ]
    print(
        "API p99 by time since the connections opened: "
        + ", ".join(
            f"{label} {result.api_percentile(99, lo, hi) * 1000:.0f} ms"
            for lo, hi, label in windows
        )
    )
    print(
        f"player (hls.js via the origin): advanced {result.player_advanced_s:.1f} s of media in "
        f"{result.player_wall_s:.1f} s, longest stall {result.player_longest_stall_s:.1f} s, "
        f"playing at the end: {result.player_playing_at_end}"
    )
    profile = ", ".join(
        f"{t:.0f}s:{n}"
        for t, n in result.origin_connections[:: max(1, len(result.origin_connections) // 12)]
    )
    print(f"origin connections held by the service over time: {profile}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=40.0)
    parser.add_argument("--head-timeout", type=float, default=10.0)
    parser.add_argument("--idle-timeout", type=float, default=15.0)
    parser.add_argument("--send-timeout", type=float, default=10.0)
    args = parser.parse_args()
    print_report(
        run(
            count=args.count,
            seconds=args.seconds,
            head_timeout_s=args.head_timeout,
            idle_timeout_s=args.idle_timeout,
            send_timeout_s=args.send_timeout,
        )
    )


if __name__ == "__main__":
    main()
