"""Cache policy: ``Cache-Control`` per object kind and state (immutable media for a year,
documents 1 s, growing objects short or not at all, misses by how they were asked)."""

from __future__ import annotations

from functools import lru_cache
from typing import Final

from supervisor.http.origin_core.paths import ObjectKind, is_document

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
