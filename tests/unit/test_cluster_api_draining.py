"""A draining node refuses a create another node forwarded to it (that node's view of it was a
round old): 503 ``node_draining``, so the client retries and is placed elsewhere, instead of a
stream the drain under way would never move. Not draining: created here as before. And a stream
between nodes (even one the registry gives this node) is "moving", never a 404."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any, cast

from actors.status import StreamSpec
from supervisor.cluster.front import FORWARDED_HEADER, ClusterFront
from supervisor.http.cluster_api import ClusterApi

SPEC = StreamSpec(stream_id="cam", source_url="http://example.test/live.ts")


def api_of(*, draining: bool) -> ClusterApi:
    node = SimpleNamespace(node_id="n1", draining=draining)
    return ClusterApi(cast("ClusterFront", SimpleNamespace(node=node)))


async def test_a_forwarded_create_on_a_draining_node_is_refused() -> None:
    answer = await api_of(draining=True).before_create(SPEC, b"{}", {FORWARDED_HEADER: "n2"})
    assert answer is not None
    assert answer.status_code == 503
    body: dict[str, Any] = json.loads(await answer.get_data())
    assert body["error"]["code"] == "node_draining"


async def test_a_forwarded_create_on_a_working_node_is_made_here() -> None:
    answer = await api_of(draining=False).before_create(SPEC, b"{}", {FORWARDED_HEADER: "n2"})
    assert answer is None


def api_with_record(owner_id: str) -> ClusterApi:
    """This node is n1; the registry says ``owner_id`` owns "cam" and that node is live."""
    record = SimpleNamespace(owner_node_id=owner_id)
    owner = SimpleNamespace(node_id=owner_id, api_url=f"http://{owner_id}.invalid")

    async def owner_of(stream_id: str) -> tuple[Any, Any]:
        return record, owner

    node = SimpleNamespace(node_id="n1", draining=False, owner_of=owner_of)
    return ClusterApi(cast("ClusterFront", SimpleNamespace(node=node)))


async def test_a_stream_its_owner_does_not_run_is_moving_not_a_404() -> None:
    """Asked as the owner (a peer forwarded the GET) for a stream the registry gives this node
    but that does not run here (a claim still starting it, its lease just lapsed): the stream
    exists, so it is "moving", never the 404 that tells a client it is gone."""
    for owner_id, headers in (("n1", {FORWARDED_HEADER: "n2"}), ("n1", {})):
        answer = await api_with_record(owner_id).elsewhere("GET", "cam", "/streams/cam", headers)
        assert answer is not None
        assert answer.status_code == 200
        body: dict[str, Any] = json.loads(await answer.get_data())
        assert body == {"stream_id": "cam", "state": "moving", "node": None, "previous_node": "n1"}
    # anything else asked as the owner is answered here, never forwarded again
    forwarded = {FORWARDED_HEADER: "n2"}
    assert await api_with_record("n2").elsewhere("DELETE", "cam", "/streams/cam", forwarded) is None
