"""A draining node refuses a create another node forwarded to it (that node's view of it was a
round old): 503 ``node_draining``, so the client retries and is placed elsewhere, instead of a
stream the drain under way would never move. Not draining: created here as before."""

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
