"""Many LL-HLS players on one stream, through the edge cache and straight to the origin.

    python -m ops.bench.edge                 # 200 players, 20 s per run, every edge candidate
    python -m ops.bench.edge --tiny          # 10 players, 6 s (the smoke test)
    python -m ops.bench.edge --clients 50 --seconds 30 --runs origin,varnish

A real service (subprocess) runs one 240p LL stream (1 s segments, 0.5 s parts); each edge is
``ops/nginx/run-edge`` (with the flags of that candidate, ``CANDIDATES``) in front of its origin.
Each player behaves like hls.js at the live edge: one connection asks for the media playlist with
``_HLS_msn``/``_HLS_part`` of the preload hint (a blocking reload), another fetches each hinted
part. The same load runs straight to the origin, then through each edge, one after the other.
For each run it prints:

* **origin requests** (the service's own ``hlsdash_http_requests_total{listener="origin"}``,
  minus the probe's) against **distinct objects** the players asked for (cache keys: path +
  LL-HLS directives): the goal behind an edge is ≤ 1.1 × (every concurrent miss collapsed); the
  same ratio for blocking reloads alone (the ``media_playlist`` route) and parts alone;
* **blocking-reload delay**: when a player got the playlist that lists a part, minus when that part
  was published. Publication is taken from a probe player asking the origin directly (its answer
  comes when the part exists; an upper bound on publication, so delays are slightly understated by
  the origin's own response time, ~ms). Both ends are the kernel's receive timestamps of the
  answers' last bytes (SO_TIMESTAMPNS), so the time this one Python process takes to read 200
  answers that arrive together is not counted against the edge. The goal through the edge is
  ≤ 100 ms.

Figures from this shared 2-core machine are noisy; compare the runs of one invocation.
"""

from __future__ import annotations

import argparse
import math
import re
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import trio
from prometheus_client.parser import text_string_to_metric_families

from actors.ffmpeg.process import die_with_this_thread
from ops.bench.common import (
    ROOT,
    SO_TIMESTAMPNS,
    TIMESTAMP_SPACE,
    free_port,
    header,
    http,
    kernel_receive_time,
    lavfi_source,
    percentile,
    raise_fd_limit,
    running_service,
    stop_process,
    wait_answering,
)

STREAM = "edge"
RENDITION = "240p"
RUN_EDGE = ROOT / "ops" / "nginx" / "run-edge"
# run-edge flags of each edge candidate (README, Edge cache): the default, then the nginx variants
CANDIDATES: dict[str, tuple[str, ...]] = {
    "varnish": (),
    "nginx": ("--cache", "nginx"),
    "nginx-unlocked-reloads": ("--cache", "nginx", "--nginx-unlocked", "blocking-reloads"),
    "nginx-unlocked-live-edge": ("--cache", "nginx", "--nginx-unlocked", "live-edge"),
    "nginx-lock-timeout-100ms": ("--cache", "nginx", "--nginx-cache-lock-timeout-ms", "100"),
}
ORIGIN_RUN = "origin"
_HINT_RE = re.compile(r'#EXT-X-PRELOAD-HINT:TYPE=PART,URI="part_(\d+)_(\d+)\.m4s"')
_RECEIVE_BYTES = 65536


def preload_hint(playlist: str) -> tuple[int, int] | None:
    """(segment number, part index) of the part the playlist's EXT-X-PRELOAD-HINT names."""
    found = _HINT_RE.search(playlist)
    return (int(found[1]), int(found[2])) if found else None


def origin_requests(metrics_text: str, kind: str | None = None) -> float:
    """Sum of the origin-listener request counters in a /metrics page; with ``kind``
    (``media_playlist``, ``part``, …) only that route's."""
    return sum(
        sample.value
        for family in text_string_to_metric_families(metrics_text)
        if family.name == "hlsdash_http_requests"
        for sample in family.samples
        if sample.name.endswith("_total")
        and sample.labels.get("listener") == "origin"
        and (kind is None or sample.labels.get("route") == f"/{{id}}/{kind}")
    )


