"""``hlsdash drain``: ask this node to hand its streams to the others and wait until it has
(Kubernetes ``preStop``). Talks to the node's own API on loopback, standard library only."""

from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any

_POLL_S = 1.0


def _request(url: str, token: str, *, method: str = "GET") -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(url, method=method, headers=headers)  # noqa: S310 - loopback
    with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
        data: dict[str, Any] = json.loads(response.read())
        return data


def own_streams(cluster: Mapping[str, Any], node_id: str) -> int | None:
    """How many streams ``GET /cluster`` says the node still runs (None: not listed alive)."""
    for node in cluster.get("nodes", []):
        if node.get("node_id") == node_id and node.get("alive"):
            return int(node.get("streams", 0))
    return None


def drain(
    environ: Mapping[str, str],
    *,
    timeout_s: float,
    request: Callable[..., dict[str, Any]] = _request,
    sleep: Callable[[float], None] = time.sleep,
    monotonic: Callable[[], float] = time.monotonic,
) -> int:
    """0 once the node runs no stream, 1 on timeout or when the API cannot be asked."""
    node_id = environ.get("NODE_ID", "") or socket.gethostname()
    base = f"http://127.0.0.1:{environ.get('API_PORT', '8083')}"
    token = environ.get("API_TOKEN", "")
    try:
        request(f"{base}/cluster/nodes/{node_id}/drain", token, method="POST")
    except (OSError, ValueError) as error:
        print(f"hlsdash drain: cannot ask {base}: {error}")
        return 1
    deadline = monotonic() + timeout_s
    while True:
        try:
            left = own_streams(request(f"{base}/cluster", token), node_id)
        except (OSError, ValueError) as error:
            print(f"hlsdash drain: {error}")
            left = -1
        if left == 0:
            print(f"hlsdash drain: node {node_id} runs no stream")
            return 0
        if monotonic() >= deadline:
            print(f"hlsdash drain: node {node_id} still runs {left} stream(s) after {timeout_s} s")
            return 1
        sleep(_POLL_S)
