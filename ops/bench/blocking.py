"""LL-HLS blocking reload at scale: thousands of _HLS_msn/_HLS_part waiters on one rendition.

    python -m ops.bench.blocking                  # 2,000 waiters, 3 rounds
    python -m ops.bench.blocking --tiny           # 100 waiters, 1 round (the smoke test)
    python -m ops.bench.blocking --edge varnish   # the same waiters through an edge cache

A real service (subprocess) runs one 240p LL stream (2 s segments, 0.5 s parts). Each waiter is
a raw keep-alive socket (the fd limit is raised with setrlimit). Right after a segment starts, all
waiters ask for the first part of the *next* segment (~2 s ahead), so every request is parked
before the part exists (checked: the last request must leave before the part is published).

Delay = publish → answer complete:

* publish: the packager's own timestamp. Part 0 of segment n+1 becomes visible in the playlist
  exactly when segment n passes the commit barrier (parts of n+1 stay hidden until then), and
  the packager stamps that commit with the wall-clock time at which it took in the fragment that
  completed it; the API reports it as ``last_segment_at`` (millisecond resolution, truncated, so
  a delay may read up to 1 ms long), read while ``segments_produced`` is n+1.
* answer complete: the kernel's receive timestamp (SO_TIMESTAMPNS, same wall clock) of the bytes
  that completed the response, so the time this Python client needs to get round 2,000 sockets is
  not charged to the server; the delays as the client saw them are printed too.

With ``--edge NAME`` (an ``ops.bench.edge.CANDIDATES`` name) the waiters connect to that edge
(``ops/nginx/run-edge``) in front of the origin instead, and each round also prints how many
playlist requests reached the origin for those waiters (one if the edge collapsed them all).

Every waiter counts. A 200 that lists the part is an answer; any other status, a 200 without the
part, a closed connection or no complete answer within the client timeout is a failure, counted
and shown in the percentiles as ``inf`` (never dropped). Prints p50/p99/max and the service's CPU
over the round.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import selectors
import socket
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from ops.bench.common import (
    SO_TIMESTAMPNS,
    TIMESTAMP_SPACE,
    Service,
    cpu_seconds,
    fmt_ms,
    free_port,
    header,
    http,
    kernel_receive_time,
    last_part,
    lavfi_source,
    percentile,
    raise_fd_limit,
    running_service,
)
from ops.bench.edge import CANDIDATES, Edge, origin_requests

STREAM = "block"
RENDITION = "240p"
CLIENT_TIMEOUT_S = 15.0  # > the origin's own hold (3 × target duration = 6 s here)


@dataclass(frozen=True, slots=True)
class Answer:
    """How one waiter's request ended."""

    status: int | None  # None: no complete response (timeout, or the connection closed)
    has_part: bool  # a 200 whose playlist lists the requested part
    completed_unix_s: float | None  # kernel receive time of the response's last bytes
    seen_unix_s: float | None  # when this client read those bytes
    closed: bool = False

    @property
    def ok(self) -> bool:
        return self.status == 200 and self.has_part and self.completed_unix_s is not None


def publish_delays_s(answers: Sequence[Answer], published_unix_s: float) -> list[float]:
    """Publish → answer for every waiter; a failed or missing answer is ``inf``, never dropped."""
    return [
        a.completed_unix_s - published_unix_s
        if a.ok and a.completed_unix_s is not None
        else math.inf
        for a in answers
    ]


def outcome_counts(answers: Sequence[Answer]) -> dict[str, int]:
    """Answers by kind: ok, status N (non-200), 200 without the part, closed, timed out."""
    counts: Counter[str] = Counter()
    for answer in answers:
        if answer.ok:
            counts["ok"] += 1
        elif answer.status == 200:
            counts["200 without the part"] += 1
        elif answer.status is not None:
            counts[f"status {answer.status}"] += 1
        elif answer.closed:
            counts["closed"] += 1
        else:
            counts["timed out"] += 1
    return dict(counts)


