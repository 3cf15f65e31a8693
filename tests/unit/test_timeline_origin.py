"""One origin per epoch: renditions whose encoder times start apart keep that offset (issue 10).

Joining a live source mid-GOP, FFmpeg's audio starts at its first packet (its priming frame
stamped -1024 samples) and its video only at the next keyframe, up to a source GOP later; with
``frag_discont`` and no edit list those times reach the packager as they are. The timeline must
shift every rendition of an epoch by the same amount (lip sync, and the video's PDT against its
capture), never before where the previous epoch ended, and drop the audio from before the first
picture so that segments of one number still start together.
"""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.packager.bmff import fragment_info
from actors.packager.bmff.boxes import BmffError
from actors.packager.bmff.rebase import rebase_fragment
from actors.packager.model import Fragment, SegmentRecord, TrackKind
from actors.packager.timeline import StreamTimeline
from tests.unit.test_bmff import make_fragment
from tests.unit.test_timeline_grid import (
    AST,
    AUDIO_FRAGMENT_TICKS,
    AUDIO_TIMESCALE,
    FRAME_TICKS,
    PART_FRAMES,
    VIDEO_TIMESCALE,
    init_for,
    new_timeline,
)

AAC_PRIMING_TICKS = 1024  # FFmpeg's AAC encoder stamps its first frame this far before 0
GOP_FRAMES = 60  # the encoder's forced IDRs: every 2 s from its first frame
EPOCH_FRAMES = 8 * 30
RENDITIONS: list[tuple[str, TrackKind]] = [("720p", "video"), ("audio", "audio")]


def signed_fragment(start_ticks: int, duration_ticks: int, *, sync: bool) -> Fragment:
    """A fragment whose tfdt is v1, negative times in two's complement as FFmpeg writes them."""
    data = make_fragment(
        base_time=start_ticks % (1 << 64), tfdt_version=1, durations=(duration_ticks,)
    )
    return Fragment(
        data=data,
        track_id=1,
        decode_time_ticks=start_ticks,
        duration_ticks=duration_ticks,
        sample_count=1,
        starts_with_sync=sync,
    )


def encoder_run(video_first_frame: int, audio_first_ticks: int) -> dict[str, list[Fragment]]:
    """One encoder run: video from frame ``video_first_frame`` (the first keyframe after the
    join), audio from ``audio_first_ticks``, both until the same end."""
    last_frame = video_first_frame + EPOCH_FRAMES
    video = [
        signed_fragment(
            frame * FRAME_TICKS,
            min(PART_FRAMES, last_frame - frame) * FRAME_TICKS,
            sync=(frame - video_first_frame) % GOP_FRAMES == 0,
        )
        for frame in range(video_first_frame, last_frame, PART_FRAMES)
    ]
    audio_end_ticks = last_frame * FRAME_TICKS * AUDIO_TIMESCALE // VIDEO_TIMESCALE
    audio = [
        signed_fragment(start, AUDIO_FRAGMENT_TICKS, sync=True)
        for start in range(audio_first_ticks, audio_end_ticks, AUDIO_FRAGMENT_TICKS)
    ]
    return {"720p": video, "audio": audio}


def joined(input_start_frames: int, join_frames: int) -> tuple[int, int]:
    """(video's first frame, audio's first tick) of a run whose input starts at
    ``input_start_frames`` and whose first keyframe comes ``join_frames`` after that."""
    audio_ticks_per_frame = FRAME_TICKS * AUDIO_TIMESCALE // VIDEO_TIMESCALE
    return (
        input_start_frames + join_frames,
        input_start_frames * audio_ticks_per_frame - AAC_PRIMING_TICKS,
    )


def timescale_of(rid: str) -> int:
    return VIDEO_TIMESCALE if rid == "720p" else AUDIO_TIMESCALE


def end_s(rid: str, piece: Fragment) -> float:
    return piece.end_time_ticks / timescale_of(rid)


