"""Real ``hlsdash serve`` nodes of one cluster on loopback, sharing a real redis-server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from actors.ffmpeg.process import die_with_this_thread
from tests.integration.live import free_port, service_env
from tests.redis_server import running_redis

ROOT = Path(__file__).resolve().parents[2]
HLSDASH = [sys.executable, "-m", "supervisor.cli", "serve"]
PROXIED = "x-hlsdash-proxied"


@dataclass
class Node:
    node_id: str
    api_port: int
    origin_port: int
    process: subprocess.Popen[bytes]
    log_path: Path
    rtmp_port: int = 0  # its push-ingest RTMP listener (service_env gives each node a free one)

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.origin_port}"

    def ffmpeg_count(self) -> int:
        """FFmpeg processes this node runs now (its children)."""
        try:
            children = psutil.Process(self.process.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return 0
        count = 0
        for child in children:
            try:
                if "ffmpeg" in child.name().lower() and child.status() != psutil.STATUS_ZOMBIE:
                    count += 1
            except psutil.NoSuchProcess:
                continue
        return count


def http(
    method: str,
    url: str,
    body: dict[str, Any] | bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """One request; a dict body is sent as JSON, bytes as they are (with ``headers``' type)."""
    data = body if isinstance(body, bytes) else None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    if data is not None and not isinstance(body, bytes):
        request.add_header("content-type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return (
                response.status,
                {k.lower(): v for k, v in response.headers.items()},
                response.read(),
            )
    except urllib.error.HTTPError as error:
        return error.code, {k.lower(): v for k, v in error.headers.items()}, error.read()


def get_json(url: str) -> Any:
    status, _headers, body = http("GET", url)
    assert status == 200, (url, status, body[:300])
    return json.loads(body)


def wait_until(what: str, predicate: Any, timeout_s: float = 30.0, every_s: float = 0.2) -> float:
    """Poll until ``predicate()`` is truthy; returns the seconds it took."""
    started = time.monotonic()
    while True:
        try:
            if predicate():
                return time.monotonic() - started
        except (OSError, AssertionError, KeyError, ValueError):
            pass
        if time.monotonic() - started > timeout_s:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(every_s)


@contextmanager
def cluster_of(tmp_path: Path, count: int, **overrides: str) -> Iterator[list[Node]]:
    with running_redis(tmp_path / "redis") as port, ExitStack() as stack:
        url = f"redis://127.0.0.1:{port}/0"
        nodes = [
            stack.enter_context(_node(tmp_path, f"n{i + 1}", url, overrides)) for i in range(count)
        ]
        for node in nodes:
            _wait_up(node)
        # every node sees every other before a test places streams
        wait_until(
            "all nodes listed",
            lambda: all(
                len([n for n in get_json(f"{x.api}/cluster")["nodes"] if n["alive"]]) == count
                for x in nodes
            ),
            timeout_s=60,  # a loaded 2-core machine starts three services slowly
        )
        yield nodes


@contextmanager
def _node(
    tmp_path: Path, node_id: str, redis_url: str, overrides: dict[str, str]
) -> Iterator[Node]:
    api_port, origin_port = free_port(), free_port()
    env = {
        **os.environ,
        **service_env(tmp_path / node_id / "streams"),
        "API_HOST": "127.0.0.1",
        "API_PORT": str(api_port),
        "ORIGIN_PORT": str(origin_port),
        "REGISTRY_URL": redis_url,
        "NODE_ID": node_id,
        "NODE_API_URL": f"http://127.0.0.1:{api_port}",
        "NODE_ORIGIN_URL": f"http://127.0.0.1:{origin_port}",
        "NODE_CAPACITY_CORES": "2",
        "CLUSTER_LEASE_TTL": "3",
        **overrides,
    }
    log_path = tmp_path / f"{node_id}.log"
    log = log_path.open("wb")
    process = subprocess.Popen(
        ["nice", "-n", "10", *HLSDASH],
        env=env,
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        preexec_fn=die_with_this_thread(),  # noqa: PLW1509 - prctl only
    )
    try:
        yield Node(node_id, api_port, origin_port, process, log_path, int(env["RTMP_PORT"]))
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
        log.close()


def _wait_up(node: Node) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            get_json(f"{node.api}/health")
            return
        except (OSError, AssertionError):
            if time.monotonic() > deadline or node.process.poll() is not None:
                raise AssertionError(
                    f"{node.node_id} did not come up:\n" + node.log_path.read_text()[-4000:]
                ) from None
            time.sleep(0.2)
