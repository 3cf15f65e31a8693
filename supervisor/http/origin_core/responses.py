"""Responses: status, headers and body for every object and error (CORS on all of them)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Final

from supervisor.http.origin_core.cache_policy import (
    MISS_CACHE,
    NO_STORE,
    cache_control,
    miss_cache_control,
)
from supervisor.http.origin_core.headers import HeaderPairs, RequestHeaders
from supervisor.http.origin_core.paths import ObjectKind, is_document
from supervisor.http.origin_core.ranges import Unsatisfiable, parse_range
from supervisor.http.origin_core.validators import (
    VARY_AE,
    OriginObject,
    encode_for_request,
    if_none_match_hit,
    if_range_allows,
)


@dataclass(frozen=True, slots=True)
class OriginResponse:
    """Everything the framework needs to send: copy status, headers and body verbatim.

    For HEAD the body is empty but ``content-length`` is the GET body's length; tell the framework
    not to recompute it (Quart: ``automatically_set_content_length = False``).
    """

    status: int
    headers: HeaderPairs
    body: bytes

    def header(self, name: str) -> str | None:
        """First value of a header (case-insensitive); for tests and logging, not the hot path."""
        key = name.lower()
        return next((v for k, v in self.headers if k == key), None)


ALLOWED_METHODS: Final = "GET, HEAD, OPTIONS"
_READ_METHODS: Final = frozenset({"GET", "HEAD"})

CORS_HEADERS: Final[HeaderPairs] = (
    ("access-control-allow-origin", "*"),
    # hls.js reads Age (CDN tune-in), dash.js reads Date (clock sync); Range players need the rest.
    ("access-control-expose-headers", "Content-Length, Content-Range, ETag, Age, Date"),
)
_PREFLIGHT_HEADERS: Final[HeaderPairs] = (
    *CORS_HEADERS,
    ("access-control-allow-methods", ALLOWED_METHODS),
    ("access-control-allow-headers", "Range, If-None-Match, If-Modified-Since, Content-Type"),
    ("access-control-max-age", "86400"),
    ("allow", ALLOWED_METHODS),
    ("cache-control", NO_STORE),
)
_JSON_TYPE: Final = ("content-type", "application/json")
_ERROR_BASE: Final[HeaderPairs] = (*CORS_HEADERS, _JSON_TYPE, ("cache-control", NO_STORE))
_ACCEPT_RANGES: Final = ("accept-ranges", "bytes")

_CONTENT_TYPES: Final = {
    ObjectKind.MULTIVARIANT_PLAYLIST: "application/vnd.apple.mpegurl",
    ObjectKind.MEDIA_PLAYLIST: "application/vnd.apple.mpegurl",
    ObjectKind.DASH_MANIFEST: "application/dash+xml",
    ObjectKind.INIT: "video/mp4",
    ObjectKind.SEGMENT: "video/mp4",
    ObjectKind.PART: "video/mp4",
}
_AUDIO_TYPE: Final = "audio/mp4"


def content_type(kind: ObjectKind, *, audio: bool = False) -> str:
    if audio and not is_document(kind):
        return _AUDIO_TYPE
    return _CONTENT_TYPES[kind]


# (kind, audio) → the constant ("content-type", …) pair, so a request allocates no new strings.
_TYPE_HEADER: Final = {
    (kind, audio): ("content-type", content_type(kind, audio=audio))
    for kind in ObjectKind
    for audio in (False, True)
}


def _error_body(status: int, code: str, message: str, field: str | None) -> bytes:
    payload = {"error": {"code": code, "message": message, "field": field}}
    return json.dumps(payload, separators=(",", ":")).encode()


def error_json(
    status: int, code: str, message: str, field: str | None = None, *, head: bool = False
) -> OriginResponse:
    """The stable error shape ``{"error": {"code", "message", "field"}}``, with CORS, not cached."""
    body = _error_body(status, code, message, field)
    headers = (*_ERROR_BASE, ("content-length", str(len(body))))
    return OriginResponse(status, headers, b"" if head else body)


_NOT_FOUND_BODY: Final = _error_body(404, "not_found", "no such object", None)
_NOT_FOUND_LENGTH: Final = ("content-length", str(len(_NOT_FOUND_BODY)))
_NOT_FOUND_MISS: Final[HeaderPairs] = (
    *CORS_HEADERS,
    _JSON_TYPE,
    ("cache-control", MISS_CACHE),
    _NOT_FOUND_LENGTH,
)


def not_found(
    *, head: bool = False, blocking: bool = False, target_duration_s: int = 1
) -> OriginResponse:
    """404 with a short Cache-Control so a CDN forgets a miss quickly (see the module docstring)."""
    if blocking:
        cc = miss_cache_control(blocking=True, target_duration_s=target_duration_s)
        headers: HeaderPairs = (*CORS_HEADERS, _JSON_TYPE, ("cache-control", cc), _NOT_FOUND_LENGTH)
    else:
        headers = _NOT_FOUND_MISS
    return OriginResponse(404, headers, b"" if head else _NOT_FOUND_BODY)


_METHOD_BODY: Final = _error_body(405, "method_not_allowed", "the origin is read-only", None)
_METHOD_HEADERS: Final[HeaderPairs] = (
    *_ERROR_BASE,
    ("allow", ALLOWED_METHODS),
    ("content-length", str(len(_METHOD_BODY))),
)
_METHOD_NOT_ALLOWED: Final = OriginResponse(405, _METHOD_HEADERS, _METHOD_BODY)
_PREFLIGHT: Final = OriginResponse(204, _PREFLIGHT_HEADERS, b"")


def method_not_allowed() -> OriginResponse:
    """405 with ``Allow: GET, HEAD, OPTIONS``."""
    return _METHOD_NOT_ALLOWED


def preflight() -> OriginResponse:
    """204 answer to a CORS preflight (any OPTIONS): allow GET/HEAD with Range and validators."""
    return _PREFLIGHT


_RANGE_BODY: Final = _error_body(416, "range_not_satisfiable", "range outside the object", None)
_RANGE_LENGTH: Final = ("content-length", str(len(_RANGE_BODY)))


def file_response(
    method: str,
    headers: RequestHeaders,
    obj: OriginObject,
    *,
    target_duration_s: int = 1,
    blocking: bool = False,
) -> OriginResponse:
    """The whole answer for one request on an object that exists.

    Order follows RFC 9110 §13.2.2: method, then If-None-Match (→ 304), then If-Range and Range
    (→ 206 / 416), else 200. ``blocking`` is true when the request carried ``_HLS_msn`` (see
    :func:`parse_hls_directives`); ``target_duration_s`` is the stream's EXT-X-TARGETDURATION.
    """
    if method not in _READ_METHODS:
        return preflight() if method == "OPTIONS" else method_not_allowed()
    head = method == "HEAD"
    policy = cache_control(
        obj.kind, immutable=obj.immutable, blocking=blocking, target_duration_s=target_duration_s
    )
    cc = ("cache-control", policy)
    type_header = _TYPE_HEADER[obj.kind, obj.audio]
    range_header = headers.get("range")

    if range_header is not None and if_range_allows(headers.get("if-range"), obj.etag):
        byte_range = parse_range(range_header, len(obj.data))
    else:
        byte_range = None

    if byte_range is None:
        body, etag, extra = encode_for_request(obj, headers.get("accept-encoding"))
        if if_none_match_hit(headers.get("if-none-match"), etag):
            return OriginResponse(304, (*CORS_HEADERS, ("etag", etag), cc, *extra), b"")
        out = (
            *CORS_HEADERS,
            type_header,
            ("etag", etag),
            cc,
            _ACCEPT_RANGES,
            *extra,
            ("content-length", str(len(body))),
        )
        return OriginResponse(200, out, b"" if head else body)

    # A range is about the identity bytes: ranged responses are never gzipped.
    vary = VARY_AE if is_document(obj.kind) else ()
    if if_none_match_hit(headers.get("if-none-match"), obj.etag):
        return OriginResponse(304, (*CORS_HEADERS, ("etag", obj.etag), cc, *vary), b"")
    length = len(obj.data)
    if isinstance(byte_range, Unsatisfiable):
        out = (
            *CORS_HEADERS,
            _JSON_TYPE,
            ("cache-control", NO_STORE),
            _ACCEPT_RANGES,
            ("content-range", f"bytes */{length}"),
            _RANGE_LENGTH,
        )
        return OriginResponse(416, out, b"" if head else _RANGE_BODY)
    first, last = byte_range.first, byte_range.last
    out = (
        *CORS_HEADERS,
        type_header,
        ("etag", obj.etag),
        cc,
        _ACCEPT_RANGES,
        *vary,
        ("content-range", f"bytes {first}-{last}/{length}"),
        ("content-length", str(last - first + 1)),
    )
    return OriginResponse(206, out, b"" if head else obj.data[first : last + 1])
