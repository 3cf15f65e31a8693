"""Serving a stream's objects: shared by the CDN origin (8084) and the API's playback routes.

Thin: parse the path and LL-HLS directives (``origin_core``), find the bytes through the actor's
``EdgeReader`` (memory) or the stream folder (disk, read in a thread), build the response with
``origin_core``. Objects are hashed (and playlists gzipped) once and kept in a small LRU keyed by
the actor's identity, so a stream re-created under the same id never serves stale bytes.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Hashable
from dataclasses import dataclass
from functools import partial

import trio

from actors.edge import EdgeReader
from actors.files import read_or_none
from actors.packager.hls import format_iso8601_ms
from actors.packager.publish import AUDIO_RENDITION_ID, last_part_position
from actors.stream import StreamActor
from supervisor.http import live_edge, origin_core
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
_OBJECT_CACHE_SIZE = 2048


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


class ObjectCache:
    """LRU of built OriginObjects (hash + gzip done once per object)."""

    def __init__(self, size: int = _OBJECT_CACHE_SIZE) -> None:
        self._size = size
        self._items: OrderedDict[Hashable, OriginObject] = OrderedDict()

    def get(self, key: Hashable) -> OriginObject | None:
        item = self._items.get(key)
        if item is not None:
            self._items.move_to_end(key)
        return item

    def put(self, key: Hashable, item: OriginObject) -> OriginObject:
        self._items[key] = item
        self._items.move_to_end(key)
        while len(self._items) > self._size:
            self._items.popitem(last=False)
        return item


class Playback:
    """Per-process state for serving: edge readers per actor and the object cache."""

    def __init__(self, service: StreamService) -> None:
        self.service = service
        self.cache = ObjectCache()
        self._readers: dict[int, EdgeReader] = {}

    def reader(self, actor: StreamActor) -> EdgeReader:
        key = id(actor)
        reader = self._readers.get(key)
        if reader is None or reader.actor is not actor:
            if len(self._readers) > 4 * max(self.service.settings.max_streams, 1):
                self._readers = {
                    k: r for k, r in self._readers.items() if not r.actor.finished.is_set()
                }
            reader = EdgeReader(actor)
            self._readers[key] = reader
        return reader

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
            actor = self.service.get(stream_id)
        except StreamNotFound:
            return origin_core.not_found(head=head)
        if actor.finished.is_set():
            return origin_core.not_found(head=head)
        reader = self.reader(actor)
        td = reader.target_duration_s
        directives = HlsDirectives(msn=None, part=None, skip=None)
        if path.kind is ObjectKind.MEDIA_PLAYLIST:
            try:
                directives = origin_core.parse_hls_directives(query_string)
            except HlsDirectiveError as error:
                return error.response()
        obj = await self._find(actor, reader, path, relative, directives, headers=headers)
        if isinstance(obj, OriginResponse | StreamedResponse):
            if isinstance(obj, StreamedResponse) and head:
                return StreamedResponse(obj.status, obj.headers, None)
            return obj
        if obj is None:
            return origin_core.not_found(
                head=head, blocking=directives.blocking, target_duration_s=td
            )
        response = origin_core.file_response(
            method, headers, obj, target_duration_s=td, blocking=directives.blocking
        )
        if not head:
            actor.bytes_served += len(response.body)
        return response

    async def _find(
        self,
        actor: StreamActor,
        reader: EdgeReader,
        path: OriginPath,
        relative: str,
        directives: HlsDirectives,
        *,
        headers: RequestHeaders,
    ) -> OriginObject | OriginResponse | StreamedResponse | None:
        identity = id(actor)
        kind = path.kind
        if kind is ObjectKind.MULTIVARIANT_PLAYLIST:
            return self._document(
                (identity, relative, reader.version), kind, reader.multivariant_playlist
            )
        if kind is ObjectKind.DASH_MANIFEST:
            return self._document((identity, relative, reader.version), kind, reader.manifest)
        rid = path.rendition_id
        if rid is None or not reader.has_rendition(rid):
            return None
        if kind is ObjectKind.MEDIA_PLAYLIST:
            if directives.blocking:
                refusal = await self._block(actor, rid, directives, reader.target_duration_s)
                if refusal is not None:
                    return refusal
            skip = directives.skip is not None and actor.low_latency
            return self._document(
                (identity, relative, skip, reader.version),
                kind,
                partial(reader.media_playlist, rid, skip=skip),
            )
        audio = rid == AUDIO_RENDITION_ID
        if kind is ObjectKind.PART:
            part = reader.part(rid, path.number, path.part_index)
            if part is None and actor.low_latency:
                # the preload-hinted part: hold the request until it is complete
                data = await live_edge.wait_for_part(
                    actor, rid, path.number, path.part_index, 3 * reader.target_duration_s
                )
                part = reader.part(rid, path.number, path.part_index) if data else None
            if part is None:
                return None
            key: Hashable = (identity, relative, part.immutable)
            cached = self.cache.get(key)
            if cached is not None:
                return cached
            return self.cache.put(
                key, origin_core.make_object(part.data, kind, immutable=part.immutable, audio=audio)
            )
        key = (identity, relative)
        cached = self.cache.get(key)
        if cached is not None:
            return cached
        if kind is ObjectKind.SEGMENT:
            if not reader.is_committed(path.number):
                wanted = live_edge.closed_range(headers.get("range"))
                if wanted is not None and live_edge.may_stream_segment(actor, rid, path.number):
                    # LL-HLS part addressed as a byte range of its (growing) segment
                    return await self._growing_range(
                        actor, rid, path.number, wanted, audio=audio, td=reader.target_duration_s
                    )
                if actor.low_latency and live_edge.may_stream_segment(actor, rid, path.number):
                    # LL-DASH: 200 at once, each CMAF chunk as the packager gets it
                    return StreamedResponse(
                        200,
                        streamed_segment_headers(audio=audio),
                        live_edge.stream_segment(
                            actor, rid, path.number, 3 * reader.target_duration_s
                        ),
                    )
                return None
            in_memory = reader.segment(rid, path.number)
            if in_memory is not None:
                return self.cache.put(
                    key, origin_core.make_object(in_memory.data, kind, immutable=True, audio=audio)
                )
        file_path = reader.disk_path(rid, relative.rpartition("/")[2])
        if file_path is None:
            return None
        data = await trio.to_thread.run_sync(read_or_none, file_path)
        if data is None:
            return None
        return self.cache.put(key, origin_core.make_object(data, kind, immutable=True, audio=audio))

    def _document(
        self, key: Hashable, kind: ObjectKind, build: Callable[[], bytes | None]
    ) -> OriginObject | None:
        """A playlist or manifest for one live-edge version: built (hashed, gzipped) once."""
        cached = self.cache.get(key)
        if cached is not None:
            return cached
        data = build()
        if data is None:
            return None
        return self.cache.put(key, origin_core.make_object(data, kind, immutable=False))

    async def _growing_range(
        self,
        actor: StreamActor,
        rid: str,
        number: int,
        wanted: tuple[int, int],
        *,
        audio: bool,
        td: int,
    ) -> OriginResponse | None:
        first, last = wanted
        data = await live_edge.growing_range(actor, rid, number, wanted, timeout_s=3 * td)
        if data is None:
            return None
        return OriginResponse(
            206,
            (
                *streamed_segment_headers(audio=audio),
                ("accept-ranges", "bytes"),
                # the complete length is not known yet (RFC 9110 §14.4 allows "*")
                ("content-range", f"bytes {first}-{last}/*"),
                ("content-length", str(len(data))),
            ),
            data,
        )

    async def _block(
        self, actor: StreamActor, rendition_id: str, directives: HlsDirectives, td: int
    ) -> OriginResponse | None:
        """Hold a blocking playlist reload until its part exists (rfc8216bis §6.2.5.2)."""
        timeline = actor.timeline
        if timeline is None or not actor.low_latency:
            return None  # no CAN-BLOCK-RELOAD advertised: answer at once
        msn = directives.msn
        assert msn is not None
        position = last_part_position(timeline.edge(rendition_id))
        last_msn = position[0] if position else -1
        if msn > last_msn + 2:
            return origin_core.error_json(
                400, "too_far_ahead", f"_HLS_msn={msn} is more than two segments ahead"
            )
        if position is not None and directives.part is not None:
            ahead = parts_ahead(
                position,
                (msn, directives.part),
                actor.publish_settings.segment_duration_s,
                actor.publish_settings.part_target_s,
            )
            if ahead > advance_part_limit(actor.publish_settings.part_target_s):
                return origin_core.error_json(
                    400, "too_far_ahead", "_HLS_part is beyond the advance part limit"
                )
        part = directives.part
        # every request for this position shares one check per live-edge change and one wake-up
        with trio.move_on_after(3 * td):
            await actor.wait_until(
                ("hls", rendition_id, msn, part),
                partial(hls_position_reached, actor, rendition_id, msn, part),
            )
        if hls_position_reached(actor, rendition_id, msn, part):
            return None
        return origin_core.error_json(
            503, "not_yet_available", "the requested part did not appear in time"
        )


def advance_part_limit(part_target_s: float) -> int:
    """rfc8216bis §6.2.5.2: 3 target-durations' worth of parts ahead for PT < 1 s, else 3."""
    return math.ceil(3 / part_target_s) if part_target_s < 1 else 3


