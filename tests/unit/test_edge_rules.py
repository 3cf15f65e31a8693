"""The pure low-latency rules of the live edge (actors/edge/rules.py)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from actors.edge import rules
from actors.packager.model import PartRecord, SegmentRecord
from actors.packager.timeline import RenditionEdge

PARTS_PER_SEGMENT = 4  # 2 s segments of 0.5 s parts


def _parts(count: int) -> tuple[PartRecord, ...]:
    return tuple(
        PartRecord(index=k, duration_s=0.5, independent=k == 0, byte_offset=k * 10, byte_length=10)
        for k in range(count)
    )


def _segment(number: int, part_count: int = PARTS_PER_SEGMENT) -> SegmentRecord:
    return SegmentRecord(
        number=number,
        start_ticks=number * 180_000,
        duration_ticks=180_000,
        timescale=90_000,
        program_date_time_unix_s=1_700_000_000.0 + 2 * number,
        byte_length=10 * part_count,
        epoch=0,
        init_name="init_0.mp4",
        parts=_parts(part_count),
    )


def edge_at(last_committed: int | None, growing_parts: int | None) -> RenditionEdge:
    """Segments up to ``last_committed`` (the newest three), plus the next one growing."""
    committed = (
        tuple(_segment(n) for n in range(max(0, last_committed - 2), last_committed + 1))
        if last_committed is not None
        else ()
    )
    next_number = last_committed + 1 if last_committed is not None else 0
    partial = (
        _segment(next_number, growing_parts) if growing_parts else None
    )
    return RenditionEdge(
        rendition_id="240p",
        kind="video",
        track=None,
        init_name="init_0.mp4",
        committed=committed,
        partial=partial,
    )


def test_advance_part_limit_and_parts_ahead() -> None:
    assert rules.advance_part_limit(0.5) == 6  # 3 / 0.5
    assert rules.advance_part_limit(0.33) == 10
    assert rules.advance_part_limit(1.0) == 3
    assert rules.parts_ahead((10, 3), (11, 1), 2.0, 0.5) == 2
    assert rules.parts_ahead((10, 3), (12, 3), 2.0, 0.5) == 8
    assert rules.parts_ahead((10, 3), (10, 1), 2.0, 0.5) == -2


def test_hold_timeout_is_three_target_durations() -> None:
    assert rules.hold_timeout_s(2) == 6
    assert rules.hold_timeout_s(1) == 3


def test_blocking_refusals() -> None:
    edge = edge_at(10, 2)  # last published part: (11, 1)
    refuse = lambda msn, part: rules.blocking_refusal(  # noqa: E731
        edge, msn, part, segment_duration_s=2.0, part_target_s=0.5
    )
    assert refuse(11, 2) is None  # the hinted part
    assert refuse(13, None) is None  # two segments ahead of the last published one
    assert refuse(14, None) is rules.TOO_FAR_AHEAD_MSN
    assert refuse(12, 3) is None  # 6 parts ahead: the advance part limit for 0.5 s parts
    assert refuse(12, 4) is rules.TOO_FAR_AHEAD_PART
    assert rules.TOO_FAR_AHEAD_MSN.status == 400
    assert rules.GAVE_UP.status == 503
    # nothing published yet: only the segment distance counts
    empty = edge_at(None, None)
    assert rules.blocking_refusal(empty, 1, 3, segment_duration_s=2.0, part_target_s=0.5) is None
    assert (
        rules.blocking_refusal(empty, 2, None, segment_duration_s=2.0, part_target_s=0.5)
        is rules.TOO_FAR_AHEAD_MSN
    )


def _published(edge: RenditionEdge) -> list[tuple[int, int]]:
    out = [(s.number, p.index) for s in edge.committed for p in s.parts]
    if edge.partial is not None:
        out += [(edge.partial.number, p.index) for p in edge.partial.parts]
    return out


@given(
    last_committed=st.one_of(st.none(), st.integers(0, 20)),
    growing_parts=st.integers(0, PARTS_PER_SEGMENT - 1),
    msn=st.integers(0, 24),
    part=st.one_of(st.none(), st.integers(0, PARTS_PER_SEGMENT)),
)
def test_position_reached_exactly_when_the_playlist_holds_it(
    last_committed: int | None, growing_parts: int, msn: int, part: int | None
) -> None:
    edge = edge_at(last_committed, growing_parts)
    published = set(_published(edge))
    last_complete = last_committed if last_committed is not None else -1
    if part is None:
        expected = msn <= last_complete
    elif part >= PARTS_PER_SEGMENT:
        # past a segment's last part means part 0 of the next one
        expected = (msn + 1, 0) in published or msn + 1 <= last_complete
    else:
        expected = (msn, part) in published or (
            msn <= last_complete and msn < last_complete - 2  # older than the view: long done
        )
    assert rules.hls_position_reached(edge, msn, part) is expected


@given(
    last_committed=st.integers(0, 20),
    growing_parts=st.integers(0, PARTS_PER_SEGMENT - 1),
    number=st.integers(0, 24),
    part_index=st.integers(0, PARTS_PER_SEGMENT),
)
def test_held_parts_are_the_hinted_one_or_just_beyond(
    last_committed: int, growing_parts: int, number: int, part_index: int
) -> None:
    edge = edge_at(last_committed, growing_parts)
    position = rules.growing_position(edge, last_committed + 1)
    growing_number = last_committed + 1
    assert position == (growing_number, growing_parts)
    held = rules.may_hold_part(position, number, part_index)
    # the hinted part is (growing, parts so far); holding never reaches past the next segment's
    # first part (a part already out is answered before anything is held)
    if held:
        assert (number == growing_number and part_index <= growing_parts) or (
            number == growing_number + 1 and part_index == 0
        )
    assert rules.may_hold_part(position, growing_number, growing_parts)
    assert rules.may_stream_segment(position, number) is (
        growing_number <= number <= growing_number + 1
    )


def test_a_part_is_final_once_its_segment_is_committed() -> None:
    assert rules.part_is_final(9, next_number=10)
    assert not rules.part_is_final(10, next_number=10)


@given(
    segment=st.binary(min_size=1, max_size=200),
    cuts=st.lists(st.integers(0, 200), max_size=6),
    commit_in_memory=st.booleans(),
)
def test_streaming_a_growing_segment_sends_exactly_its_bytes(
    segment: bytes, cuts: list[int], commit_in_memory: bool
) -> None:
    """However the segment grows between wake-ups, the chunks add up to the segment, once."""
    sent = b""
    for cut in sorted(c % (len(segment) + 1) for c in cuts):
        step = rules.growing_progress(
            committed=None, growing=(segment[:cut], False), already_committed=False, sent=len(sent)
        )
        assert not step.done
        sent += step.chunk
    final = rules.growing_progress(
        committed=segment if commit_in_memory else None,
        growing=None if commit_in_memory else (segment, True),
        already_committed=commit_in_memory,
        sent=len(sent),
    )
    assert final.done
    assert sent + final.chunk == segment


def test_a_discarded_segment_ends_the_stream_short() -> None:
    step = rules.growing_progress(committed=None, growing=None, already_committed=True, sent=5)
    assert step == rules.GrowingProgress(b"", done=True)
    waiting = rules.growing_progress(committed=None, growing=None, already_committed=False, sent=0)
    assert waiting == rules.GrowingProgress(b"", done=False)


def test_range_of_growing() -> None:
    data = bytes(range(10))
    assert rules.range_of_growing(data=data, complete=False, first=2, last=4) == b"\x02\x03\x04"
    assert rules.range_of_growing(data=data, complete=False, first=2, last=10) == "wait"
    assert rules.range_of_growing(data=data, complete=True, first=2, last=10) is None
