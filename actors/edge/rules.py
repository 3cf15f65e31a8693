"""The low-latency rules of the live edge, in one place and pure (no trio, no HTTP).

Which positions a request may be held for, for how long, what a refusal is, when a part's bytes
are final, and how much of a growing segment may be handed out. ``actors.edge.interface`` applies
them to a running stream; nothing under ``supervisor/`` holds an LL rule of its own.

Positions are ``(msn, part)`` pairs as LL-HLS spells them (rfc8216bis §6.2.5.2); a rendition's
live edge is read from its :class:`~actors.packager.timeline.RenditionEdge` view.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from actors.packager.publish import last_part_position
from actors.packager.timeline import RenditionEdge

# how far past the growing segment a held media request may point: the next segment's first part
SEGMENTS_AHEAD_HELD = 1
# how far ahead a blocking playlist reload may point (rfc8216bis: more than two segments → 400)
SEGMENTS_AHEAD_BLOCKING = 2


@dataclass(frozen=True, slots=True)
class Refusal:
    """A request the live edge will not (or could not) answer; the HTTP layer maps it 1:1."""

    status: int  # 400: never answerable from here; 503: gave up waiting
    code: str
    message: str


TOO_FAR_AHEAD_MSN = Refusal(400, "too_far_ahead", "_HLS_msn is more than two segments ahead")
TOO_FAR_AHEAD_PART = Refusal(400, "too_far_ahead", "_HLS_part is beyond the advance part limit")
GAVE_UP = Refusal(503, "not_yet_available", "the requested part did not appear in time")


def hold_timeout_s(target_duration_s: float) -> float:
    """How long any request is held at the live edge (rfc8216bis §6.2.5.2: 3 × target duration)."""
    return 3 * target_duration_s


def advance_part_limit(part_target_s: float) -> int:
    """rfc8216bis §6.2.5.2: 3 target-durations' worth of parts ahead for PT < 1 s, else 3."""
    return math.ceil(3 / part_target_s) if part_target_s < 1 else 3


def parts_ahead(
    last: tuple[int, int], wanted: tuple[int, int], segment_duration_s: float, part_target_s: float
) -> int:
    """How many parts ``wanted`` (msn, part) lies past the last published (msn, part)."""
    parts_per_segment = max(1, round(segment_duration_s / part_target_s))
    return (wanted[0] - last[0]) * parts_per_segment + (wanted[1] - last[1])


def blocking_refusal(
    edge: RenditionEdge,
    msn: int,
    part: int | None,
    *,
    segment_duration_s: float,
    part_target_s: float,
) -> Refusal | None:
    """A blocking reload for a position that may never be waited for (400), else None."""
    position = last_part_position(edge)
    last_msn = position[0] if position else -1
    if msn > last_msn + SEGMENTS_AHEAD_BLOCKING:
        return TOO_FAR_AHEAD_MSN
    if position is not None and part is not None:
        ahead = parts_ahead(position, (msn, part), segment_duration_s, part_target_s)
        if ahead > advance_part_limit(part_target_s):
            return TOO_FAR_AHEAD_PART
    return None


def hls_position_reached(edge: RenditionEdge, msn: int, part: int | None) -> bool:
    """Does the rendition's playlist now contain segment ``msn`` (or part ``part`` of it)?"""
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


def growing_position(edge: RenditionEdge, next_number: int) -> tuple[int, int]:
    """(number, parts published so far) of the rendition's visible growing segment."""
    if edge.partial is not None:
        return edge.partial.number, len(edge.partial.parts)
    return next_number, 0


def may_hold_part(position: tuple[int, int], number: int, part_index: int) -> bool:
    """Is (number, part_index) the preload-hinted part, or just beyond it (worth holding)?"""
    growing_number, parts_so_far = position
    if number == growing_number:
        return part_index <= parts_so_far
    return number == growing_number + SEGMENTS_AHEAD_HELD and part_index == 0


def may_stream_segment(position: tuple[int, int], number: int) -> bool:
    """A not-yet-committed segment that is growing now or starts next."""
    growing_number, _parts = position
    return growing_number <= number <= growing_number + SEGMENTS_AHEAD_HELD


def part_is_final(number: int, next_number: int) -> bool:
    """A part's bytes never change once its segment is committed (before, an encoder restart may
    discard the segment, so the same name could come back with other bytes)."""
    return number < next_number


@dataclass(frozen=True, slots=True)
class GrowingProgress:
    """The next step of streaming a growing segment: bytes to send, and whether that is all."""

    chunk: bytes
    done: bool


def growing_progress(
    *,
    committed: bytes | None,
    growing: tuple[bytes, bool] | None,
    already_committed: bool,
    sent: int,
) -> GrowingProgress:
    """What to send next of a segment streamed while it is written (LL-DASH chunked delivery).

    ``committed`` is the finished segment if it is held in memory, ``growing`` its bytes so far and
    completeness, ``already_committed`` whether the stream numbered past it (then anything not in
    memory is gone: end the body short rather than wait forever), ``sent`` how much went out.
    """
    if committed is not None or already_committed:
        rest = committed[sent:] if committed is not None else b""
        return GrowingProgress(rest, done=True)
    if growing is None:
        return GrowingProgress(b"", done=False)
    data, complete = growing
    return GrowingProgress(data[sent:], done=complete)


def range_of_growing(
    *, data: bytes, complete: bool, first: int, last: int
) -> bytes | Literal["wait"] | None:
    """Bytes ``first..last`` of a segment being written: the bytes once there, ``None`` if they
    never will be (complete and shorter), ``"wait"`` while they may still come."""
    if len(data) > last:
        return data[first : last + 1]
    if complete:
        return None
    return "wait"