def object_kind(target: str) -> str:
    """The origin's route kind of a player's request target (the bench asks for two kinds)."""
    return "part" if "/part_" in target else "media_playlist"


@dataclass
class Tally:
    """What the players saw: distinct objects, statuses, blocking-reload arrival times."""

    objects: set[str] = field(default_factory=set)
    requests: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    # (msn, part) → [(sent, received)] of playlist answers that list that part
    reloads: dict[tuple[int, int], list[tuple[float, float]]] = field(default_factory=dict)
    published: dict[tuple[int, int], float] = field(default_factory=dict)

    def delays_s(self) -> list[float]:
        delays = []
        for position, answers in self.reloads.items():
            published = self.published.get(position)
            if published is None:
                continue
            delays += [received - max(published, sent) for sent, received in answers]
        return delays


class Connection:
    """A keep-alive HTTP/1.1 connection: GET, whole body (Content-Length or chunked), and the
    kernel's receive time of the answer's last bytes (``last_received_at``, unix seconds)."""

    def __init__(self, sock: trio.socket.SocketType, host: str) -> None:
        self._sock = sock
        self._host = host
        self._buffer = b""
        self.last_received_at = 0.0

    @classmethod
    async def open(cls, host: str, port: int) -> Connection:
        sock = trio.socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
            await sock.connect((host, port))
        except BaseException:
            sock.close()
            raise
        return cls(sock, f"{host}:{port}")

    async def get(self, target: str) -> tuple[int, bytes]:
        request = f"GET {target} HTTP/1.1\r\nHost: {self._host}\r\nUser-Agent: edge-bench\r\n\r\n"
        data = request.encode()
        while data:
            data = data[await self._sock.send(data) :]
        head = await self._until(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if headers.get("transfer-encoding", "").lower() == "chunked":
            body = b""
            while True:
                size = int((await self._until(b"\r\n")).split(b";")[0], 16)
                body += await self._exactly(size)
                await self._until(b"\r\n")
                if size == 0:
                    return status, body
        return status, await self._exactly(int(headers.get("content-length", "0")))

    async def _fill(self) -> None:
        data, ancillary, _, _ = await self._sock.recvmsg(_RECEIVE_BYTES, TIMESTAMP_SPACE)
        if not data:
            raise trio.BrokenResourceError("connection closed")
        self._buffer += data
        self.last_received_at = kernel_receive_time(ancillary) or time.time()

    async def _until(self, marker: bytes) -> bytes:
        while (end := self._buffer.find(marker)) < 0:
            await self._fill()
        found, self._buffer = self._buffer[:end], self._buffer[end + len(marker) :]
        return found

    async def _exactly(self, size: int) -> bytes:
        while len(self._buffer) < size:
            await self._fill()
        found, self._buffer = self._buffer[:size], self._buffer[size:]
        return found

    async def aclose(self) -> None:
        self._sock.close()
        await trio.lowlevel.checkpoint()


async def player(
    host: str, port: int, tally: Tally, *, fetch_parts: bool = True, probe: bool = False
) -> None:
    """One LL-HLS player at the live edge (see the module docstring) until cancelled."""
    base = f"/{STREAM}/{RENDITION}"
    playlists = await Connection.open(host, port)
    parts_send, parts_receive = trio.open_memory_channel[tuple[int, int]](math.inf)

    async def get(connection: Connection, target: str) -> tuple[int, bytes]:
        tally.objects.add(target)
        tally.requests += 1
        status, body = await connection.get(target)
        tally.statuses[status] = tally.statuses.get(status, 0) + 1
        return status, body

    async def fetch_hinted_parts() -> None:
        media = await Connection.open(host, port)
        try:
            async for msn, part in parts_receive:
                await get(media, f"{base}/part_{msn}_{part}.m4s")
        finally:
            await media.aclose()

    try:
        async with trio.open_nursery() as nursery:
            if fetch_parts:
                nursery.start_soon(fetch_hinted_parts)
            _, body = await get(playlists, f"{base}/playlist.m3u8")
            hint = preload_hint(body.decode())
            while hint is not None:
                if fetch_parts:
                    parts_send.send_nowait(hint)
                sent = time.time()
                status, body = await get(
                    playlists, f"{base}/playlist.m3u8?_HLS_msn={hint[0]}&_HLS_part={hint[1]}"
                )
                received = playlists.last_received_at
                if status == 200:
                    if probe:
                        tally.published.setdefault(hint, received)
                    else:
                        tally.reloads.setdefault(hint, []).append((sent, received))
                    hint = preload_hint(body.decode()) or hint
    finally:
        with trio.CancelScope(shield=True):
            await playlists.aclose()


async def load(
    seconds: float, *, host: str, port: int, origin_port: int, clients: int
) -> tuple[Tally, Tally]:
    """``clients`` players on host:port and one probe on the origin for ``seconds``."""
    tally, probe = Tally(), Tally()
    with trio.move_on_after(seconds):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(
                lambda: player("127.0.0.1", origin_port, probe, fetch_parts=False, probe=True)
            )
            for _ in range(clients):
                nursery.start_soon(player, host, port, tally)
    tally.published = probe.published
    return tally, probe


@dataclass(frozen=True, slots=True)
class RunResult:
    label: str
    clients: int
    requests: int
    objects: int
    origin_requests: int
    statuses: dict[int, int]
    delays_s: list[float]
    # per route kind (media_playlist, part): (origin requests, distinct objects)
    by_kind: dict[str, tuple[int, int]] = field(default_factory=dict)

    @property
    def ratio(self) -> float:
        return self.origin_requests / self.objects if self.objects else math.nan

    def kind_ratio(self, kind: str) -> float:
        requests, objects = self.by_kind.get(kind, (0, 0))
        return requests / objects if objects else math.nan

    def summary(self) -> str:
        delays = self.delays_s
        timing = (
            f"blocking reload after publication p50 {percentile(delays, 50) * 1000:.0f} ms, "
            f"p99 {percentile(delays, 99) * 1000:.0f} ms, max {max(delays) * 1000:.0f} ms "
            f"({len(delays)} answers)"
            if delays
            else "no blocking reload answered"
        )
        kinds = ", ".join(
            f"{kind} {requests}/{objects} = {self.kind_ratio(kind):.2f}x"
            for kind, (requests, objects) in sorted(self.by_kind.items())
        )
        return (
            f"{self.label}: {self.clients} players, {self.requests} requests {self.statuses}; "
            f"origin requests {self.origin_requests} for {self.objects} distinct objects = "
            f"{self.ratio:.2f}x ({kinds}); {timing}"
        )


def measure(
    label: str, api: str, *, host: str, port: int, origin_port: int, clients: int, seconds: float
) -> RunResult:
    kinds = ("media_playlist", "part")
    before_text = http("GET", f"{api}/metrics")[1].decode()
    tally, probe = trio.run(
        partial(load, host=host, port=port, origin_port=origin_port, clients=clients),
        seconds,
    )
    time.sleep(0.5)  # requests the edge forwarded just before the players stopped
    after_text = http("GET", f"{api}/metrics")[1].decode()

    def forwarded(kind: str | None) -> int:
        return round(origin_requests(after_text, kind) - origin_requests(before_text, kind))

    by_kind = {
        kind: (
            # the probe asks the origin for playlists only
            forwarded(kind) - (probe.requests if kind == "media_playlist" else 0),
            sum(1 for target in tally.objects if object_kind(target) == kind),
        )
        for kind in kinds
    }
    return RunResult(
        label,
        clients,
        tally.requests,
        len(tally.objects),
        forwarded(None) - probe.requests,
        tally.statuses,
        tally.delays_s(),
        by_kind,
    )


class Edge:
    """``ops/nginx/run-edge`` as a subprocess (the default edge unless ``flags`` say otherwise),
    ready when it answers and its access log records requests."""

    def __init__(
        self, origin: str, port: int, log_path: Path, *, flags: Sequence[str] = ()
    ) -> None:
        self.port = port
        self._log = log_path.open("wb")
        self.access_log_path = log_path.with_suffix(".access.log")
        self.process = subprocess.Popen(
            [
                str(RUN_EDGE),
                *("--origin", origin, "--listen", str(port)),
                *("--access-log", str(self.access_log_path), *flags),
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=die_with_this_thread(),  # noqa: PLW1509 - prctl only
        )
        probe = f"http://127.0.0.1:{port}/time"
        if not (wait_answering(probe, self.process, timeout_s=30) and self._logging(probe)):
            self.close()
            raise RuntimeError("edge did not start: " + log_path.read_text())

    def _logging(self, probe: str, timeout_s: float = 10) -> bool:
        """Varnish's access logger attaches to its shared log shortly after start: wait for it."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and self.process.poll() is None:
            http("GET", probe, timeout=1)
            time.sleep(0.2)
            if self.access_log_path.exists() and self.access_log_path.stat().st_size:
                return True
        return False

    def close(self) -> None:
        stop_process(self.process, timeout_s=5)  # type: ignore[arg-type]
        self._log.close()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--tiny", action="store_true")
    parser.add_argument(
        "--runs",
        default=",".join([ORIGIN_RUN, *CANDIDATES]),
        help=f"comma-separated, in order: {ORIGIN_RUN} (no edge) and edge candidates "
        f"({', '.join(CANDIDATES)})",
    )
    args = parser.parse_args(argv)
    runs = args.runs.split(",")
    unknown = set(runs) - {ORIGIN_RUN, *CANDIDATES}
    if unknown:
        parser.error(f"unknown runs: {', '.join(sorted(unknown))}")
    if args.tiny:
        args.clients, args.seconds = 10, 6.0
    raise_fd_limit(args.clients * 4 + 1024)
    source = "lavfi:" + lavfi_source(426, 240)
    with running_service(
        ENCODER_PRESET="ultrafast", SEGMENT_DURATION="1", PART_TARGET="0.5"
    ) as service:
        service.create(STREAM, source, qualities=[RENDITION], low_latency=True)
        service.wait_segments(STREAM, 2, timeout_s=60)
        header(f"{args.clients} LL-HLS players, {args.seconds:g} s per run")
        results = []
        for label in runs:
            edge = None
            if label != ORIGIN_RUN:
                log_path = service.log_path.with_name(f"edge-{len(results)}.log")
                edge = Edge(service.origin, free_port(), log_path, flags=CANDIDATES[label])
            try:
                result = measure(
                    label,
                    service.api,
                    host="127.0.0.1",
                    port=edge.port if edge else service.origin_port,
                    origin_port=service.origin_port,
                    clients=args.clients,
                    seconds=args.seconds,
                )
            finally:
                if edge:
                    edge.close()
            results.append(result)
            print(result.summary(), flush=True)
        print(
            "origin requests / distinct objects (goal <= 1.1 through an edge), blocking reload "
            "after publication p99 (goal <= 100 ms through an edge):"
        )
        for result in results:
            p99 = percentile(result.delays_s, 99) * 1000 if result.delays_s else math.nan
            print(
                f"  {result.label}: {result.ratio:.2f}x (blocking reloads "
                f"{result.kind_ratio('media_playlist'):.2f}x, parts "
                f"{result.kind_ratio('part'):.2f}x), p99 {p99:.0f} ms"
            )
        service.delete(STREAM)


if __name__ == "__main__":
    sys.exit(main())
