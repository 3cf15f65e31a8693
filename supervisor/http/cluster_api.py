"""The control API's cluster hooks: each returns a response when the request is another node's
business (forwarded, or answered from the registry), or None to let the local handler answer.

Kept beside ``api`` so that the single-node handlers stay as they were: with no cluster
(``REGISTRY_URL`` not ``redis://``) none of this runs.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

import structlog
from quart import Response

from actors.status import StreamSpec
from supervisor.cluster.front import FORWARDED_HEADER, ClusterFront, Forwarded
from supervisor.registry.interface import RegistryError

log = structlog.get_logger(__name__)


def _error(status: int, code: str, message: str, field: str | None = None) -> Response:
    body = json.dumps({"error": {"code": code, "message": message, "field": field}})
    return Response(body, status=status, content_type="application/json")


def _passed_back(answer: Forwarded) -> Response:
    response = Response(answer.body, status=answer.status, content_type=answer.content_type)
    for name, value in answer.headers:
        response.headers.add(name, value)
    return response


class ClusterApi:
    def __init__(self, front: ClusterFront) -> None:
        self.front = front
        self.node = front.node

    @property
    def node_id(self) -> str:
        return self.node.node_id

    @property
    def ingest_host(self) -> str:
        """Where publishers reach this node's ingest when INGEST_PUBLIC_HOST is not set: the
        host its peers reach it by (NODE_API_URL), not the Host the request came with — in a
        cluster that is often a load balancer's name, which would send a publisher to any node."""
        return urlsplit(self.node.settings.api_url).hostname or "localhost"

    @staticmethod
    def forwarded(headers: Any) -> bool:
        return headers.get(FORWARDED_HEADER) is not None

    async def before_create(
        self, spec: StreamSpec, raw: bytes | str, headers: Any
    ) -> Response | None:
        """Place the stream: the answer of the node it went to, or None to create it here."""
        if self.forwarded(headers):
            if self.node.draining:
                # the placing node's view of this one is up to a round old: refuse rather than
                # take a stream that the drain already under way would never move
                return _error(503, "node_draining", "the chosen node is draining; retry")
            return None
        placement = self.node.place(spec)
        if placement is None:
            return _error(503, "no_node", "no live node accepts streams now; retry")
        if placement.node_id == self.node_id:
            self.node.placed(placement)  # this node counts its own streams as they are
            return None
        target = self.node.node(placement.node_id)
        try:
            if target is None:
                return _error(503, "no_node", "the chosen node left the cluster; retry")
            body = raw.encode() if isinstance(raw, str) else raw
            answer = await self.front.forward(
                target.node_id, target.api_url, "POST", "/streams", headers, body=body
            )
            return _passed_back(answer)
        finally:
            self.node.placed(placement)

    def created(self, stream_id: str, *, sent_at: float) -> None:
        """Created here (the service registered it, asked at ``sent_at``): its lease is ours."""
        epoch = self.node.streams.fencing_epoch(stream_id)
        if epoch is not None:
            self.node.adopt(stream_id, epoch, sent_at=sent_at)

    def forget(self, stream_id: str) -> None:
        """Deleted here (the service removed its record)."""
        self.node.forget(stream_id)

    async def elsewhere(
        self,
        method: str,
        stream_id: str,
        path: str,
        headers: Any,
        *,
        read_body: Callable[[], Awaitable[bytes]] | None = None,
        client_address: str | None = None,
    ) -> Response | None:
        """A stream this node does not run: its owner answers (None: answer here, a 404).
        ``read_body``: reads the request's body, called only when it is forwarded (a WHIP offer);
        ``client_address``: the requester's address, passed on for the owner to record."""
        forwarded = self.forwarded(headers)
        if forwarded and method != "GET":
            return None  # asked as the owner: answer here (never forward again)
        try:
            record, owner = await self.node.owner_of(stream_id)
        except RegistryError as error:
            log.warning("cluster_lookup_failed", stream_id=stream_id, error=str(error))
            return _error(503, "registry_unavailable", "the stream registry is unavailable")
        if record is None:
            return None
        if not forwarded and owner is not None and owner.node_id != self.node_id:
            content = await read_body() if read_body is not None else None
            answer = await self.front.forward(
                owner.node_id,
                owner.api_url,
                method,
                path,
                headers,
                body=content,
                client_address=client_address,
            )
            return _passed_back(answer)
        if method == "DELETE":
            # no live owner (it died, nobody claimed it yet): deleting is forgetting
            await self.node.registry.remove(stream_id)
            body = {"stream_id": stream_id, "deleted": True, "node": record.owner_node_id}
            return Response(json.dumps(body), status=200, content_type="application/json")
        if method == "GET":
            # between nodes: no live owner, or one that does not run it (any more, or yet: a
            # claim starting it, a lease just lapsed) — a stream that exists is never a 404
            body = {
                "stream_id": stream_id,
                "state": "moving",
                "node": None,
                "previous_node": record.owner_node_id,
            }
            return Response(json.dumps(body), status=200, content_type="application/json")
        return None

    async def list_others(self, headers: Any) -> tuple[list[dict[str, Any]], list[str]] | None:
        if self.forwarded(headers):
            return None
        return await self.front.other_nodes_streams(headers)

    def describe(self) -> dict[str, Any]:
        return self.node.describe()

    async def drain(self, node_id: str) -> Response:
        if node_id not in await self.node.membership.known_ids():
            return _error(404, "node_not_found", f"no node {node_id!r}", "node_id")
        await self.node.membership.request_drain(node_id)
        body = {"node_id": node_id, "draining": True}
        return Response(json.dumps(body), status=202, content_type="application/json")