def parts_ahead(
    last: tuple[int, int], wanted: tuple[int, int], segment_duration_s: float, part_target_s: float
) -> int:
    """How many parts ``wanted`` (msn, part) lies past the last published (msn, part)."""
    parts_per_segment = max(1, round(segment_duration_s / part_target_s))
    return (wanted[0] - last[0]) * parts_per_segment + (wanted[1] - last[1])


def hls_position_reached(actor: StreamActor, rendition_id: str, msn: int, part: int | None) -> bool:
    """Does the rendition's playlist now contain segment ``msn`` (or part ``part`` of it)?"""
    timeline = actor.timeline
    if timeline is None:
        return False
    edge = timeline.edge(rendition_id)
    last_complete = edge.committed[-1].number if edge.committed else -1
    partial = edge.partial
    if part is None:
        return last_complete >= msn
    if last_complete >= msn:
        segment = next((s for s in edge.committed if s.number == msn), None)
        if segment is None or part < len(segment.parts):
            return True
        # a part index past the segment's last part means part 0 of the next segment
        return last_complete >= msn + 1 or (
            partial is not None and partial.number == msn + 1 and bool(partial.parts)
        )
    if partial is None:
        return False
    return partial.number > msn or (partial.number == msn and len(partial.parts) > part)


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
