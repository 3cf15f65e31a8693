"""WHIP routes on the API port (RFC 9725): ``POST /streams/{id}/whip`` → 201 + ``Location`` +
answer SDP; ``DELETE`` on the location ends the session; ``OPTIONS`` and CORS on every answer so
a browser on another origin can publish. Thin: ``supervisor.ingest.whip.WhipIngest`` decides.

These routes are not behind API_TOKEN: the stream key (``Authorization: Bearer``) is the
credential, checked before the body is read and before any process starts.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Awaitable, Callable
from typing import Any

from quart import Response, request
from quart_trio import QuartTrio
from werkzeug.exceptions import RequestEntityTooLarge

from supervisor.cluster.front import CLIENT_ADDRESS_HEADER, FORWARDED_HEADER
from supervisor.ingest.whip import MAX_OFFER_BYTES, SDP_CONTENT_TYPE, WhipIngest, WhipRefused

CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "POST, DELETE, OPTIONS",
    "Access-Control-Allow-Headers": "Authorization, Content-Type",
    "Access-Control-Expose-Headers": "Location",
    "Access-Control-Max-Age": "600",
}


def _with_cors(response: Response) -> Response:
    for name, value in CORS_HEADERS.items():
        response.headers[name] = value
    return response


def _refusal(refused: WhipRefused) -> Response:
    body = json.dumps({"error": {"code": refused.code, "message": refused.message, "field": None}})
    response = Response(body, status=refused.status, content_type="application/json")
    for name, value in refused.headers.items():
        response.headers[name.replace("_", "-")] = value
    return _with_cors(response)


async def read_whip_offer() -> bytes:
    """The request's SDP offer (WhipRefused 413 when over the limit)."""
    try:
        raw = await request.get_data(cache=False, as_text=False)
    except RequestEntityTooLarge:
        raise WhipRefused(
            413, "offer_too_large", f"the SDP offer is over {MAX_OFFER_BYTES} bytes"
        ) from None
    return raw if isinstance(raw, bytes) else raw.encode()


def register_whip_routes(
    app: QuartTrio,
    whip: WhipIngest,
    *,
    elsewhere: Callable[[str], Awaitable[Response | None]] | None = None,
    trust_forwarded_address: bool = False,
) -> None:
    """``elsewhere``: in a cluster, the answer of the node that runs the stream (None: here).
    ``trust_forwarded_address``: in a cluster, an offer a peer forwarded names its publisher's
    address (see :func:`publisher_address`)."""

    @app.route("/streams/<stream_id>/whip", methods=["POST", "OPTIONS"])
    async def whip_publish(stream_id: str) -> Response:
        if request.method == "OPTIONS":
            response = Response("", status=204)
            response.headers["Accept-Post"] = SDP_CONTENT_TYPE
            return _with_cors(response)
        authorization = request.headers.get("Authorization")
        content_type = request.headers.get("Content-Type")
        try:
            there = await elsewhere(stream_id) if elsewhere is not None else None
            if there is not None:
                return _with_cors(there)
            # key and content type before the body is read: a wrong key costs nothing
            whip.authorize(stream_id, authorization=authorization, content_type=content_type)
            raw = await read_whip_offer()
            answer = await whip.publish(
                stream_id,
                authorization=authorization,
                content_type=content_type,
                offer=raw,
                remote_address=publisher_address(
                    request.headers, request.remote_addr, trust_forwarded=trust_forwarded_address
                ),
            )
        except WhipRefused as refused:
            return _refusal(refused)
        response = Response(answer.answer_sdp, status=201, content_type=SDP_CONTENT_TYPE)
        response.headers["Location"] = f"/streams/{stream_id}/whip/{answer.session_id}"
        return _with_cors(response)

    @app.route("/streams/<stream_id>/whip/<session_id>", methods=["DELETE", "OPTIONS"])
    async def whip_session(stream_id: str, session_id: str) -> Response:
        if request.method == "OPTIONS":
            return _with_cors(Response("", status=204))
        try:
            there = await elsewhere(stream_id) if elsewhere is not None else None
            if there is not None:
                return _with_cors(there)
            whip.end(stream_id, session_id)
        except WhipRefused as refused:
            return _refusal(refused)
        return _with_cors(Response("", status=200))


def publisher_address(
    headers: Any, remote_address: str | None, *, trust_forwarded: bool
) -> str:
    """Who publishes: the connection's peer, or — on an offer a cluster peer forwarded — the
    address that peer got it from (else every forwarded publisher would show as a node).
    Outside a cluster the headers are ignored: nothing forwards there, so they could only lie.
    """
    if trust_forwarded and headers.get(FORWARDED_HEADER) is not None:
        claimed = headers.get(CLIENT_ADDRESS_HEADER)
        if claimed is not None:
            try:
                return str(ipaddress.ip_address(claimed.strip()))
            except ValueError:
                pass
    return remote_address or "unknown"
