"""The control API in a cluster: operations that must run on a stream's owner are forwarded there.

Any node answers the whole API. ``POST /streams`` is placed (``ClusterNode.place``) and, for
another node, sent to that node's API with :data:`FORWARDED_HEADER` (the receiver then creates
the stream itself: placement happens once); ``GET/DELETE /streams/{id}`` and heartbeats go to the
owner, and so are WHIP's ``POST``/``DELETE`` for a push stream another node runs (the offer and
key passed on, the owner's answer SDP and ``Location`` passed back: the media itself goes
straight to the owner, whose ICE candidates the answer carries); ``GET /streams`` asks every live
node for its own streams. The client's bearer token
travels with the request and is checked again by the receiver. A peer that cannot be reached is
a JSON 502 ``node_unreachable``, never a traceback.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import httpx
import structlog
import trio

from supervisor.cluster.node import ClusterNode

log = structlog.get_logger(__name__)

# on a request one node sends another's API: answer it here, never place or forward again
FORWARDED_HEADER: Final = "x-hlsdash-forwarded"
# on a forwarded WHIP offer: the address the publisher's request came from, which the owner
# records as the publisher's (it sees only the forwarding node's)
CLIENT_ADDRESS_HEADER: Final = "x-hlsdash-client-address"
_PASSED_REQUEST_HEADERS: Final = ("authorization", "content-type", "user-agent")
# what a forwarded answer keeps besides its status, body and type (WHIP: the session's Location,
# its ICE servers in Link, ETag; refusals: Retry-After, WWW-Authenticate)
_PASSED_RESPONSE_HEADERS: Final = ("location", "link", "etag", "retry-after", "www-authenticate")
_FORWARD_TIMEOUT_S: Final = 10.0


@dataclass(frozen=True, slots=True)
class Forwarded:
    """A peer's answer, passed back as it came (status, body, type, the headers that matter)."""

    status: int
    body: bytes
    content_type: str
    headers: tuple[tuple[str, str], ...] = ()


def unreachable(node_id: str) -> Forwarded:
    body = {
        "error": {
            "code": "node_unreachable",
            "message": f"node {node_id!r} that runs this stream could not be reached; retry",
            "field": None,
        }
    }
    return Forwarded(502, json.dumps(body).encode(), "application/json")


class ClusterFront:
    """Forwarding for the API; open with :meth:`run` (its HTTP client) before use."""

    def __init__(self, node: ClusterNode, *, transport: httpx.AsyncBaseTransport | None = None):
        self.node = node
        self._transport = transport
        self._client: httpx.AsyncClient | None = None

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        client = httpx.AsyncClient(
            transport=self._transport,
            timeout=httpx.Timeout(_FORWARD_TIMEOUT_S, connect=2.0),
            follow_redirects=False,
            trust_env=False,
        )
        async with client:
            self._client = client
            task_status.started()
            try:
                await trio.sleep_forever()
            finally:
                self._client = None

    @property
    def node_id(self) -> str:
        return self.node.node_id

    async def forward(
        self,
        node_id: str,
        api_url: str,
        method: str,
        path: str,
        headers: Mapping[str, str],
        *,
        body: bytes | None = None,
        client_address: str | None = None,
    ) -> Forwarded:
        if self._client is None:
            return unreachable(node_id)
        sent = {
            name: value
            for name in _PASSED_REQUEST_HEADERS
            if (value := headers.get(name)) is not None
        }
        sent[FORWARDED_HEADER] = self.node_id
        if client_address is not None:
            sent[CLIENT_ADDRESS_HEADER] = client_address
        try:
            response = await self._client.request(
                method, api_url.rstrip("/") + path, headers=sent, content=body
            )
        except httpx.HTTPError as error:
            log.warning("cluster_forward_failed", node_id=node_id, path=path, error=str(error))
            return unreachable(node_id)
        return Forwarded(
            response.status_code,
            response.content,
            response.headers.get("content-type", "application/json"),
            tuple(
                (name, value)
                for name in _PASSED_RESPONSE_HEADERS
                for value in response.headers.get_list(name)
            ),
        )

    async def other_nodes_streams(
        self, headers: Mapping[str, str]
    ) -> tuple[list[dict[str, Any]], list[str]]:
        """Every other live node's own streams (each view says its ``node``), and the ids of the
        nodes that did not answer (the listing is then partial, and says so)."""
        found: list[dict[str, Any]] = []
        missing: list[str] = []

        async def ask(node_id: str, api_url: str) -> None:
            answer = await self.forward(node_id, api_url, "GET", "/streams", headers)
            try:
                streams = json.loads(answer.body)["streams"] if answer.status == 200 else None
            except (ValueError, KeyError, TypeError):
                streams = None
            if not isinstance(streams, list):
                missing.append(node_id)
                return
            for view in streams:
                if isinstance(view, dict):
                    view.setdefault("node", node_id)
                    found.append(view)

        async with trio.open_nursery() as nursery:
            for peer in self.node.nodes:
                if peer.node_id != self.node_id:
                    nursery.start_soon(ask, peer.node_id, peer.api_url)
        found.sort(key=lambda v: str(v.get("stream_id", "")))
        return found, sorted(missing)
