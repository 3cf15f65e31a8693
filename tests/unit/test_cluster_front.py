"""What a node sends when it forwards a request to the node that runs the stream."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

import httpx
import trio

from supervisor.cluster.front import CLIENT_ADDRESS_HEADER, FORWARDED_HEADER, ClusterFront
from supervisor.cluster.node import ClusterNode


async def _forward_and_capture(**kwargs: Any) -> httpx.Request:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(201, content=b"v=0 answer", headers={"location": "/x/whip/s1"})

    node = cast("ClusterNode", SimpleNamespace(node_id="n1"))
    front = ClusterFront(node, transport=httpx.MockTransport(answer))
    async with trio.open_nursery() as nursery:
        await nursery.start(front.run)
        forwarded = await front.forward(
            "n2",
            "http://n2:8083",
            "POST",
            "/streams/cam/whip",
            {"authorization": "Bearer k", "content-type": "application/sdp", "cookie": "x"},
            body=b"v=0 offer",
            **kwargs,
        )
        nursery.cancel_scope.cancel()
    assert (forwarded.status, forwarded.body) == (201, b"v=0 answer")
    assert ("location", "/x/whip/s1") in forwarded.headers
    (request,) = seen
    return request


async def test_a_forwarded_offer_names_the_forwarding_node_and_the_publishers_address() -> None:
    request = await _forward_and_capture(client_address="203.0.113.7")
    assert str(request.url) == "http://n2:8083/streams/cam/whip"
    assert request.content == b"v=0 offer"
    assert request.headers[FORWARDED_HEADER] == "n1"
    assert request.headers[CLIENT_ADDRESS_HEADER] == "203.0.113.7"
    assert request.headers["authorization"] == "Bearer k"
    assert "cookie" not in request.headers  # only the headers that matter travel


async def test_without_an_address_none_is_claimed() -> None:
    request = await _forward_and_capture()
    assert CLIENT_ADDRESS_HEADER not in request.headers
