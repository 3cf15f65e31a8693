"""Serving a stream's objects: shared by the CDN origin (8084) and the API's playback routes.

Thin: parse the path and LL-HLS directives (``origin_core``), ask the stream's ``LiveEdge`` one
question (``actors.edge``: every live-edge rule and wait lives there), wrap the answer with the
cache policy (``origin_core``). Built objects (hashed, playlists gzipped) are kept in an LRU
bounded by bytes and keyed by the stream's *incarnation* — a number never reused, so a stream
re-created under the same id (or any new one) can never be served an ended stream's bytes.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Hashable
from dataclasses import dataclass

from actors.edge import (
    Document,
    GrowingRange,
    GrowingSegment,
    LiveEdge,
    MediaBytes,
    Refusal,
)
from actors.packager.hls import format_iso8601_ms
from supervisor.http import origin_core
from supervisor.http.origin_core import (
    HeaderPairs,
    HlsDirectiveError,
    HlsDirectives,
    ObjectKind,
    OriginObject,
    OriginPath,
    OriginResponse,
    RequestHeaders,
)
from supervisor.service import StreamNotFound, StreamService

_READ_METHODS = frozenset({"GET", "HEAD"})
_OBJECT_CACHE_ENTRIES = 2048
# Bounded by bytes too: 2,048 1080p segments would be gigabytes. 64 MiB holds the live edge of
# many streams (a 1080p 2 s segment is ~1.5 MB); older objects are re-read from disk on a miss.
_OBJECT_CACHE_BYTES = 64 * 1024 * 1024
_ENDED_REMEMBERED = 1024


@dataclass(frozen=True, slots=True)
class StreamedResponse:
    """A 200 whose body is produced while it is sent (a segment still being written)."""

    status: int
    headers: HeaderPairs
    chunks: AsyncIterator[bytes] | None  # None for HEAD


def streamed_segment_headers(*, audio: bool) -> HeaderPairs:
    return (
        *origin_core.CORS_HEADERS,
        ("content-type", origin_core.content_type(ObjectKind.SEGMENT, audio=audio)),
        ("cache-control", origin_core.cache_control(ObjectKind.SEGMENT, immutable=False)),
    )


def _object_size(item: OriginObject) -> int:
    return len(item.data) + (len(item.gzip_data) if item.gzip_data is not None else 0)


class ObjectCache:
    """LRU of built OriginObjects (hash + gzip done once per object), bounded by count and bytes."""

    def __init__(
        self, size: int = _OBJECT_CACHE_ENTRIES, max_bytes: int = _OBJECT_CACHE_BYTES
    ) -> None:
        self._size = size
        self._max_bytes = max_bytes
        self._items: OrderedDict[tuple[Hashable, ...], OriginObject] = OrderedDict()
        # keys by their stream's incarnation (a key's first member): forgetting an ended stream
        # touches its own entries only, not the whole cache (the service's loop runs it)
        self._keys_of: dict[Hashable, set[tuple[Hashable, ...]]] = {}
        self.bytes = 0
        # incarnations of ended streams: a request still in flight must not cache for them again
        self._ended: deque[Hashable] = deque(maxlen=_ENDED_REMEMBERED)

    def forget(self, incarnation: int) -> None:
        """Drop every object of an ended stream (keys start with its incarnation): LRU alone kept
        them until pushed out, so the service grew by a cache's worth over create/delete churn."""
        self._ended.append(incarnation)
        for key in self._keys_of.pop(incarnation, ()):
            self.bytes -= _object_size(self._items.pop(key))

    def __len__(self) -> int:
        return len(self._items)

    def entries_of(self, incarnation: int) -> int:
        return len(self._keys_of.get(incarnation, ()))

    def _drop(self, key: tuple[Hashable, ...]) -> None:
        self.bytes -= _object_size(self._items.pop(key))
        keys = self._keys_of[key[0]]
        keys.discard(key)
        if not keys:
            del self._keys_of[key[0]]

    def get(self, key: tuple[Hashable, ...]) -> OriginObject | None:
        item = self._items.get(key)
        if item is not None:
            self._items.move_to_end(key)
        return item

    def put(self, key: tuple[Hashable, ...], item: OriginObject) -> OriginObject:
        size = _object_size(item)
        if size > self._max_bytes or key[0] in self._ended:
            return item  # served, never cached: too big, or its stream has ended
        if key in self._items:
            self._drop(key)
        self._items[key] = item
        self._keys_of.setdefault(key[0], set()).add(key)
        self.bytes += size
        while len(self._items) > self._size or self.bytes > self._max_bytes:
            self._drop(next(iter(self._items)))  # the least recently used
        return item


