"""Cluster scale without FFmpeg: many nodes and streams on one real Redis; Redis load, fail-over.

Every node is a real ``ClusterNode`` (membership beats, per-stream lease renewals with fencing,
the reconciler claiming orphans) over the real ``RedisRegistry``; only the encoder is replaced
by a synthetic fragment source: each running stream commits a "segment" every
``--segment-s`` and writes its timeline position to the registry, fenced, as a real stream does.
Nodes run in ``--processes`` worker processes (nodes/processes each, one trio loop per process).

Measured:

* **Redis operations per stream per second** in steady state, over ``--steady-s``: commands the
  nodes *sent* (counted in each worker's clients; a Lua script call is one, a retry counts
  again), and every command Redis *executed* (``INFO commandstats``: those inside scripts too),
  each divided by streams and seconds, with the executed calls by command. Goal ≤ 1 (sent).
* **Fail-over time**: SIGKILL of one worker process (its ``--kill-nodes`` nodes and their
  streams), then the time until every one of those streams is owned by a live node with a new
  fencing epoch and has written a new position from there (running again). Goal ≤ 15 s.
* **Redis CPU**: ``used_cpu_sys + used_cpu_user`` over the steady window, in cores.

Usage: ``python -m ops.bench.cluster_scale`` (100 nodes, 5,000 streams) or ``--tiny``. On a
shared 2-core machine the figures are noisy: the nodes' Python competes with Redis for CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from actors.ffmpeg.process import die_with_this_thread

ROOT = Path(__file__).resolve().parents[2]


# ---------------------------------------------------------------------- the worker (nodes)


def _worker(args: argparse.Namespace) -> None:
    import logging  # noqa: PLC0415

    import structlog  # noqa: PLC0415
    import trio  # noqa: PLC0415

    # stdout is the driver's "ready" line: the nodes' warnings go to stderr
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
    )
    trio.run(_worker_main, args)


async def _worker_main(args: argparse.Namespace) -> None:
    import coredis  # noqa: PLC0415
    import trio  # noqa: PLC0415

    from actors.status import StreamSpec  # noqa: PLC0415
    from supervisor.cluster.node import ClusterNode, ClusterSettings  # noqa: PLC0415
    from supervisor.registry import open_registry  # noqa: PLC0415
    from supervisor.registry.interface import StreamAlreadyRegistered  # noqa: PLC0415

    node_ids: list[str] = args.node_ids.split(",")
    streams_per_node = args.streams_per_node
    async with (
        open_registry(args.redis_url) as registry,
        coredis.Redis.from_url(args.redis_url, decode_responses=True) as redis,
        trio.open_nursery() as nursery,
    ):
        sent = _count_commands(redis, registry._client)
        nursery.start_soon(_report_counts, sent, Path(args.count_file))
        nodes: list[ClusterNode] = []
        streams_of: dict[str, SyntheticStreams] = {}
        for node_id in node_ids:
            streams = SyntheticStreams(
                registry, node_id, lease_ttl_s=args.lease_ttl_s, segment_s=args.segment_s
            )
            streams.counters = sent
            node = ClusterNode(
                ClusterSettings(
                    node_id=node_id,
                    api_url=f"http://{node_id}.invalid:8083",
                    origin_url=f"http://{node_id}.invalid:8084",
                    capacity_cores=2.0,
                    lease_ttl_s=args.lease_ttl_s,
                    safety_margin_s=min(1.0, args.lease_ttl_s / 6),
                ),
                redis=redis,
                registry=registry,
                streams=streams,
                measured_cost_cores=streams.cost_cores,
            )
            streams.node = node
            streams_of[node_id] = streams
            nodes.append(node)
            await nursery.start(node.run)
            nursery.start_soon(streams.run)
        for node in nodes:
            for index in range(streams_per_node):
                spec = StreamSpec(
                    stream_id=f"{node.node_id}-s{index:03d}",
                    source_url="http://synthetic.invalid/live",
                    qualities=("240p",),
                )
                sent_at = trio.current_time()
                try:
                    ownership = await registry.register(
                        spec,
                        node_id=node.node_id,
                        created_unix_s=time.time(),
                        lease_ttl_s=args.lease_ttl_s,
                    )
                    epoch = ownership.fencing_epoch
                except StreamAlreadyRegistered:
                    # the client retried a register whose answer timed out (a starved worker):
                    # the first one went through, so the stream is this node's already
                    record = await registry.get(spec.stream_id)
                    if record is None or record.owner_node_id != node.node_id:
                        raise
                    epoch = record.fencing_epoch
                node.adopt(spec.stream_id, epoch, sent_at=sent_at)
                streams_of[node.node_id].run_here(spec, epoch)
        print("ready", flush=True)
        await trio.sleep_forever()


def _count_commands(*clients: Any) -> list[int]:
    """Count every command these coredis clients send (a Lua script call is one; retries too)."""
    sent = [0, 0]  # commands sent, position writes (one per committed synthetic segment)
    for client in clients:
        execute = client._execute_command

        async def counted(command: Any, execute: Any = execute) -> Any:
            sent[0] += 1
            return await execute(command)

        client._execute_command = counted
    return sent


async def _report_counts(sent: list[int], path: Path) -> None:
    """The running total in a file the driver reads (atomic replace, twice a second)."""
    import trio  # noqa: PLC0415

    scratch = path.with_suffix(".tmp")
    while True:
        scratch.write_text(f"{sent[0]} {sent[1]}")
        scratch.replace(path)
        await trio.sleep(0.5)


class RecordStreams:
    """``LocalStreams`` whose streams are registry records only: claimed for real (the
    registry's compare-and-set), no encoder. The benchmark's nodes run on it, and so do the
    ClusterNode tests (``tests/integration/test_cluster_node.py``)."""

    def __init__(self, registry: Any, node_id: str, *, lease_ttl_s: float) -> None:
        self.registry = registry
        self.node_id = node_id
        self.lease_ttl_s = lease_ttl_s
        self.specs: dict[str, Any] = {}  # stream id → spec, running here
        self.epochs: dict[str, int] = {}
        self.numbers: dict[str, int] = {}  # the last segment number committed
        self.started: list[str] = []  # claimed and started here, in order
        self.stopped: list[tuple[str, str]] = []  # (stream id, reason)

    def running(self) -> dict[str, Any]:
        return dict(self.specs)

    def fencing_epoch(self, stream_id: str) -> int | None:
        return self.epochs.get(stream_id)

    def lease_sent_at(self, stream_id: str) -> float | None:
        return None  # adopted or claimed through ClusterNode, which starts the gate itself

    def unmeasured_cost_cores(self) -> float:
        return 0.0

    def run_here(self, spec: Any, fencing_epoch: int, last_number: int = 0) -> None:
        self.specs[spec.stream_id] = spec
        self.epochs[spec.stream_id] = fencing_epoch
        self.numbers[spec.stream_id] = last_number

    async def resume(self, record: Any) -> bool:
        """Claim, then go on numbering above the registered position."""
        owned = await self.registry.claim(
            record.stream_id,
            node_id=self.node_id,
            expected_fencing_epoch=record.fencing_epoch,
            lease_ttl_s=self.lease_ttl_s,
        )
        if owned is None:
            return False
        position = record.position
        last = position.last_number + 1 if position is not None else 0
        self.run_here(record.spec, owned.fencing_epoch, last)
        self.started.append(record.stream_id)
        return True

    async def stop(self, stream_id: str, reason: str) -> None:
        self.specs.pop(stream_id, None)
        self.stopped.append((stream_id, reason))


class SyntheticStreams(RecordStreams):
    """Record streams that commit a segment every ``segment_s``: a fenced position write each,
    as a real stream's registry writer does."""

    def __init__(self, registry: Any, node_id: str, *, lease_ttl_s: float, segment_s: float):
        super().__init__(registry, node_id, lease_ttl_s=lease_ttl_s)
        self.segment_s = segment_s
        self.node: Any = None
        self.counters = [0, 0]

    def cost_cores(self) -> float:
        return 0.05 * len(self.specs)  # a 240p ladder's measured order of magnitude

    async def run(self) -> None:
        """Every segment duration, each stream commits one segment (one fenced write)."""
        import trio  # noqa: PLC0415

        from actors.packager.timeline import TimelinePosition  # noqa: PLC0415
        from supervisor.registry.interface import (  # noqa: PLC0415
            StaleFencingEpoch,
            StreamNotRegistered,
        )

        while True:
            await trio.sleep(self.segment_s)
            node = self.node
            for stream_id in list(self.specs):
                epoch = self.epochs.get(stream_id)
                if epoch is None or not node.gate.valid(stream_id):
                    continue  # fenced: publishes nothing
                number = self.numbers[stream_id] = self.numbers[stream_id] + 1
                position = TimelinePosition(
                    availability_start_unix_s=0.0,
                    encoder_epoch=epoch,
                    last_number=number,
                    media_end_s=number * self.segment_s,
                    discontinuities=0,
                )
                try:
                    await self.registry.write_position(
                        stream_id, fencing_epoch=epoch, position=position
                    )
                    self.counters[1] += 1
                except (StaleFencingEpoch, StreamNotRegistered):
                    self.specs.pop(stream_id, None)


# ---------------------------------------------------------------------- the driver


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _redis_cli(port: int, *words: str) -> str:
    """One command over a plain socket (RESP inline), the reply's text."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall((" ".join(words) + "\r\n").encode())
        data = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
            if data.startswith(b"$"):
                header, _, rest = data.partition(b"\r\n")
                if len(rest) >= int(header[1:]) + 2:
                    return rest[: int(header[1:])].decode()
            elif data.endswith(b"\r\n"):
                return data.decode().strip()


def redis_info(port: int) -> dict[str, str]:
    info: dict[str, str] = {}
    for line in _redis_cli(port, "INFO", "everything").splitlines():
        if ":" in line and not line.startswith("#"):
            key, _, value = line.partition(":")
            info[key] = value
    return info


def commandstats_calls(info: dict[str, str]) -> int:
    total = 0
    for key, value in info.items():
        if key.startswith("cmdstat_"):
            fields = dict(part.split("=") for part in value.split(","))
            total += int(fields["calls"])
    return total


def calls_by_command(before: dict[str, str], after: dict[str, str]) -> dict[str, int]:
    """Calls per command over a window, most first (what the load is made of)."""

    def calls(info: dict[str, str]) -> dict[str, int]:
        out: dict[str, int] = {}
        for key, value in info.items():
            if key.startswith("cmdstat_"):
                fields = dict(part.split("=") for part in value.split(","))
                out[key.removeprefix("cmdstat_")] = int(fields["calls"])
        return out

    first, last = calls(before), calls(after)
    delta = {name: count - first.get(name, 0) for name, count in last.items()}
    return dict(sorted(((k, v) for k, v in delta.items() if v), key=lambda kv: -kv[1]))


def redis_cpu_s(info: dict[str, str]) -> float:
    return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])


@dataclass
class Result:
    nodes: int
    streams: int
    processes: int
    steady_s: float
    client_ops_per_stream_s: float
    # segments committed per stream per second (the target is 1 / --segment-s: lower means the
    # workers could not keep up on this machine, and the ops figure is low by as much)
    segments_per_stream_s: float
    # renewals, membership and reconciling per stream per second, besides one write a segment:
    # what the cluster adds to a stream's own registry writes
    cluster_ops_per_stream_s: float
    all_ops_per_stream_s: float
    redis_cpu_cores: float
    calls_by_command: dict[str, int]
    killed_nodes: int
    moved_streams: int
    first_claim_s: float | None  # SIGKILL → the first of its streams claimed elsewhere
    all_claimed_s: float | None  # → the last one claimed
    failover_s: float | None  # → every one claimed and writing positions again (running)
    unowned_at_end: int
    unmoved_at_end: list[str]  # streams of the killed nodes not claimed by the end (the first 10)


def run(args: argparse.Namespace) -> Result:
    redis_server = shutil.which("redis-server")
    if redis_server is None:
        raise SystemExit("redis-server is not installed (apt-get install redis-server)")
    port = _free_port()
    url = f"redis://127.0.0.1:{port}/0"
    redis = subprocess.Popen(
        [
            redis_server,
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--save",
            "",
            "--appendonly",
            "no",
            "--loglevel",
            "warning",
        ],
        stdout=subprocess.DEVNULL,
        preexec_fn=die_with_this_thread(),  # noqa: PLW1509 - prctl only
    )
    workers: list[subprocess.Popen[str]] = []
    try:
        _wait_redis(port)
        per_process = args.nodes // args.processes
        streams_per_node = args.streams // args.nodes
        node_groups = [
            [f"n{p:02d}x{i:02d}" for i in range(per_process)] for p in range(args.processes)
        ]
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        counts = Path(tempfile.mkdtemp(prefix="cluster-scale-"))
        count_files = [counts / f"worker{i}.count" for i in range(len(node_groups))]
        for group, count_file in zip(node_groups, count_files, strict=True):
            workers.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "ops.bench.cluster_scale",
                        "worker",
                        "--redis-url",
                        url,
                        "--node-ids",
                        ",".join(group),
                        "--streams-per-node",
                        str(streams_per_node),
                        "--lease-ttl-s",
                        str(args.lease_ttl_s),
                        "--segment-s",
                        str(args.segment_s),
                        "--count-file",
                        str(count_file),
                    ],
                    stdout=subprocess.PIPE,
                    text=True,
                    cwd=ROOT,
                    env=env,
                    preexec_fn=die_with_this_thread(),  # noqa: PLW1509 - prctl only
                )
            )
        for worker in workers:
            assert worker.stdout is not None
            for line in worker.stdout:
                if line.strip() == "ready":
                    break
            else:
                raise SystemExit(f"a worker did not start (exit {worker.poll()})")
        streams = streams_per_node * per_process * args.processes
        time.sleep(args.lease_ttl_s)  # settle: every loop has run a few rounds
        sent_before, writes_before = _sent(count_files)
        before, started = redis_info(port), time.monotonic()
        time.sleep(args.steady_s)
        after, steady_s = redis_info(port), time.monotonic() - started
        sent_after, writes_after = _sent(count_files)
        client_ops = sent_after - sent_before
        writes = writes_after - writes_before
        all_ops = commandstats_calls(after) - commandstats_calls(before)
        cpu = (redis_cpu_s(after) - redis_cpu_s(before)) / steady_s

        # fail-over: SIGKILL the first worker (its nodes and their streams)
        killed = node_groups[0]
        moved = [f"{n}-s{i:03d}" for n in killed for i in range(streams_per_node)]
        epochs = _owners(port, moved)
        workers[0].send_signal(signal.SIGKILL)
        workers[0].wait()
        killed_at = time.monotonic()
        failover_s = None
        first_claim_s = all_claimed_s = None
        deadline = killed_at + args.failover_timeout_s
        while time.monotonic() < deadline:
            now = _owners(port, moved)
            elapsed = time.monotonic() - killed_at
            claimed = [
                owner is not None and owner not in killed and epoch != epochs[s][1]
                for s, (owner, epoch, _number) in now.items()
            ]
            if any(claimed) and first_claim_s is None:
                first_claim_s = elapsed
            if all(claimed) and all_claimed_s is None:
                all_claimed_s = elapsed
            if all(claimed) and all(number > epochs[s][2] for s, (_o, _e, number) in now.items()):
                failover_s = elapsed
                break
            time.sleep(0.1)
        last = _owners(port, moved)
        unmoved = sorted(
            s for s, (owner, epoch, _n) in last.items() if owner in killed or epoch == epochs[s][1]
        )
        final = _owners(
            port, [f"{n}-s{i:03d}" for g in node_groups for n in g for i in range(streams_per_node)]
        )
        unowned = _unowned(final)
        return Result(
            nodes=per_process * args.processes,
            streams=streams,
            processes=args.processes,
            steady_s=round(steady_s, 2),
            client_ops_per_stream_s=round(client_ops / streams / steady_s, 3),
            segments_per_stream_s=round(writes / streams / steady_s, 3),
            cluster_ops_per_stream_s=round((client_ops - writes) / streams / steady_s, 3),
            all_ops_per_stream_s=round(all_ops / streams / steady_s, 3),
            redis_cpu_cores=round(cpu, 3),
            calls_by_command=calls_by_command(before, after),
            killed_nodes=len(killed),
            moved_streams=len(moved),
            first_claim_s=None if first_claim_s is None else round(first_claim_s, 2),
            all_claimed_s=None if all_claimed_s is None else round(all_claimed_s, 2),
            failover_s=None if failover_s is None else round(failover_s, 2),
            unowned_at_end=unowned,
            unmoved_at_end=unmoved[:10],
        )
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.send_signal(signal.SIGKILL)
                worker.wait(timeout=10)
        redis.kill()
        redis.wait(timeout=10)


def _sent(count_files: list[Path]) -> tuple[int, int]:
    """(commands sent, positions written) by the workers so far, read from their files."""
    totals = [0, 0]
    for path in count_files:
        if path.exists():
            for index, word in enumerate(path.read_text().split()[:2]):
                totals[index] += int(word)
    return totals[0], totals[1]


def _wait_redis(port: int) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            if _redis_cli(port, "PING") == "+PONG":
                return
        except OSError:
            time.sleep(0.05)
    raise SystemExit("redis-server did not come up")


def _owners(port: int, stream_ids: list[str]) -> dict[str, tuple[str | None, str, int]]:
    """stream → (owner, fencing epoch, last number) straight from the registry's hashes."""
    from supervisor.registry.redis_backend import PREFIX  # noqa: PLC0415

    out: dict[str, tuple[str | None, str, int]] = {}
    for stream_id in stream_ids:
        raw = _redis_cli(
            port,
            "HMGET",
            f"{PREFIX}stream:{stream_id}",
            "owner_node_id",
            "fencing_epoch",
            "last_number",
        )
        values = _parse_array(raw)
        owner, epoch, number = ([*values, None, None, None])[:3]
        out[stream_id] = (owner, epoch or "", int(number or 0))
    return out


def _parse_array(raw: str) -> list[str | None]:
    lines = raw.split("\r\n")
    values: list[str | None] = []
    index = 1
    while index < len(lines):
        line = lines[index]
        if line.startswith("$-1"):
            values.append(None)
            index += 1
        elif line.startswith("$"):
            values.append(lines[index + 1])
            index += 2
        else:
            index += 1
    return values


def _unowned(owners: dict[str, tuple[str | None, str, int]]) -> int:
    """Streams without an owner in the registry at the end."""
    return sum(1 for owner, _epoch, _number in owners.values() if owner is None)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command")
    worker = sub.add_parser("worker")
    worker.add_argument("--redis-url", required=True)
    worker.add_argument("--node-ids", required=True)
    worker.add_argument("--streams-per-node", type=int, required=True)
    worker.add_argument("--lease-ttl-s", type=float, required=True)
    worker.add_argument("--segment-s", type=float, required=True)
    worker.add_argument("--count-file", required=True)
    parser.add_argument("--nodes", type=int, default=100)
    parser.add_argument("--streams", type=int, default=5000)
    parser.add_argument(
        "--processes", type=int, default=10, help="also: nodes killed = nodes/processes"
    )
    parser.add_argument("--lease-ttl-s", type=float, default=6.0)
    parser.add_argument("--segment-s", type=float, default=2.0)
    parser.add_argument("--steady-s", type=float, default=20.0)
    parser.add_argument("--failover-timeout-s", type=float, default=60.0)
    parser.add_argument("--tiny", action="store_true", help="6 nodes, 60 streams, 3 processes")
    args = parser.parse_args(argv)
    if args.command == "worker":
        _worker(args)
        return
    if args.tiny:
        args.nodes, args.streams, args.processes = 6, 60, 3
        args.lease_ttl_s, args.steady_s = 3.0, 4.0
    result = run(args)
    print(json.dumps(result.__dict__, indent=2))


if __name__ == "__main__":
    main()
