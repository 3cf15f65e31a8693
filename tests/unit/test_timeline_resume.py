"""Resuming a stream's timeline from the registry: numbers, media time, discontinuities, periods.

Uses the same real FFmpeg fragments as test_timeline.py.
"""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from actors.packager import publish
from actors.packager.timeline import StreamTimeline, TimelinePosition
from tests.unit.test_timeline import AST, publish_settings, run_epoch


def resumed(position: TimelinePosition, *, requested_ast: float = AST + 999) -> StreamTimeline:
    return StreamTimeline(
        renditions=[("180p", "video"), ("audio", "audio")],
        segment_duration_s=1.0,
        availability_start_unix_s=requested_ast,  # ignored: the resumed stream keeps its own
        retained_segments=10,
        resume_from=position,
    )


def first_life() -> StreamTimeline:
    timeline = StreamTimeline(
        renditions=[("180p", "video"), ("audio", "audio")],
        segment_duration_s=1.0,
        availability_start_unix_s=AST,
        retained_segments=10,
    )
    assert timeline.position() is None  # nothing committed yet
    run_epoch(timeline, AST + 5.0)
    run_epoch(timeline, AST + 8.0)  # an encoder restart: one discontinuity
    return timeline


def test_position_describes_the_last_commit() -> None:
    timeline = first_life()
    position = timeline.position()
    assert position == TimelinePosition(
        availability_start_unix_s=AST,
        encoder_epoch=2,
        last_number=3,
        media_end_s=timeline.timeline_end_s,
        discontinuities=1,
    )


def test_a_resumed_timeline_continues_above_with_a_discontinuity_and_a_new_period() -> None:
    before = first_life()
    position = before.position()
    assert position is not None
    after = resumed(position)
    assert after.availability_start_unix_s == AST
    # before any new commit it still stands where it was resumed
    assert after.position() == position
    # the service was down 60 s; the new encoder's timestamps start from 0 again
    assert run_epoch(after, AST + 70.0) == [4, 5]
    video = after.edge("180p").committed
    assert [s.number for s in video] == [4, 5]
    assert [s.epoch for s in video] == [3, 3]
    # media time is wall-clock anchored: the gap is the downtime, never a step back
    assert video[0].start_s >= position.media_end_s
    assert abs(video[0].program_date_time_unix_s - (AST + video[0].start_s)) < 1e-6
    assert video[0].start_s > 60.0
    # HLS: the first new segment follows a discontinuity the old playlists did not have yet
    assert after.discontinuity_sequence(4) == 2
    text = publish.render_media_playlist(after, "180p", publish_settings(0.34, low_latency=False))
    assert text is not None
    assert "#EXT-X-MEDIA-SEQUENCE:4" in text
    assert "#EXT-X-DISCONTINUITY-SEQUENCE:2" in text
    # DASH: a new Period, named by its first number (never one of the earlier life's ids)
    assert [(p.period_id, p.first_number) for p in after.periods()] == [("p4", 4)]
    # (its start: the earliest rendition's first segment, here audio's, a few ms before video's)
    assert position.media_end_s <= after.periods()[0].start_s <= video[0].start_s
    # and the next position goes on from there
    assert after.position() == TimelinePosition(
        availability_start_unix_s=AST,
        encoder_epoch=3,
        last_number=5,
        media_end_s=after.timeline_end_s,
        discontinuities=2,
    )


def test_an_encoder_restart_after_resume_adds_one_more_discontinuity() -> None:
    position = first_life().position()
    assert position is not None
    after = resumed(position)
    run_epoch(after, AST + 70.0)
    run_epoch(after, AST + 73.0)
    assert after.discontinuity_sequence(4) == 2
    assert after.discontinuity_sequence(6) == 3
    text = publish.render_media_playlist(after, "180p", publish_settings(0.34, low_latency=False))
    assert text is not None
    assert text.count("#EXT-X-DISCONTINUITY\n") == 1  # between 5 and 6, both listed


def test_the_manifest_of_a_resumed_stream_keeps_its_availability_start() -> None:
    position = first_life().position()
    assert position is not None
    after = resumed(position)
    run_epoch(after, AST + 70.0)
    metas = (
        publish.RenditionMeta(rendition_id="180p", kind="video", nominal_bandwidth_bps=300_000),
        publish.RenditionMeta(rendition_id="audio", kind="audio", nominal_bandwidth_bps=128_000),
    )
    mpd = publish.render_manifest(
        after, metas, publish_settings(0.34, low_latency=False), now_unix_s=AST + 73.0
    )
    assert mpd is not None
    # the AST players already know (the stream's first life began at AST), one new Period
    assert 'availabilityStartTime="2023-11-14T22:13:20' in mpd
    assert re.findall(r'<Period id="([^"]+)"', mpd) == ["p4"]
    assert 'startNumber="4"' in mpd


def test_a_resumed_stream_lists_no_playlist_of_parts_alone() -> None:
    position = first_life().position()
    assert position is not None
    after = resumed(position)
    ll = publish_settings(0.34, low_latency=True)
    run_epoch(after, AST + 70.0, end=False, fragments=2)  # a part or two, no segment yet
    assert after.edge("180p").partial is not None
    assert after.awaiting_first_segment_after_resume
    # a player that was watching gets no playlist yet (it retries) rather than one it cannot use
    assert publish.render_media_playlist(after, "180p", ll) is None
    run_epoch(after, AST + 75.0)
    assert not after.awaiting_first_segment_after_resume
    assert publish.render_media_playlist(after, "180p", ll) is not None
    # a new stream still lists its first parts at once (LL start-up)
    fresh = StreamTimeline(
        renditions=[("180p", "video"), ("audio", "audio")],
        segment_duration_s=1.0,
        availability_start_unix_s=AST,
        retained_segments=10,
    )
    run_epoch(fresh, AST + 5.0, end=False, fragments=2)
    assert fresh.edge("180p").committed == ()
    assert publish.render_media_playlist(fresh, "180p", ll) is not None


@given(
    last_number=st.integers(min_value=0, max_value=10**9),
    media_end_s=st.floats(min_value=0.0, max_value=10**8, allow_nan=False),
    epoch=st.integers(min_value=1, max_value=10**6),
    discontinuities=st.integers(min_value=0, max_value=10**6),
    restart_after_s=st.floats(min_value=-1000.0, max_value=1000.0, allow_nan=False),
)
def test_resumed_numbers_and_time_never_go_back(
    last_number: int,
    media_end_s: float,
    epoch: int,
    discontinuities: int,
    restart_after_s: float,
) -> None:
    position = TimelinePosition(AST, epoch, last_number, media_end_s, discontinuities)
    after = resumed(position)
    # whatever the wall clock says now (even earlier than the old media's end: a clock step)
    committed = run_epoch(after, AST + media_end_s + restart_after_s)
    assert committed
    assert committed[0] == last_number + 1
    first = after.edge("180p").committed[0]
    assert first.start_s >= media_end_s - 1e-6
    assert first.epoch == epoch + 1
    assert after.discontinuity_sequence(committed[0]) == discontinuities + 1
    assert re.fullmatch(r"p\d+", after.periods()[0].period_id)
