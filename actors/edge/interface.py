"""``LiveEdge``: everything the HTTP layer may ask of one stream, one call per request.

Finished objects (init, segment, part, playlist, MPD) and the three live-edge questions:

* :meth:`LiveEdge.media_playlist` — with a position: wait until the playlist holds it, then give
  the playlist (or a :class:`~actors.edge.rules.Refusal`: too far ahead → 400, gave up → 503);
* :meth:`LiveEdge.part` — wait until the (preload-hinted) part exists, then give its bytes;
* :meth:`LiveEdge.segment` — a finished segment, a byte range of one being written (held until
  those bytes exist), or the growing segment as its chunks arrive (LL-DASH chunked delivery).

The rules (which positions may be waited for, for how long, what is final) are the pure functions
of ``actors.edge.rules``; the waits are the actor's :class:`~actors.edge.gates.EdgeGates`, where
the events are made. Nothing here mutates the stream or touches its process.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import trio

from actors.edge import rules
from actors.edge.rules import Refusal
from actors.files import read_or_none
from actors.packager import publish
from actors.packager.layout import init_file_name, resolve_inside, segment_file_name
from actors.packager.timeline import StreamTimeline

if TYPE_CHECKING:
    from actors.stream import StreamActor

# Every stream actor gets the next number: a cache key that, unlike ``id()``, is never reused, so
# no object of an ended stream is ever served for a new one (not even under the same stream id).
_incarnations = itertools.count(1)


def next_incarnation() -> int:
    return next(_incarnations)


@dataclass(frozen=True, slots=True)
class Document:
    """A playlist or MPD as of one live-edge version (the same version → the same bytes).

    Rendered only when asked: the HTTP layer keeps rendered documents in its object cache keyed
    by ``version`` and calls ``render`` on a miss, in the same step as it got this (no await
    between, so the live edge has not moved). The edge keeps no copy: one cache, one eviction.
    """

    version: int
    render: Callable[[], bytes | None]


@dataclass(frozen=True, slots=True)
class MediaBytes:
    data: bytes
    immutable: bool  # the bytes at this name will never change
    audio: bool


@dataclass(frozen=True, slots=True)
class GrowingRange:
    """Bytes ``first..last`` of a segment still being written (LL-HLS part as a byte range)."""

    data: bytes
    first: int
    last: int
    audio: bool


@dataclass(frozen=True, slots=True)
class GrowingSegment:
    """A segment being written, delivered chunk by chunk as the packager gets each CMAF chunk."""

    chunks: AsyncIterator[bytes]
    audio: bool


class LiveEdge:
    """Read-only access to one stream actor's live edge (see the module docstring)."""

    def __init__(self, actor: StreamActor) -> None:
        self._actor = actor

    # ------------------------------------------------------------------ identity and settings

    @property
    def incarnation(self) -> int:
        """Never reused: objects cached under it belong to this stream actor only."""
        return self._actor.incarnation

    @property
    def ended(self) -> bool:
        return self._actor.finished.is_set()

    @property
    def version(self) -> int:
        """Changes whenever anything at the live edge changes (part, segment, init, end)."""
        return self._actor.gates.version

    @property
    def target_duration_s(self) -> int:
        """EXT-X-TARGETDURATION as published: planned up front, the same all stream long."""
        return publish.target_duration_s(self._actor.publish_settings)

    @property
    def low_latency(self) -> bool:
        return self._actor.low_latency

    def count_served(self, byte_count: int) -> None:
        self._actor.bytes_served += byte_count

    def has_rendition(self, rendition_id: str) -> bool:
        timeline = self._actor.timeline
        return timeline is not None and rendition_id in timeline.rendition_ids

    def newest_segment_sizes(self) -> dict[str, tuple[int, float]]:
        """Rendition id → (bytes, seconds) of its newest committed segment (the dashboard's
        bitrate out); renditions without one yet are left out."""
        timeline = self._actor.timeline
        if timeline is None:
            return {}
        newest = {rid: timeline.edge(rid).committed for rid in timeline.rendition_ids}
        return {rid: (c[-1].byte_length, c[-1].duration_s) for rid, c in newest.items() if c}

    # ------------------------------------------------------------------ documents

    def multivariant_playlist(self) -> Document | None:
        actor = self._actor
        if not actor.spec.enable_hls:
            return None
        return self._document(
            lambda t: publish.render_multivariant_playlist(t, actor.metas, actor.publish_settings)
        )

    def manifest(self) -> Document | None:
        actor = self._actor
        if not actor.spec.enable_dash:
            return None
        return self._document(
            lambda t: publish.render_manifest(
                t, actor.metas, actor.publish_settings, now_unix_s=actor.wall_now()
            ),
        )

    async def media_playlist(
        self,
        rendition_id: str,
        *,
        msn: int | None = None,
        part: int | None = None,
        skip: bool = False,
    ) -> Document | Refusal | None:
        """A rendition's playlist; with ``msn`` (a blocking reload), once it holds that position.

        None: no such playlist. Without LL the position is ignored (no CAN-BLOCK-RELOAD was
        advertised, so the answer is immediate).
        """
        actor = self._actor
        if not actor.spec.enable_hls:
            return None
        await self._hold_until_resumed()
        if not self.has_rendition(rendition_id):
            return None
        low_latency = actor.low_latency
        if msn is not None and low_latency:
            refusal = await self._block(rendition_id, msn, part)
            if refusal is not None:
                return refusal
        skip = skip and low_latency
        return self._document(
            lambda t: publish.render_media_playlist(
                t, rendition_id, actor.publish_settings, skip_requested=skip
            ),
        )

    def _document(self, render: Callable[[StreamTimeline], str | None]) -> Document | None:
        """The document at the current live-edge version, to be rendered by whoever has no
        copy of that version yet."""
        timeline = self._actor.timeline
        if timeline is None:
            return None

        def rendered() -> bytes | None:
            text = render(timeline)
            return None if text is None else text.encode()

        return Document(self.version, rendered)

    async def _hold_until_resumed(self) -> None:
        """A resumed stream lists nothing until its first segment in this life (see
        ``StreamTimeline.awaiting_first_segment_after_resume``; before its encoder even started
        it has no timeline at all): hold playlist requests for it, bounded like a blocking
        reload, so players that were watching get a usable playlist a moment later instead of
        a 404 that spends their retries."""
        actor = self._actor

        def resumed() -> bool:
            return not actor.awaiting_first_segment_after_resume

        if not resumed():
            with trio.move_on_after(rules.hold_timeout_s(self.target_duration_s)):
                await actor.gates.wait_until(("resumed",), resumed)

    async def _block(self, rendition_id: str, msn: int, part: int | None) -> Refusal | None:
        """Hold a blocking playlist reload until its position exists (rfc8216bis §6.2.5.2)."""
        actor = self._actor
        timeline = actor.timeline
        assert timeline is not None
        settings = actor.publish_settings
        refusal = rules.blocking_refusal(
            timeline.edge(rendition_id),
            msn,
            part,
            segment_duration_s=settings.segment_duration_s,
            part_target_s=settings.part_target_s,
        )
        if refusal is not None:
            return refusal

        def reached() -> bool:
            current = actor.timeline
            return current is not None and rules.hls_position_reached(
                current.edge(rendition_id), msn, part
            )

        # every request for this position shares one check per live-edge change and one wake-up
        with trio.move_on_after(rules.hold_timeout_s(self.target_duration_s)):
            await actor.gates.wait_until(("hls", rendition_id, msn, part), reached)
        return None if reached() else rules.GAVE_UP

    # ------------------------------------------------------------------ media

    async def part(self, rendition_id: str, number: int, part_index: int) -> MediaBytes | None:
        """A part's bytes; the preload-hinted part (LL) is held until it is complete."""
        timeline = self._actor.timeline
        if timeline is None:
            return None
        data = timeline.part_bytes(rendition_id, number, part_index)
        if data is None and self._actor.low_latency:
            data = await self._held_part(timeline, rendition_id, number, part_index)
        if data is None:
            return None
        current = self._actor.timeline or timeline
        return MediaBytes(
            data,
            immutable=rules.part_is_final(number, current.next_number),
            audio=rendition_id == publish.AUDIO_RENDITION_ID,
        )

    async def _held_part(
        self, timeline: StreamTimeline, rendition_id: str, number: int, part_index: int
    ) -> bytes | None:
        position = rules.growing_position(timeline.edge(rendition_id), timeline.next_number)
        if not rules.may_hold_part(position, number, part_index):
            return None
        actor = self._actor

        def settled() -> bool:
            # the part exists, or it never will: its segment ended with fewer parts (the
            # encoder restarted, the publisher left, the cut came early) or the timeline was
            # replaced. Then the 404 goes out now, not after 3 × TD on a part that cannot come.
            if timeline.part_bytes(rendition_id, number, part_index) is not None:
                return True
            if actor.timeline is not timeline:
                return True
            now = rules.growing_position(timeline.edge(rendition_id), timeline.next_number)
            return not rules.may_hold_part(now, number, part_index)

        # fragments reach the timeline whole (the box reader emits only complete moof+mdat), so a
        # part that exists is complete: it goes out at full speed, never half. Every request held
        # on this part shares one check per live-edge change (each LL player asks for it).
        with trio.move_on_after(rules.hold_timeout_s(self.target_duration_s)):
            await actor.gates.wait_until(("part", rendition_id, number, part_index), settled)
        return timeline.part_bytes(rendition_id, number, part_index)

    async def segment(
        self, rendition_id: str, number: int, *, byte_range: tuple[int, int] | None = None
    ) -> MediaBytes | GrowingRange | GrowingSegment | None:
        """Segment ``number``: finished (memory or disk), or — not yet committed — a closed byte
        range of it once those bytes exist, or (LL) its chunks as they arrive. None: 404."""
        actor = self._actor
        timeline = actor.timeline
        if timeline is None:
            return None
        audio = rendition_id == publish.AUDIO_RENDITION_ID
        if number >= timeline.next_number:
            position = rules.growing_position(timeline.edge(rendition_id), timeline.next_number)
            if not rules.may_stream_segment(position, number):
                return None
            if byte_range is not None:
                data = await self._growing_range(rendition_id, number, byte_range)
                return None if data is None else GrowingRange(data, *byte_range, audio=audio)
            if actor.low_latency:
                return GrowingSegment(self._growing_chunks(rendition_id, number), audio=audio)
            return None
        held = timeline.segment_bytes(rendition_id, number)
        if held is not None:
            return MediaBytes(held, immutable=True, audio=audio)
        return await self._stored_file(rendition_id, segment_file_name(number))

    async def init(self, rendition_id: str, init_version: int) -> MediaBytes | None:
        """An init segment (kept on disk while any listed segment decodes with it)."""
        if not self.has_rendition(rendition_id):
            return None
        return await self._stored_file(rendition_id, init_file_name(init_version))

    async def _stored_file(self, rendition_id: str, name: str) -> MediaBytes | None:
        """A finished file of this stream from its folder (init segments, older segments), read
        in a worker thread; None if missing or if the name would leave the folder."""
        path = resolve_inside(self._actor.folder, f"{rendition_id}/{name}")
        if path is None:
            return None
        data = await trio.to_thread.run_sync(read_or_none, path)
        if data is None:
            return None
        return MediaBytes(data, immutable=True, audio=rendition_id == publish.AUDIO_RENDITION_ID)

    async def _growing_range(
        self, rendition_id: str, number: int, byte_range: tuple[int, int]
    ) -> bytes | None:
        first, last = byte_range
        actor = self._actor
        with trio.move_on_after(rules.hold_timeout_s(self.target_duration_s)):
            while True:
                timeline = actor.timeline
                if timeline is None or self.ended:
                    return None
                version = self.version
                committed = timeline.segment_bytes(rendition_id, number)
                if committed is not None:
                    data, complete = committed, True
                else:
                    data, complete = timeline.growing_bytes(rendition_id, number) or (b"", False)
                    complete = complete or number < timeline.next_number
                answer = rules.range_of_growing(
                    data=data, complete=complete, first=first, last=last
                )
                if answer != "wait":
                    return answer if isinstance(answer, bytes) else None
                await actor.gates.wait_changed(version)
        return None

    async def _growing_chunks(self, rendition_id: str, number: int) -> AsyncIterator[bytes]:
        """Yield a growing segment's bytes chunk by chunk until it is complete.

        Ends early (the client sees a short body) if the encoder run ends and the segment is
        discarded, or nothing new arrives for the hold timeout.
        """
        actor = self._actor
        sent = 0
        while True:
            timeline = actor.timeline
            if timeline is None:
                return
            version = self.version
            step = rules.growing_progress(
                committed=timeline.segment_bytes(rendition_id, number),
                growing=timeline.growing_bytes(rendition_id, number),
                already_committed=number < timeline.next_number,
                sent=sent,
            )
            if step.chunk:
                yield step.chunk
                sent += len(step.chunk)
            if step.done or self.ended:
                return
            with trio.move_on_after(rules.hold_timeout_s(self.target_duration_s)) as scope:
                await actor.gates.wait_changed(version)
            if scope.cancelled_caught:
                return
