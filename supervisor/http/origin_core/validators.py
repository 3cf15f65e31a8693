"""Validators and encodings: strong ETags (BLAKE2b), the gzip representation of documents and
its own tag, ``If-None-Match`` / ``If-Range``, ``Accept-Encoding``."""

from __future__ import annotations

import gzip
import hashlib
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Final

from supervisor.http.origin_core.headers import HeaderPairs
from supervisor.http.origin_core.paths import ObjectKind, is_document


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


VARY_AE: Final[HeaderPairs] = (("vary", "Accept-Encoding"),)
_GZIP_HEADERS: Final[HeaderPairs] = (("content-encoding", "gzip"), *VARY_AE)


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
    return obj.data, obj.etag, VARY_AE


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