def arrival_order(
    fragments: dict[str, list[Fragment]], rng: random.Random, *, audio_first: bool
) -> list[tuple[str, Fragment]]:
    """Each pipe in its own order, the pipes interleaved at random within a second of media."""
    positions = dict.fromkeys(fragments, 0)
    order: list[tuple[str, Fragment]] = []
    if audio_first:
        order.append(("audio", fragments["audio"][0]))
        positions["audio"] = 1
    while True:
        open_pipes = [r for r, i in positions.items() if i < len(fragments[r])]
        if not open_pipes:
            return order
        ends = {r: end_s(r, fragments[r][positions[r]]) for r in open_pipes}
        rid = rng.choice([r for r in open_pipes if ends[r] <= min(ends.values()) + 1.0])
        order.append((rid, fragments[rid][positions[rid]]))
        positions[rid] += 1


def first_kept_audio_s(video_first_frame: int, audio_first_ticks: int) -> float:
    """Where the first audio fragment that ends after the first picture starts (seconds)."""
    picture_ticks = video_first_frame * FRAME_TICKS * AUDIO_TIMESCALE // VIDEO_TIMESCALE
    index = math.floor((picture_ticks - audio_first_ticks) / AUDIO_FRAGMENT_TICKS)
    return (audio_first_ticks + index * AUDIO_FRAGMENT_TICKS) / AUDIO_TIMESCALE


def run_epoch(
    timeline: StreamTimeline, order: list[tuple[str, Fragment]], *, wall_start_unix_s: float | None
) -> tuple[list[int], float]:
    """Feed one run; ``wall_start_unix_s`` None: an encoder faster than real time (every
    fragment arrives at AST, so the epoch is pushed to the floor). Returns the committed
    numbers and the arrival time of the first fragment."""
    timeline.begin_epoch()
    for index, (rid, kind) in enumerate(RENDITIONS):
        timeline.on_init(rid, init_for(kind, index + 1))
    committed: list[int] = []
    first_arrival_unix_s = 0.0
    for position, (rid, piece) in enumerate(order):
        now = AST if wall_start_unix_s is None else wall_start_unix_s + end_s(rid, piece)
        if position == 0:
            first_arrival_unix_s = now
        committed += timeline.on_fragment(rid, piece, now_unix_s=now).segments_committed
    committed += timeline.end_epoch(now_unix_s=AST).segments_committed
    return committed, first_arrival_unix_s


def records(timeline: StreamTimeline, rid: str) -> dict[int, SegmentRecord]:
    return {record.number: record for record in timeline.edge(rid).committed}


@settings(max_examples=60, deadline=None)
@given(
    epochs=st.lists(
        st.tuples(
            st.integers(min_value=0, max_value=6 * 30),  # where the encoder's input time starts
            st.integers(min_value=0, max_value=GOP_FRAMES - 1),  # join to the next keyframe
            st.booleans(),  # live (real time) or faster than real time
        ),
        min_size=1,
        max_size=3,
    ),
    rng=st.randoms(use_true_random=False),
)
def test_every_rendition_of_an_epoch_keeps_its_offset_from_the_others(
    epochs: list[tuple[int, int, bool]], rng: random.Random
) -> None:
    timeline = new_timeline(RENDITIONS)
    previous_end_s = 0.0
    for epoch_index, (input_start_frames, join_frames, live) in enumerate(epochs):
        video_first_frame, audio_first_ticks = joined(input_start_frames, join_frames)
        # Faster than real time, the epoch is pushed to the previous one's end; FFmpeg's audio
        # comes out first there (the video waits for a keyframe), and the earliest rendition
        # arriving first is what lets the origin keep every offset.
        run = encoder_run(video_first_frame, audio_first_ticks)
        order = arrival_order(run, rng, audio_first=not live)
        wall_start = AST + 100.0 * (epoch_index + 1) if live else None
        committed, first_arrival = run_epoch(timeline, order, wall_start_unix_s=wall_start)
        assert committed, "every run is long enough to commit segments"
        video, audio = records(timeline, "720p"), records(timeline, "audio")
        first = video[committed[0]], audio[committed[0]]
        video_first_s = video_first_frame * FRAME_TICKS / VIDEO_TIMESCALE
        # the offset FFmpeg's timestamps had, to a tick of either timescale
        expected_offset_s = video_first_s - first_kept_audio_s(
            *joined(input_start_frames, join_frames)
        )
        assert first[0].start_s - first[1].start_s == pytest.approx(
            expected_offset_s, abs=2 / AUDIO_TIMESCALE
        )
        # never before where the last epoch ended, nor before media time 0
        assert min(r.start_s for r in first) >= previous_end_s - 1e-9
        for number in committed:
            # segments of one number start together, to within an audio fragment
            gap_s = abs(video[number].start_s - audio[number].start_s)
            assert gap_s < AUDIO_FRAGMENT_TICKS / AUDIO_TIMESCALE
        if live:
            # time is anchored to the wall clock when the first fragment arrived: its end is
            # "now", the rest follow at the encoder's own offsets
            first_rid, first_piece = order[0]
            shift_s = first[0].start_s - video_first_s
            anchored_end_unix_s = AST + shift_s + end_s(first_rid, first_piece)
            assert anchored_end_unix_s == pytest.approx(first_arrival, abs=2 / AUDIO_TIMESCALE)
        previous_end_s = timeline.timeline_end_s