def open_connection(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    sock.setblocking(False)
    return sock


def open_connections(port: int, count: int) -> list[socket.socket]:
    socks = []
    for i in range(count):
        socks.append(open_connection(port))
        if i % 100 == 99:
            time.sleep(0.02)  # let the server's accept loop keep up with its backlog
    return socks


def usable(sock: socket.socket) -> bool:
    """Open with nothing unread (a late answer from an earlier round would confuse this one)."""
    try:
        sock.recv(1, socket.MSG_PEEK)
    except BlockingIOError:
        return True  # open, nothing waiting
    except OSError:
        return False
    return False  # closed by the server (b"") or stale bytes waiting


def refresh_connections(
    port: int, socks: list[socket.socket], unfinished: Sequence[Answer] = ()
) -> int:
    """Replace closed or stale connections, and those whose last request never got an answer.

    ``unfinished`` lines up with ``socks`` (the previous round's answers); returns how many.
    """
    replaced = 0
    for i, sock in enumerate(socks):
        outstanding = i < len(unfinished) and unfinished[i].status is None
        if outstanding or not usable(sock):
            with contextlib.suppress(OSError):
                sock.close()
            socks[i] = open_connection(port)
            replaced += 1
    return replaced


def current_part(origin: str) -> tuple[int, int]:
    _, body, _ = http("GET", f"{origin}/{STREAM}/{RENDITION}/playlist.m3u8")
    position = last_part(body.decode())
    assert position is not None
    return position


def receive_stamped(sock: socket.socket) -> tuple[bytes, float | None]:
    """recv() plus the kernel's receive time (wall clock) of the data, when it gives one."""
    data, ancillary, _, _ = sock.recvmsg(65536, TIMESTAMP_SPACE)
    return data, kernel_receive_time(ancillary)


def response_complete(buf: bytes | bytearray) -> tuple[int, bytes] | None:
    """(status, body) once ``buf`` holds a whole HTTP/1.1 response, else None."""
    head_end = buf.find(b"\r\n\r\n")
    if head_end < 0:
        return None
    head = bytes(buf[:head_end]).decode("latin-1")
    fields = {}
    for line in head.split("\r\n")[1:]:
        name, _, value = line.partition(":")
        fields[name.strip().lower()] = value.strip()
    body = bytes(buf[head_end + 4 :])
    if "chunked" in fields.get("transfer-encoding", "").lower():
        if not body.endswith(b"0\r\n\r\n"):
            return None
    elif len(body) < int(fields.get("content-length", "0")):
        return None
    return int(head.split(" ", 2)[1]), body


class PublishTime:
    """The packager's commit time of segment ``target_msn - 1``, fetched once it has happened."""

    def __init__(self, service: Service, target_msn: int) -> None:
        self._service = service
        self._target_msn = target_msn
        self._thread: threading.Thread | None = None
        self.unix_s: float | None = None
        self.error: str | None = None

    def fetch_soon(self) -> None:
        """Start one read in the background (the select loop must not wait for it)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._fetch, daemon=True)
            self._thread.start()

    def result(self) -> float | None:
        self.fetch_soon()
        assert self._thread is not None
        self._thread.join(timeout=10)
        return self.unix_s

    def _fetch(self) -> None:
        try:
            self._poll()
        except (OSError, RuntimeError, ValueError) as error:  # reported with the round
            self.error = f"status read failed: {error}"

    def _poll(self) -> None:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            info = self._service.stream(STREAM)
            produced, stamp = info.get("segments_produced"), info.get("last_segment_at")
            if isinstance(produced, int) and produced >= self._target_msn:
                if produced == self._target_msn and isinstance(stamp, str):
                    self.unix_s = datetime.fromisoformat(stamp).timestamp()
                else:
                    self.error = f"read too late: segments_produced {produced}"
                return
            time.sleep(0.02)
        self.error = "the part was not published within 5 s of the first answer"


@dataclass(frozen=True, slots=True)
class Round:
    answers: list[Answer]
    published_unix_s: float | None
    publish_error: str | None
    last_sent_unix_s: float
    origin_playlists_at_send: float  # the origin's playlist request counter before the waiters


def origin_playlist_requests(service: Service) -> float:
    """The origin's playlist request counter (all statuses), from the service's /metrics."""
    return origin_requests(http("GET", f"{service.api}/metrics")[1].decode(), "media_playlist")


def one_round(service: Service, socks: list[socket.socket], timeout_s: float, port: int) -> Round:
    # wait for a fresh segment (its part 0), then target the next segment's part 0
    start = current_part(service.origin)
    while True:
        n, k = current_part(service.origin)
        if (n, k) != start and k == 0:
            break
        time.sleep(0.02)
    target = (n + 1, 0)
    publish = PublishTime(service, target_msn=target[0])
    request = (
        f"GET /{STREAM}/{RENDITION}/playlist.m3u8?_HLS_msn={target[0]}&_HLS_part={target[1]} "
        f"HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n"
    ).encode()
    origin_playlists_at_send = origin_playlist_requests(service)
    selector = selectors.DefaultSelector()
    buffers: dict[socket.socket, bytearray] = {}
    for sock in socks:
        sock.sendall(request)  # small: never blocks on an empty socket
        buffers[sock] = bytearray()
        selector.register(sock, selectors.EVENT_READ)
    last_sent_unix_s = time.time()
    answers: dict[socket.socket, Answer] = {}
    deadline = time.monotonic() + timeout_s
    while len(answers) < len(socks) and time.monotonic() < deadline:
        for key, _ in selector.select(timeout=0.5):
            ready = key.fileobj
            assert isinstance(ready, socket.socket)
            sock = ready
            try:
                chunk, stamp = receive_stamped(sock)
            except BlockingIOError:
                continue
            except OSError:
                chunk, stamp = b"", None
            if not chunk:
                answers[sock] = Answer(None, False, None, None, closed=True)
                selector.unregister(sock)
                continue
            buffers[sock] += chunk
            complete = response_complete(buffers[sock])
            if complete is None:
                continue
            status, body = complete
            position = last_part(body.decode(errors="replace")) if status == 200 else None
            now = time.time()
            answer = Answer(
                status,
                position is not None and position >= target,
                stamp if stamp is not None else now,
                now,
            )
            answers[sock] = answer
            selector.unregister(sock)
            if answer.ok:
                publish.fetch_soon()  # published by now; the API keeps the stamp for a segment
    selector.close()
    timed_out = Answer(None, False, None, None)
    return Round(
        [answers.get(sock, timed_out) for sock in socks],
        publish.result() if any(a.ok for a in answers.values()) else None,
        publish.error,
        last_sent_unix_s,
        origin_playlists_at_send,
    )


def report_round(number: int, result: Round, cpu_s: float, wall_s: float) -> list[float]:
    """Print one round; returns its publish → answer delays (``inf`` for failures)."""
    answers = result.answers
    counts = outcome_counts(answers)
    published = result.published_unix_s
    if published is None:
        delays = [math.inf] * len(answers)
        where = f"publish time unknown ({result.publish_error or 'no answer'})"
    else:
        delays = publish_delays_s(answers, published)
        lead_ms = (published - result.last_sent_unix_s) * 1000
        where = f"last request sent {lead_ms:.0f} ms before publish" + (
            "" if lead_ms > 0 else " (NOT parked: these waiters did not wait)"
        )
        if min(delays, default=math.inf) < -0.001:  # the stamp is truncated to the millisecond
            where += (
                "; WARNING: an answer came before the publish stamp, so the part was visible "
                "before the commit of the segment ahead of it and these delays read short"
            )
    seen = [a.seen_unix_s - published for a in answers if a.ok and a.seen_unix_s and published]
    print(
        f"round {number}: {len(answers)} waiters {counts}; {where}; publish→answer "
        f"p50 {fmt_ms(percentile(delays, 50))} ms, p99 {fmt_ms(percentile(delays, 99))} ms, "
        f"max {fmt_ms(max(delays, default=math.inf))} ms, first "
        f"{fmt_ms(min(delays, default=math.inf))} ms (as this client got to them: p99 "
        f"{fmt_ms(percentile(seen, 99))} ms); service CPU {cpu_s:.2f} s over {wall_s:.1f} s "
        f"({cpu_s / max(len(answers), 1) * 1e6:.0f} µs per waiter)",
        flush=True,
    )
    return delays


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--waiters", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tiny", action="store_true")
    parser.add_argument(
        "--edge", choices=sorted(CANDIDATES), help="wait through this edge cache candidate"
    )
    args = parser.parse_args(argv)
    if args.tiny:
        args.waiters, args.rounds = 100, 1
    limit = raise_fd_limit(args.waiters * 2 + 1024)  # inherited by the service process
    source = "lavfi:" + lavfi_source(426, 240)
    with running_service(ENCODER_PRESET="ultrafast") as service:
        service.create(STREAM, source, qualities=[RENDITION], low_latency=True)
        service.wait_segments(STREAM, 2, timeout_s=60)
        print(
            f"blocking bench: {args.waiters} waiters on /{STREAM}/{RENDITION}/playlist.m3u8"
            f"?_HLS_msn=N&_HLS_part=0, {args.rounds} round(s), fd limit {limit}; "
            f"publish = packager commit stamp, answer = kernel receive time; failures and "
            f"timeouts ({CLIENT_TIMEOUT_S:g} s) count as inf"
        )
        edge = None
        if args.edge:
            log_path = service.log_path.with_name("edge.log")
            edge = Edge(service.origin, free_port(), log_path, flags=CANDIDATES[args.edge])
            print(f"through the edge: {args.edge} ({' '.join(CANDIDATES[args.edge]) or 'default'})")
        port = edge.port if edge else service.origin_port
        socks = open_connections(port, args.waiters)
        try:
            header("rounds")
            all_delays: list[float] = []
            svc = service.ps
            previous: list[Answer] = []
            for number in range(1, args.rounds + 1):
                replaced = refresh_connections(port, socks, previous)
                if replaced:
                    print(f"(reopened {replaced} connections: closed, unanswered or stale)")
                cpu0, t0 = cpu_seconds(svc), time.monotonic()
                result = one_round(service, socks, timeout_s=CLIENT_TIMEOUT_S, port=port)
                previous = result.answers
                cpu1, t1 = cpu_seconds(svc), time.monotonic()
                all_delays += report_round(number, result, cpu1 - cpu0, t1 - t0)
                if edge:
                    time.sleep(0.2)  # requests the edge forwarded at the end of the round
                    forwarded = origin_playlist_requests(service) - result.origin_playlists_at_send
                    print(f"  playlist requests the edge sent to the origin: {forwarded:.0f}")
            failures = sum(1 for d in all_delays if math.isinf(d))
            print(
                f"all rounds: {len(all_delays)} waiters, {failures} failed or timed out (inf); "
                f"publish→answer p50 {fmt_ms(percentile(all_delays, 50))} ms, "
                f"p99 {fmt_ms(percentile(all_delays, 99))} ms (goal <= 50), "
                f"max {fmt_ms(max(all_delays, default=math.inf))} ms"
            )
        finally:
            for sock in socks:
                with contextlib.suppress(OSError):
                    sock.close()
            if edge:
                edge.close()
        service.delete(STREAM)


if __name__ == "__main__":
    main()
