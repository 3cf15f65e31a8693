"""Low-latency delivery at the live edge: held part requests and segments streamed as they grow.

* LL-HLS preload hints (rfc8216bis §6.2.6, spec C7): a request for the hinted part — the next
  part of the growing segment, or part 0 of the next segment — is held until that part is
  complete, then sent at once (never a partial part).
* LL-DASH chunked delivery (DASH-IF low-latency, spec F6): a request for a segment that is still
  being written gets 200 at once and a chunked body that carries each CMAF chunk (moof+mdat) the
  moment the packager has it, ending when the segment is complete.

No polling: a held part waits on ``StreamActor.wait_until`` (one check per change for all requests
for that part), a streamed segment on ``StreamActor.wait_changed`` (it needs every change).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import trio

from actors.stream import StreamActor

# how far ahead of the live edge a held request may point: the hinted part / the next segment
_MAX_SEGMENTS_AHEAD = 1


def _partial_position(actor: StreamActor, rendition_id: str) -> tuple[int, int] | None:
    """(number, parts so far) of the rendition's visible growing segment, if any."""
    timeline = actor.timeline
    if timeline is None:
        return None
    edge = timeline.edge(rendition_id)
    if edge.partial is not None:
        return edge.partial.number, len(edge.partial.parts)
    return timeline.next_number, 0


def may_wait_for_part(actor: StreamActor, rendition_id: str, number: int, part_index: int) -> bool:
    """Is (number, part_index) the hinted part, or just beyond it (worth holding)?"""
    position = _partial_position(actor, rendition_id)
    if position is None:
        return False
    growing_number, parts_so_far = position
    if number == growing_number:
        return part_index <= parts_so_far
    return number == growing_number + 1 and part_index == 0


async def wait_for_part(
    actor: StreamActor, rendition_id: str, number: int, part_index: int, timeout_s: float
) -> bytes | None:
    """Hold until the part exists (complete), or None after ``timeout_s`` / if it never will."""
    timeline = actor.timeline
    if timeline is None or not may_wait_for_part(actor, rendition_id, number, part_index):
        return None
    # fragments reach the timeline whole (the box reader emits only complete moof+mdat), so a
    # part that exists is complete: it goes out at full speed, never half. Every request held on
    # this part shares one check per live-edge change (they are many: each LL player asks for it).
    with trio.move_on_after(timeout_s):
        await actor.wait_until(
            ("part", rendition_id, number, part_index),
            lambda: timeline.part_bytes(rendition_id, number, part_index) is not None,
        )
    return timeline.part_bytes(rendition_id, number, part_index)


def may_stream_segment(actor: StreamActor, rendition_id: str, number: int) -> bool:
    """A not-yet-committed segment that is growing now or starts next."""
    position = _partial_position(actor, rendition_id)
    if position is None:
        return False
    growing_number, _parts = position
    return growing_number <= number <= growing_number + _MAX_SEGMENTS_AHEAD


async def stream_segment(
    actor: StreamActor, rendition_id: str, number: int, timeout_s: float
) -> AsyncIterator[bytes]:
    """Yield a growing segment's bytes chunk by chunk until it is complete.

    Ends early (the client sees a short body) if the encoder run ends and the segment is
    discarded, or nothing new arrives for ``timeout_s``.
    """
    sent = 0
    while True:
        timeline = actor.timeline
        if timeline is None:
            return
        version = actor.version
        committed = timeline.segment_bytes(rendition_id, number)
        if committed is not None or number < timeline.next_number:
            if committed is not None and len(committed) > sent:
                yield committed[sent:]
            return
        growing = timeline.growing_bytes(rendition_id, number)
        if growing is not None:
            data, complete = growing
            if len(data) > sent:
                yield data[sent:]
                sent = len(data)
            if complete:
                return
        if actor.finished.is_set():
            return
        with trio.move_on_after(timeout_s) as scope:
            await actor.wait_changed(version)
        if scope.cancelled_caught:
            return


_CLOSED_RANGE = re.compile(r"\s*bytes\s*=\s*(\d{1,15})-(\d{1,15})\s*", re.ASCII)


def closed_range(header: str | None) -> tuple[int, int] | None:
    """``bytes=a-b`` with both ends (how LL-HLS addresses a part inside its segment), or None."""
    if header is None:
        return None
    match = _CLOSED_RANGE.fullmatch(header)
    if match is None:
        return None
    first, last = int(match.group(1)), int(match.group(2))
    return (first, last) if first <= last else None


async def growing_range(
    actor: StreamActor,
    rendition_id: str,
    number: int,
    wanted: tuple[int, int],
    *,
    timeout_s: float,
) -> bytes | None:
    """Bytes ``first..last`` of a segment still being written, once they exist (held until then).

    None if the segment completes (or is abandoned) shorter than ``last``, or after ``timeout_s``.
    """
    first, last = wanted
    with trio.move_on_after(timeout_s):
        while True:
            timeline = actor.timeline
            if timeline is None or actor.finished.is_set():
                return None
            version = actor.version
            committed = timeline.segment_bytes(rendition_id, number)
            growing = timeline.growing_bytes(rendition_id, number)
            if committed is not None:
                data, complete = committed, True
            else:
                data, complete = growing or (b"", False)
            if len(data) > last:
                return data[first : last + 1]
            if complete or number < timeline.next_number:
                return None
            await actor.wait_changed(version)
    return None