def test_a_stream_created_just_before_its_first_fragment_is_not_published_late() -> None:
    """Encoder times as measured on a mid-GOP join (audio from 5.25 s, video from 5.80 s); the
    first audio fragment is done 0.6 s after the stream was created. The video is shown 0.55 s
    after the audio's start, on the clock that fragment anchored, not seconds later because
    media time was clamped at 0."""
    timeline = new_timeline(RENDITIONS)
    fragments = encoder_run(video_first_frame=174, audio_first_ticks=252_000)
    order = arrival_order(fragments, random.Random(1), audio_first=True)
    first_audio_end_s = end_s("audio", fragments["audio"][0])
    wall_start = AST + 0.6 - first_audio_end_s  # the encoder's time 0 on the wall clock
    committed, _ = run_epoch(timeline, order, wall_start_unix_s=wall_start)
    video = records(timeline, "720p")[committed[0]]
    assert video.program_date_time_unix_s == pytest.approx(wall_start + 5.80, abs=1e-4)
    assert video.start_s == pytest.approx(0.6 - first_audio_end_s + 5.80, abs=1e-4)


def test_a_negative_v1_tfdt_reads_negative_and_rebases_forward() -> None:
    piece = signed_fragment(-AAC_PRIMING_TICKS, AUDIO_FRAGMENT_TICKS, sync=True)
    assert fragment_info(piece.data).decode_time_ticks == -AAC_PRIMING_TICKS
    moved = rebase_fragment(piece.data, 48_000)
    assert fragment_info(moved).decode_time_ticks == 48_000 - AAC_PRIMING_TICKS
    with pytest.raises(BmffError, match="negative"):
        rebase_fragment(piece.data, AAC_PRIMING_TICKS - 1)


def test_an_encoder_run_that_ends_before_its_first_picture_publishes_nothing() -> None:
    """Audio came, the video never did (the encoder died waiting for a keyframe): no first
    picture to measure the audio against, nothing committed, and the next run goes on."""
    timeline = new_timeline(RENDITIONS)
    fragments = encoder_run(video_first_frame=45, audio_first_ticks=-AAC_PRIMING_TICKS)
    timeline.begin_epoch()
    for index, (rid, kind) in enumerate(RENDITIONS):
        timeline.on_init(rid, init_for(kind, index + 1))
    for piece in fragments["audio"][:3]:
        timeline.on_fragment("audio", piece, now_unix_s=AST + 1.0)
    assert timeline.end_epoch(now_unix_s=AST + 2.0).segments_committed == []
    committed, _ = run_epoch(
        timeline,
        arrival_order(fragments, random.Random(2), audio_first=True),
        wall_start_unix_s=AST + 10.0,
    )
    assert committed[0] == 0
