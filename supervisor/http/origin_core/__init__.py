"""The origin's HTTP decisions with no framework in sight: paths, caching, validators, ranges, CORS.

The Quart handlers for the CDN origin (``/{stream_id}/…``) and for playback on the control API
(``/streams/{stream_id}/…``) stay thin: they find the bytes, wrap them in an :class:`OriginObject`
(once per object, so the ETag and the gzip body are computed once), and hand the request's method
and headers to :func:`file_response`. Everything that decides a status code or a header lives here
and is unit-tested.

Header names are lowercase (HTTP/2 and ASGI want them so). Constant header tuples are built at
import time; per request we only format what varies (Content-Length, Content-Range).

Choices the RFCs leave open, and why:

* **Multiple ranges → 200 with the whole object.** RFC 9110 §14.2 lets a server ignore Range.
  Serving only the first range would silently hand the client less than it asked for, and
  multipart/byteranges buys nothing for players (hls.js, dash.js, Shaka and AVPlayer send one
  range).
* **A miss (404) gets ``public, max-age=1``.** Long enough for a CDN to collapse a burst of
  requests for a segment asked for a moment early, short enough that the segment is visible
  within a second of appearing. The 1×TD that the LL-HLS spec suggests could hide a fresh
  segment for 6 s. A blocking-reload miss gets 4×TD, as the spec says, because its URL is unique.
* **Media is ``video/mp4`` / ``audio/mp4``, not ``video/iso.segment``.** Every player accepts both,
  and every CDN and middlebox knows ``video/mp4`` as media that must not be recompressed or
  transformed.
* **Gzip gets its own strong ETag (``"<hex>-gz"``).** RFC 9110 §8.8.3 wants different
  representations to have different strong validators; the gzip body is made with ``mtime=0`` so it
  is byte-stable and the tag is honest.

Modules: ``headers``, ``paths``, ``validators`` (ETag, gzip, conditionals), ``ranges``,
``cache_policy``, ``responses``, ``directives`` (LL-HLS query). This package re-exports their names.
"""

from supervisor.http.origin_core.cache_policy import (
    DOCUMENT_CACHE,
    GROWING_CACHE,
    IMMUTABLE_CACHE,
    MISS_CACHE,
    NO_STORE,
    OPEN_PART_CACHE,
    cache_control,
    miss_cache_control,
)
from supervisor.http.origin_core.directives import (
    NO_DIRECTIVES,
    HlsDirectiveError,
    HlsDirectives,
    SkipMode,
    parse_hls_directives,
)
from supervisor.http.origin_core.headers import HeaderPairs, RequestHeaders, lower_headers
from supervisor.http.origin_core.paths import (
    ObjectKind,
    OriginPath,
    classify_path,
    is_document,
    parse_path,
    split_stream_path,
)
from supervisor.http.origin_core.ranges import (
    UNSATISFIABLE,
    ByteRange,
    Unsatisfiable,
    closed_range,
    parse_range,
)
from supervisor.http.origin_core.responses import (
    ALLOWED_METHODS,
    CORS_HEADERS,
    OriginResponse,
    content_type,
    error_json,
    file_response,
    method_not_allowed,
    not_found,
    preflight,
)
from supervisor.http.origin_core.validators import (
    VARY_AE,
    OriginObject,
    accepts_gzip,
    compute_etag,
    encode_for_request,
    gzip_body,
    gzip_etag,
    if_none_match_hit,
    if_range_allows,
    make_object,
)

__all__ = [
    "ALLOWED_METHODS",
    "CORS_HEADERS",
    "DOCUMENT_CACHE",
    "GROWING_CACHE",
    "IMMUTABLE_CACHE",
    "MISS_CACHE",
    "NO_DIRECTIVES",
    "NO_STORE",
    "OPEN_PART_CACHE",
    "UNSATISFIABLE",
    "VARY_AE",
    "ByteRange",
    "HeaderPairs",
    "HlsDirectiveError",
    "HlsDirectives",
    "ObjectKind",
    "OriginObject",
    "OriginPath",
    "OriginResponse",
    "RequestHeaders",
    "SkipMode",
    "Unsatisfiable",
    "accepts_gzip",
    "cache_control",
    "classify_path",
    "closed_range",
    "compute_etag",
    "content_type",
    "encode_for_request",
    "error_json",
    "file_response",
    "gzip_body",
    "gzip_etag",
    "if_none_match_hit",
    "if_range_allows",
    "is_document",
    "lower_headers",
    "make_object",
    "method_not_allowed",
    "miss_cache_control",
    "not_found",
    "parse_hls_directives",
    "parse_path",
    "parse_range",
    "preflight",
    "split_stream_path",
]
