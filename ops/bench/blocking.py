"""LL-HLS blocking reload at scale: thousands of _HLS_msn/_HLS_part waiters on one rendition.

    python -m ops.bench.blocking                  # 2,000 waiters, 3 rounds
    python -m ops.bench.blocking --tiny           # 100 waiters, 1 round (the smoke test)

A real service (subprocess) runs one 240p LL stream (2 s segments, 0.5 s parts). Each waiter is
a raw keep-alive socket (the fd limit is raised with setrlimit). Right after a segment starts, all
waiters ask for the first part of the *next* segment (~1.5 s ahead), so every request is parked
before the part exists. The part's publish time is taken as the arrival of the first response
(an upper bound on publish, so the figures slightly understate the true delay, by the first
response's own latency); each waiter's delay is its response's arrival minus that. Arrival is the
kernel's receive timestamp of the response's first bytes (SO_TIMESTAMPNS), so the time this
Python client itself needs to get round 2,000 sockets is not charged to the server; the delays as
the client saw them are printed too. Prints p50/p99/max, and the service's CPU over the round.
"""

from __future__ import annotations

import argparse
import contextlib
import selectors
import socket
import struct
import time
from collections.abc import Sequence

from ops.bench.common import (
    cpu_seconds,
    header,
    http,
    last_part,
    lavfi_source,
    percentile,
    raise_fd_limit,
    running_service,
)

STREAM = "block"
RENDITION = "240p"
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)  # Linux; not exported by every Python
_TIMESTAMP_SPACE = socket.CMSG_SPACE(16)


def open_connections(port: int, count: int) -> list[socket.socket]:
    socks = []
    for i in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        socks.append(sock)
        if i % 100 == 99:
            time.sleep(0.02)  # let the server's accept loop keep up with its backlog
    for sock in socks:
        sock.setblocking(False)
    return socks


def current_part(origin: str) -> tuple[int, int]:
    _, body, _ = http("GET", f"{origin}/{STREAM}/{RENDITION}/playlist.m3u8")
    position = last_part(body.decode())
    assert position is not None
    return position


def receive_stamped(sock: socket.socket) -> tuple[bytes, float | None]:
    """recv() plus the kernel's receive time (wall clock) of the data, when it gives one."""
    data, ancillary, _, _ = sock.recvmsg(65536, _TIMESTAMP_SPACE)
    for level, kind, raw in ancillary:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(raw) >= 16:
            seconds, nanoseconds = struct.unpack("qq", raw[:16])
            return data, seconds + nanoseconds / 1e9
    return data, None


def one_round(
    origin: str, port: int, socks: list[socket.socket], timeout_s: float
) -> tuple[list[float], list[float], int, float, dict[int, int]]:
    # wait for a fresh segment (its part 0), then target the next segment's part 0
    start = current_part(origin)
    while True:
        n, k = current_part(origin)
        if (n, k) != start and k == 0:
            break
        time.sleep(0.02)
    target = (n + 1, 0)
    request = (
        f"GET /{STREAM}/{RENDITION}/playlist.m3u8?_HLS_msn={target[0]}&_HLS_part={target[1]} "
        f"HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n"
    ).encode()
    selector = selectors.DefaultSelector()
    buffers: dict[socket.socket, bytearray] = {}
    for sock in socks:
        sock.sendall(request)  # small: never blocks on an empty socket
        buffers[sock] = bytearray()
        selector.register(sock, selectors.EVENT_READ)
    sent_at = time.monotonic()
    arrivals: dict[socket.socket, float] = {}  # kernel receive time (wall clock)
    seen: dict[socket.socket, float] = {}  # when this client got to it (wall clock)
    statuses: dict[int, int] = {}
    pending = set(socks)
    deadline = sent_at + timeout_s
    while pending and time.monotonic() < deadline:
        for key, _ in selector.select(timeout=0.5):
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            try:
                chunk, stamp = receive_stamped(sock)
            except BlockingIOError:
                continue
            if sock not in arrivals:
                now = time.time()
                seen[sock] = now
                arrivals[sock] = stamp if stamp is not None else now
            if not chunk:
                pending.discard(sock)
                selector.unregister(sock)
                continue
            buf = buffers[sock]
            buf += chunk
            head_end = buf.find(b"\r\n\r\n")
            if head_end < 0:
                continue
            head = bytes(buf[:head_end]).decode("latin-1")
            length = 0
            for line in head.split("\r\n")[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            if len(buf) >= head_end + 4 + length:
                status = int(head.split(" ", 2)[1])
                statuses[status] = statuses.get(status, 0) + 1
                pending.discard(sock)
                selector.unregister(sock)
    selector.close()
    times = sorted(arrivals.values())
    first = times[0] if times else time.time()
    delays = [t - first for t in times]
    client_delays = [t - first for t in sorted(seen.values())]
    first_after = first - (time.time() - (time.monotonic() - sent_at))
    return delays, client_delays, len(pending), first_after, statuses


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--waiters", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tiny", action="store_true")
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
            f"?_HLS_msn=N&_HLS_part=0, {args.rounds} round(s), fd limit {limit}"
        )
        socks = open_connections(service.origin_port, args.waiters)
        try:
            header("rounds")
            all_delays: list[float] = []
            svc = service.ps
            for number in range(args.rounds):
                cpu0, t0 = cpu_seconds(svc), time.monotonic()
                delays, client_delays, missing, first_after, statuses = one_round(
                    service.origin, service.origin_port, socks, timeout_s=15
                )
                cpu1, t1 = cpu_seconds(svc), time.monotonic()
                all_delays += delays
                print(
                    f"round {number + 1}: {len(delays)} responses {statuses}, {missing} missing; "
                    f"first response {first_after * 1000:.0f} ms after the last request was sent; "
                    f"publish→response p50 {percentile(delays, 50) * 1000:.1f} ms, "
                    f"p99 {percentile(delays, 99) * 1000:.1f} ms, max {max(delays) * 1000:.1f} ms "
                    f"(as this client got to them: p99 "
                    f"{percentile(client_delays, 99) * 1000:.1f} ms); "
                    f"service CPU {cpu1 - cpu0:.2f} s over {t1 - t0:.1f} s "
                    f"({(cpu1 - cpu0) / max(len(delays), 1) * 1e6:.0f} µs per waiter)",
                    flush=True,
                )
            print(
                f"all rounds: p50 {percentile(all_delays, 50) * 1000:.1f} ms, "
                f"p99 {percentile(all_delays, 99) * 1000:.1f} ms (goal <= 50), "
                f"max {max(all_delays) * 1000:.1f} ms over {len(all_delays)} responses"
            )
        finally:
            for sock in socks:
                with contextlib.suppress(OSError):
                    sock.close()
        service.delete(STREAM)


if __name__ == "__main__":
    main()