class Playback:
    """Per-process state for serving: the object cache."""

    def __init__(self, service: StreamService) -> None:
        self.service = service
        self.cache = ObjectCache()
        service.on_stream_end(self.cache.forget)

    async def serve(
        self,
        stream_id: str,
        relative: str,
        *,
        method: str,
        headers: RequestHeaders,
        query_string: str,
    ) -> OriginResponse | StreamedResponse:
        if method == "OPTIONS":
            return origin_core.preflight()
        if method not in _READ_METHODS:
            return origin_core.method_not_allowed()
        head = method == "HEAD"
        path = origin_core.parse_path(relative)
        if path is None:
            return origin_core.not_found(head=head)
        try:
            edge = self.service.edge(stream_id)
        except StreamNotFound:
            return origin_core.not_found(head=head)
        if edge.ended:
            return origin_core.not_found(head=head)
        td = edge.target_duration_s
        directives = HlsDirectives(msn=None, part=None, skip=None)
        if path.kind is ObjectKind.MEDIA_PLAYLIST:
            try:
                directives = origin_core.parse_hls_directives(query_string)
            except HlsDirectiveError as error:
                return error.response()
        obj = await self._find(edge, path, relative, directives, headers=headers)
        if isinstance(obj, StreamedResponse):
            return StreamedResponse(obj.status, obj.headers, None) if head else obj
        if isinstance(obj, OriginResponse):
            return obj
        if obj is None:
            return origin_core.not_found(
                head=head, blocking=directives.blocking, target_duration_s=td
            )
        response = origin_core.file_response(
            method, headers, obj, target_duration_s=td, blocking=directives.blocking
        )
        if not head:
            edge.count_served(len(response.body))
        return response

    async def _find(
        self,
        edge: LiveEdge,
        path: OriginPath,
        relative: str,
        directives: HlsDirectives,
        *,
        headers: RequestHeaders,
    ) -> OriginObject | OriginResponse | StreamedResponse | None:
        """One question to the live edge per request; the answer as a cacheable object."""
        kind = path.kind
        if kind is ObjectKind.MULTIVARIANT_PLAYLIST:
            return self._document(edge, relative, kind, edge.multivariant_playlist())
        if kind is ObjectKind.DASH_MANIFEST:
            return self._document(edge, relative, kind, edge.manifest())
        rid = path.rendition_id
        if rid is None or not edge.has_rendition(rid):
            return None
        if kind is ObjectKind.MEDIA_PLAYLIST:
            answer = await edge.media_playlist(
                rid, msn=directives.msn, part=directives.part, skip=directives.skip is not None
            )
            if isinstance(answer, Refusal):
                return origin_core.error_json(answer.status, answer.code, answer.message)
            # the delta update (_HLS_skip) is another document under the same path
            return self._document(edge, relative, kind, answer, variant=directives.skip is not None)
        if kind is ObjectKind.PART:
            part = await edge.part(rid, path.number, path.part_index)
            if part is None:
                return None
            # a part of an unfinished segment is cached apart from the final one (same name, and
            # its bytes could still be discarded by an encoder restart)
            return self._media((edge.incarnation, relative, part.immutable), kind, part)
        key: tuple[Hashable, ...] = (edge.incarnation, relative)
        cached = self.cache.get(key)  # immutable objects only are cached under this key
        if cached is not None:
            return cached
        if kind is ObjectKind.INIT:
            init = await edge.init(rid, path.init_version)
            return None if init is None else self._media(key, kind, init)
        answer_ = await edge.segment(
            rid, path.number, byte_range=origin_core.closed_range(headers.get("range"))
        )
        if isinstance(answer_, MediaBytes):
            return self._media(key, kind, answer_)
        if isinstance(answer_, GrowingRange):
            return _growing_range_response(answer_)
        if isinstance(answer_, GrowingSegment):
            # LL-DASH: 200 at once, each CMAF chunk as the packager gets it
            return StreamedResponse(
                200, streamed_segment_headers(audio=answer_.audio), answer_.chunks
            )
        return None

    def _media(
        self, key: tuple[Hashable, ...], kind: ObjectKind, media: MediaBytes
    ) -> OriginObject:
        cached = self.cache.get(key)
        if cached is not None:
            return cached
        return self.cache.put(
            key,
            origin_core.make_object(media.data, kind, immutable=media.immutable, audio=media.audio),
        )

    def _document(
        self,
        edge: LiveEdge,
        relative: str,
        kind: ObjectKind,
        document: Document | None,
        *,
        variant: bool = False,
    ) -> OriginObject | None:
        """A playlist or manifest for one live-edge version: rendered, hashed and gzipped once
        (this cache is the only copy: the live edge renders on demand and keeps nothing)."""
        if document is None:
            return None
        key = (edge.incarnation, relative, variant, document.version)
        cached = self.cache.get(key)
        if cached is not None:
            return cached
        data = document.render()
        if data is None:
            return None
        return self.cache.put(key, origin_core.make_object(data, kind, immutable=False))


def _growing_range_response(answer: GrowingRange) -> OriginResponse:
    return OriginResponse(
        206,
        (
            *streamed_segment_headers(audio=answer.audio),
            ("accept-ranges", "bytes"),
            # the complete length is not known yet (RFC 9110 §14.4 allows "*")
            ("content-range", f"bytes {answer.first}-{answer.last}/*"),
            ("content-length", str(len(answer.data))),
        ),
        answer.data,
    )


def time_response() -> OriginResponse:
    """``/time`` for DASH UTCTiming (urn:mpeg:dash:utc:http-iso:2014): ISO 8601 with ms, UTC."""
    body = format_iso8601_ms(time.time()).encode()
    return OriginResponse(
        200,
        (
            ("content-type", "text/plain; charset=utf-8"),
            ("cache-control", "no-store"),
            ("access-control-allow-origin", "*"),
            ("access-control-expose-headers", "Date"),
            ("content-length", str(len(body))),
        ),
        body,
    )
