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
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from typing import Final, Literal, Protocol
from urllib.parse import parse_qsl

from actors.packager.layout import (
    DASH_MANIFEST,
    MULTIVARIANT_PLAYLIST,
    RENDITION_ID_PATTERN,
    is_valid_stream_id,
    parse_media_file_name,
)

HeaderPairs = tuple[tuple[str, str], ...]


class RequestHeaders(Protocol):
    """What we need from the framework's request headers: a case-insensitive ``get``.

    werkzeug/Quart ``Headers`` fits; so does a dict with lowercase keys (see :func:`lower_headers`).
    Names are always looked up in lowercase.
    """

    def get(self, key: str, /) -> str | None: ...


def lower_headers(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Fold raw header pairs into a lowercase-keyed dict; repeats are joined with ", ".

    Joining is what RFC 9110 §5.3 allows for list-valued fields (If-None-Match, Accept-Encoding);
    a repeated Range becomes a multi-range value, which is then ignored, as it should be.
    """
    out: dict[str, str] = {}
    for name, value in pairs:
        key = name.lower()
        out[key] = f"{out[key]}, {value}" if key in out else value
    return out


# ---------------------------------------------------------------------------------------------
# Objects and paths


class ObjectKind(StrEnum):
    MULTIVARIANT_PLAYLIST = "multivariant_playlist"
    MEDIA_PLAYLIST = "media_playlist"
    DASH_MANIFEST = "dash_manifest"
    INIT = "init"
    SEGMENT = "segment"
    PART = "part"


# Text documents that change on every update: short cache, gzip allowed.
_DOCUMENT_KINDS: Final = frozenset(
    {ObjectKind.MULTIVARIANT_PLAYLIST, ObjectKind.MEDIA_PLAYLIST, ObjectKind.DASH_MANIFEST}
)


def is_document(kind: ObjectKind) -> bool:
    """Playlists and manifests (as opposed to media: init, segments, parts)."""
    return kind in _DOCUMENT_KINDS


@dataclass(frozen=True, slots=True)
class OriginPath:
    """A stream-relative path the origin is willing to serve, taken apart."""

    kind: ObjectKind
    rendition_id: str | None = None  # None for the stream-level playlist and manifest
    number: int = 0  # segment number (SEGMENT, PART)
    part_index: int = 0  # PART only
    init_version: int = 0  # INIT only


# Every name layout.py can make is spelled with these characters. Checking the whole string up
# front refuses %, backslashes, NUL, control and non-ASCII characters in one go — the last matters
# because layout's ``\d`` would otherwise accept e.g. Arabic-Indic digits and alias "seg_١.m4s"
# onto segment 1.
_SAFE_PATH_RE: Final = re.compile(r"[A-Za-z0-9_.\-/]{1,200}", re.ASCII)
_MAX_DEPTH: Final = 2  # "{rendition}/{file}"

_FILE_KINDS: Final = {
    "playlist": ObjectKind.MEDIA_PLAYLIST,
    "init": ObjectKind.INIT,
    "segment": ObjectKind.SEGMENT,
    "part": ObjectKind.PART,
}


def parse_path(relative: str) -> OriginPath | None:
    """Take apart a stream-relative path (already percent-decoded by the framework), or refuse it.

    Only the names in ``actors/packager/layout.py`` are accepted; anything else — ``..``, absolute
    paths, backslashes, NUL, hidden names, extra depth, a literal ``%`` (double encoding) — is None,
    which the handler turns into a 404 without ever touching the file system.
    """
    if _SAFE_PATH_RE.fullmatch(relative) is None:
        return None
    parts = relative.split("/")
    if len(parts) > _MAX_DEPTH or any(not p or p.startswith(".") for p in parts):
        return None
    if len(parts) == 1:
        if relative == MULTIVARIANT_PLAYLIST:
            return OriginPath(ObjectKind.MULTIVARIANT_PLAYLIST)
        if relative == DASH_MANIFEST:
            return OriginPath(ObjectKind.DASH_MANIFEST)
        return None
    rendition_id, name = parts
    if RENDITION_ID_PATTERN.fullmatch(rendition_id) is None:
        return None
    parsed = parse_media_file_name(name)
    if parsed is None or parsed.kind not in _FILE_KINDS:
        return None
    return OriginPath(
        _FILE_KINDS[parsed.kind],
        rendition_id=rendition_id,
        number=parsed.number,
        part_index=parsed.part_index,
        init_version=parsed.init_version,
    )


def classify_path(relative: str) -> ObjectKind | None:
    """The kind of object a stream-relative path names, or None if the origin must not serve it."""
    parsed = parse_path(relative)
    return parsed.kind if parsed is not None else None


def split_stream_path(path: str) -> tuple[str, str] | None:
    """``"{stream_id}/{relative}"`` (leading slash optional) → (stream_id, relative), or None."""
    stream_id, sep, relative = path.removeprefix("/").partition("/")
    if not sep or not is_valid_stream_id(stream_id):
        return None
    return stream_id, relative


# ---------------------------------------------------------------------------------------------
# Validators and encodings


def compute_etag(data: bytes) -> str:
    """A strong ETag: 32 hex digits of BLAKE2b-128 over the bytes, quoted.

    BLAKE2b is faster than SHA-1 on 64-bit CPUs and 128 bits make collisions a non-issue. Call it
    once per object (``make_object`` does) — hashing a 4 MB segment per request would not be cheap.
    """
    return '"' + hashlib.blake2b(data, digest_size=16).hexdigest() + '"'


def gzip_etag(etag: str) -> str:
    """The strong ETag of the gzip representation of the object tagged ``etag``."""
    return etag[:-1] + '-gz"'


def gzip_body(data: bytes) -> bytes:
    """Gzip with ``mtime=0``: the same playlist always compresses to the same bytes."""
    return gzip.compress(data, compresslevel=6, mtime=0)


@dataclass(frozen=True, slots=True)
class OriginObject:
    """One servable object, built once and shared by every request for it (see :func:`make_object`).

    ``immutable`` means the bytes will never change under this name: a finished segment or init, or
    a part of a finished segment. A growing segment or a part of an unfinished segment is not.
    """

    data: bytes
    kind: ObjectKind
    etag: str
    immutable: bool
    audio: bool = False  # audio rendition: media is served as audio/mp4
    gzip_data: bytes | None = None  # precomputed for documents; never for media


def make_object(
    data: bytes, kind: ObjectKind, *, immutable: bool, audio: bool = False
) -> OriginObject:
    """Hash (and, for playlists/manifests, gzip) the bytes once; cache the result with the bytes."""
    return OriginObject(
        data=data,
        kind=kind,
        etag=compute_etag(data),
        immutable=immutable,
        audio=audio,
        gzip_data=gzip_body(data) if is_document(kind) else None,
    )


_CODING_RE: Final = re.compile(r"^\s*([A-Za-z0-9!#$%&'*+.^_`|~-]+)\s*(?:;(.*))?$")
_QVALUE_RE: Final = re.compile(r"^\s*[qQ]\s*=\s*(0(?:\.\d{0,3})?|1(?:\.0{0,3})?)\s*$")


@lru_cache(maxsize=256)
def accepts_gzip(accept_encoding: str | None) -> bool:
    """Whether ``Accept-Encoding`` allows gzip, honouring q-values (RFC 9110 §12.5.3).

    ``gzip`` or ``x-gzip`` with q > 0 → yes; listed with q=0 → no, even if ``*`` allows it; not
    listed → whatever ``*`` says. A member we cannot parse is skipped. Cached: browsers send only a
    handful of distinct values.
    """
    if not accept_encoding:
        return False
    gzip_q: float | None = None
    star_q: float | None = None
    for member in accept_encoding.split(","):
        m = _CODING_RE.match(member)
        if m is None:
            continue
        coding = m.group(1).lower()
        q = 1.0
        if m.group(2) is not None:
            q_m = _QVALUE_RE.match(m.group(2))
            if q_m is None:
                continue
            q = float(q_m.group(1))
        if coding in {"gzip", "x-gzip"}:
            gzip_q = q if gzip_q is None else max(gzip_q, q)
        elif coding == "*":
            star_q = q
    if gzip_q is not None:
        return gzip_q > 0
    return star_q is not None and star_q > 0


_VARY_AE: Final[HeaderPairs] = (("vary", "Accept-Encoding"),)
_GZIP_HEADERS: Final[HeaderPairs] = (("content-encoding", "gzip"), *_VARY_AE)


def encode_for_request(
    obj: OriginObject, accept_encoding: str | None
) -> tuple[bytes, str, HeaderPairs]:
    """Pick the representation: (body, its ETag, extra headers).

    Documents get ``Vary: Accept-Encoding`` either way, since their representation depends on it;
    gzipped ones also get ``Content-Encoding: gzip``. Media is never gzipped (already compressed,
    and gzip would break byte ranges into the segment).
    """
    if not is_document(obj.kind):
        return obj.data, obj.etag, ()
    if accepts_gzip(accept_encoding):
        gz = obj.gzip_data if obj.gzip_data is not None else gzip_body(obj.data)
        return gz, gzip_etag(obj.etag), _GZIP_HEADERS
    return obj.data, obj.etag, _VARY_AE


_ETAG_IN_LIST_RE: Final = re.compile(r'"[^"]*"')


def if_none_match_hit(if_none_match: str | None, etag: str) -> bool:
    """If-None-Match with weak comparison (RFC 9110 §13.1.2): ``*``, or any listed tag, W/ or not.

    Weak comparison ignores the ``W/`` prefix, so it is enough to look for our quoted opaque tag
    among the quoted strings in the field.
    """
    if if_none_match is None:
        return False
    if if_none_match.strip() == "*":
        return True
    return etag in _ETAG_IN_LIST_RE.findall(if_none_match)


def if_range_allows(if_range: str | None, etag: str) -> bool:
    """If-Range (RFC 9110 §13.1.5): honour Range only if the field is our ETag, compared strongly.

    A weak tag never matches, and neither does a date: we send no Last-Modified to compare with.
    """
    return if_range is None or if_range.strip() == etag


# ---------------------------------------------------------------------------------------------
# Range


@dataclass(frozen=True, slots=True)
class ByteRange:
    """A satisfiable range, inclusive at both ends, clamped to the object."""

    first: int
    last: int


@dataclass(frozen=True, slots=True)
class Unsatisfiable:
    """A valid single range that selects nothing in the object → 416."""


UNSATISFIABLE: Final = Unsatisfiable()

_RANGE_RE: Final = re.compile(r"([A-Za-z]+)=([0-9]*)-([0-9]*)", re.ASCII)
# Positions are capped before int(): Python refuses int() on strings over 4300 digits, and any
# position past this is past the end of any object we serve anyway.
_POS_CAP_DIGITS: Final = 18
_POS_CAP: Final = 10**_POS_CAP_DIGITS


def _position(digits: str) -> int:
    return int(digits) if len(digits) <= _POS_CAP_DIGITS else _POS_CAP


def parse_range(header: str | None, length: int) -> ByteRange | Unsatisfiable | None:
    """Evaluate a ``Range`` field against an object of ``length`` bytes (RFC 9110 §14.1–14.2).

    Returns None when the field must be ignored (absent, malformed, another unit, several ranges,
    ``last < first``), which means a 200 with the whole object. Supports ``a-b``, ``a-`` and ``-n``;
    ``last`` past the end is clamped; a suffix longer than the object selects all of it.
    """
    if header is None:
        return None
    m = _RANGE_RE.fullmatch(header.strip())
    if m is None or m.group(1).lower() != "bytes":
        return None  # malformed, a list of ranges, or a unit we do not serve
    first_s, last_s = m.group(2), m.group(3)
    if not first_s:
        if not last_s:
            return None  # "bytes=-" is not a range
        suffix = _position(last_s)
        if suffix == 0 or length == 0:
            return UNSATISFIABLE
        return ByteRange(max(0, length - suffix), length - 1)
    first = _position(first_s)
    if last_s:
        last = _position(last_s)
        if last < first:
            return None  # invalid int-range → the whole field is invalid → ignore
    else:
        last = length - 1
    if first >= length:
        return UNSATISFIABLE
    return ByteRange(first, min(last, length - 1))


_CLOSED_RANGE: Final = re.compile(r"\s*bytes\s*=\s*(\d{1,15})-(\d{1,15})\s*", re.ASCII)


def closed_range(header: str | None) -> tuple[int, int] | None:
    """``bytes=a-b`` with both ends (how LL-HLS addresses a part inside its segment), or None."""
    if header is None:
        return None
    match = _CLOSED_RANGE.fullmatch(header)
    if match is None:
        return None
    first, last = int(match.group(1)), int(match.group(2))
    return (first, last) if first <= last else None


# ---------------------------------------------------------------------------------------------
# Cache policy

IMMUTABLE_CACHE: Final = "public, max-age=31536000, immutable"
DOCUMENT_CACHE: Final = "public, max-age=1"
MISS_CACHE: Final = "public, max-age=1"  # non-blocking 404: see the module docstring
# A growing segment must never be stored as if it were whole; with a strong ETag a cache can still
# revalidate it cheaply.
GROWING_CACHE: Final = "no-cache"
# A part of a segment that is not finished yet: whole, but keep it short in case the segment is
# abandoned (encoder restart) and the CDN should forget it.
OPEN_PART_CACHE: Final = "public, max-age=1"
NO_STORE: Final = "no-store"  # 400/405/416/5xx: never worth caching


@lru_cache(maxsize=64)
def _max_age(seconds: int) -> str:
    return f"public, max-age={seconds}"


def cache_control(
    kind: ObjectKind, *, immutable: bool, blocking: bool = False, target_duration_s: int = 1
) -> str:
    """Cache-Control for a 200/206/304 of this object.

    A blocking-reload playlist (the request had ``_HLS_msn``) may live 6×TD: its URL names one
    playlist version, so it can never go stale (LL-HLS spec D3).
    """
    if is_document(kind):
        return _max_age(6 * max(1, target_duration_s)) if blocking else DOCUMENT_CACHE
    if immutable:
        return IMMUTABLE_CACHE
    return OPEN_PART_CACHE if kind is ObjectKind.PART else GROWING_CACHE


def miss_cache_control(*, blocking: bool = False, target_duration_s: int = 1) -> str:
    """Cache-Control for a 404: 4×TD for a blocking-reload playlist (unique URL), else 1 s."""
    return _max_age(4 * max(1, target_duration_s)) if blocking else MISS_CACHE


# ---------------------------------------------------------------------------------------------
# Responses


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
    vary = _VARY_AE if is_document(obj.kind) else ()
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


# ---------------------------------------------------------------------------------------------
# LL-HLS delivery directives

SkipMode = Literal["YES", "v2"]


@dataclass(frozen=True, slots=True)
class HlsDirectives:
    """``_HLS_msn`` / ``_HLS_part`` / ``_HLS_skip`` from a media-playlist request."""

    msn: int | None = None
    part: int | None = None
    skip: SkipMode | None = None

    @property
    def blocking(self) -> bool:
        """A blocking reload: the playlist URL names one future version, so caching it is safe."""
        return self.msn is not None


NO_DIRECTIVES: Final = HlsDirectives()


class HlsDirectiveError(ValueError):
    """A directive the spec says to answer with 400; ``field`` names the parameter."""

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    def response(self) -> OriginResponse:
        return error_json(400, "bad_request", self.message, self.field)


_DECIMAL_INTEGER_RE: Final = re.compile(r"[0-9]{1,20}", re.ASCII)
_MAX_DECIMAL_INTEGER: Final = 2**64 - 1  # rfc8216bis §4.2 decimal-integer range


def _directive_int(name: str, values: list[str]) -> int | None:
    if not values:
        return None
    if len(values) > 1:
        raise HlsDirectiveError(f"{name} given more than once", field=name)
    value = values[0]
    if _DECIMAL_INTEGER_RE.fullmatch(value) is None or int(value) > _MAX_DECIMAL_INTEGER:
        raise HlsDirectiveError(f"{name} must be a non-negative decimal integer", field=name)
    return int(value)


def parse_hls_directives(query_string: str | bytes) -> HlsDirectives:
    """Read the LL-HLS delivery directives from a raw query string (spec C3, C5).

    Any order, any extra parameters. Raises :class:`HlsDirectiveError` (→ 400) for ``_HLS_part``
    without ``_HLS_msn``, a value that is not a non-negative decimal integer, or a repeated
    directive. An unknown ``_HLS_skip`` value is ignored rather than refused: a full playlist is
    always a correct answer to a delta request, and a 400 would stop playback for a newer client.
    Checks that need the playlist (msn too far ahead, skip without CAN-SKIP-UNTIL, after ENDLIST)
    are the handler's.
    """
    if isinstance(query_string, bytes):
        query_string = query_string.decode("latin-1")
    if "_HLS_" not in query_string:
        return NO_DIRECTIVES  # the common non-blocking poll: skip parsing entirely
    found: dict[str, list[str]] = {"_HLS_msn": [], "_HLS_part": [], "_HLS_skip": []}
    for key, value in parse_qsl(query_string, keep_blank_values=True):
        if key in found:
            found[key].append(value)
    msn = _directive_int("_HLS_msn", found["_HLS_msn"])
    part = _directive_int("_HLS_part", found["_HLS_part"])
    if part is not None and msn is None:
        raise HlsDirectiveError("_HLS_part requires _HLS_msn", field="_HLS_part")
    skip_values = found["_HLS_skip"]
    skip: SkipMode | None = None
    if skip_values and skip_values[-1] in {"YES", "v2"}:
        skip = "YES" if skip_values[-1] == "YES" else "v2"
    return HlsDirectives(msn=msn, part=part, skip=skip)
