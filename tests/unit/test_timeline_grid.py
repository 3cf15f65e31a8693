"""Numbering by media time, not by count: GOPs off the grid, irregular keyframes, any arrival order.

Synthetic CMAF fragments (hand-built moof+mdat, like FFmpeg's) so keyframe positions, fragment
lengths and the order in which the renditions' pipes deliver them can be chosen freely.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.packager import publish
from actors.packager.model import Fragment, InitSegment, SegmentRecord, TrackInfo, TrackKind
from actors.packager.timeline import StreamTimeline
from tests.unit.test_bmff import make_fragment

AST = 1_700_000_000.0
VIDEO_TIMESCALE = 90_000
AUDIO_TIMESCALE = 48_000
FRAME_TICKS = 3_000  # 30 fps
PART_FRAMES = 15  # FFmpeg's -frag_duration 0.5: a part closes every 15 frames, and at every IDR
AUDIO_FRAGMENT_TICKS = 23 * 1024  # 23 AAC frames = 0.4907 s
SEGMENT_S = 2.0
BARRIER_LIMIT = 4


def init_for(kind: TrackKind, track_id: int) -> InitSegment:
    timescale = VIDEO_TIMESCALE if kind == "video" else AUDIO_TIMESCALE
    track = TrackInfo(track_id=track_id, kind=kind, timescale=timescale, codec="x")
    return InitSegment(data=f"init-{kind}-{track_id}".encode(), track=track)


def fragment(start_ticks: int, duration_ticks: int, *, sync: bool) -> Fragment:
    return Fragment(
        data=make_fragment(base_time=start_ticks, durations=(duration_ticks,)),
        track_id=1,
        decode_time_ticks=start_ticks,
        duration_ticks=duration_ticks,
        sample_count=1,
        starts_with_sync=sync,
    )


def video_fragments(keyframe_frames: Sequence[int], total_frames: int) -> list[Fragment]:
    """Fragments of a video whose IDRs are at ``keyframe_frames``: one at every IDR, else 15 frames."""
    keys = sorted({0, *(k for k in keyframe_frames if 0 < k < total_frames)})
    out: list[Fragment] = []
    for gop_index, start in enumerate(keys):
        end = keys[gop_index + 1] if gop_index + 1 < len(keys) else total_frames
        for part_start in range(start, end, PART_FRAMES):
            frames = min(PART_FRAMES, end - part_start)
            out.append(
                fragment(part_start * FRAME_TICKS, frames * FRAME_TICKS, sync=part_start == start)
            )
    return out


def audio_fragments(total_s: float) -> list[Fragment]:
    count = math.ceil(total_s * AUDIO_TIMESCALE / AUDIO_FRAGMENT_TICKS)
    return [
        fragment(i * AUDIO_FRAGMENT_TICKS, AUDIO_FRAGMENT_TICKS, sync=True) for i in range(count)
    ]


def keyframes_every(interval_s: float, total_s: float) -> list[int]:
    step = round(interval_s * 30)
    return list(range(0, round(total_s * 30), step))


@dataclass
class Feed:
    """One encoder run: each rendition's fragments in pipe order, delivered interleaved."""

    renditions: list[tuple[str, TrackKind]]
    fragments: dict[str, list[Fragment]]

    def interleave(
        self, rng: random.Random, max_lead_s: float = 3.0
    ) -> Iterator[tuple[str, Fragment]]:
        """Any order that keeps each pipe's own order (pipes are read concurrently).

        One pipe runs at most ``max_lead_s`` of media ahead of the slowest (FFmpeg's outputs
        come from one process; further apart, the timeline's hold-back limit drops media).
        """
        positions = dict.fromkeys(self.fragments, 0)

        def next_start_s(rid: str) -> float:
            piece = self.fragments[rid][positions[rid]]
            return piece.decode_time_ticks / (
                AUDIO_TIMESCALE if rid == "audio" else VIDEO_TIMESCALE
            )

        while True:
            open_pipes = [r for r, i in positions.items() if i < len(self.fragments[r])]
            if not open_pipes:
                return
            slowest_s = min(next_start_s(r) for r in open_pipes)
            rid = rng.choice([r for r in open_pipes if next_start_s(r) <= slowest_s + max_lead_s])
            yield rid, self.fragments[rid][positions[rid]]
            positions[rid] += 1


def publish_settings(*, passthrough: bool) -> publish.PublishSettings:
    return publish.PublishSettings(
        segment_duration_s=SEGMENT_S,
        playlist_size=1000,
        part_target_s=0.5,
        low_latency=False,
        passthrough_video=passthrough,
    )


PASSTHROUGH = publish_settings(passthrough=True)


def new_timeline(
    renditions: list[tuple[str, TrackKind]], *, target_duration_s: float = math.inf
) -> StreamTimeline:
    return StreamTimeline(
        renditions=renditions,
        segment_duration_s=SEGMENT_S,
        availability_start_unix_s=AST,
        retained_segments=1000,
        barrier_limit_segments=BARRIER_LIMIT,
        target_duration_s=target_duration_s,
    )


def run(timeline: StreamTimeline, feed: Feed, order: Iterator[tuple[str, Fragment]]) -> list[int]:
    """Feed one epoch; returns the committed numbers, checking the barrier stays bounded."""
    timeline.begin_epoch()
    for index, (rid, kind) in enumerate(feed.renditions):
        timeline.on_init(rid, init_for(kind, index + 1))
    committed: list[int] = []
    bound = len(feed.renditions) * (BARRIER_LIMIT + 1)
    for rid, piece in order:
        committed += timeline.on_fragment(rid, piece, now_unix_s=AST).segments_committed
        assert timeline.waiting_segments() <= bound
    committed += timeline.end_epoch(now_unix_s=AST).segments_committed
    return committed


def extinf_within_target(
    timeline: StreamTimeline, rid: str, *, passthrough: bool = False
) -> None:
    text = publish.render_media_playlist(timeline, rid, publish_settings(passthrough=passthrough))
    assert text is not None
    target = int(re.search(r"#EXT-X-TARGETDURATION:(\d+)", text).group(1))  # type: ignore[union-attr]
    for extinf in re.findall(r"#EXTINF:([\d.]+),", text):
        # RFC 8216 §4.3.3.1, rounding half up (Python's round() would let 2.5 pass under 2)
        assert math.floor(float(extinf) + 0.5) <= target, (extinf, target)


def segments_by_number(timeline: StreamTimeline, rid: str) -> dict[int, SegmentRecord]:
    return {s.number: s for s in timeline.edge(rid).committed}


def passthrough_feed(*, gop_s: float, total_s: float) -> Feed:
    """A copied video with a keyframe every ``gop_s`` and its AAC audio."""
    return Feed(
        renditions=[("source", "video"), ("audio", "audio")],
        fragments={
            "source": video_fragments(keyframes_every(gop_s, total_s), round(total_s * 30)),
            "audio": audio_fragments(total_s),
        },
    )


def test_a_passthrough_gop_of_2_5_s_gives_equal_numbers_for_equal_media() -> None:
    # the defect: counted per rendition, audio (cut every 2 s) ran ahead of video (cut at its
    # 2.5 s keyframes): audio n and video n drifted apart and the barrier's backlog grew forever
    total_s = 60.0
    feed = passthrough_feed(gop_s=2.5, total_s=total_s)
    timeline = new_timeline(feed.renditions)
    # the audio pipe delivers well ahead of the video pipe, as FFmpeg's AAC encoder does
    order = sorted(
        ((rid, f) for rid, frags in feed.fragments.items() for f in frags),
        key=lambda e: (
            e[1].decode_time_ticks / (VIDEO_TIMESCALE if e[0] == "source" else 48_000)
            - (3.0 if e[0] == "audio" else 0.0)
        ),
    )
    committed = run(timeline, feed, iter(order))
    assert committed == list(range(24))  # 60 s of 2.5 s segments
    video = segments_by_number(timeline, "source")
    audio = segments_by_number(timeline, "audio")
    assert video.keys() == audio.keys()
    for number, segment in video.items():
        assert segment.duration_s == 2.5
        # audio cut at its fragment nearest each video cut: within half an AAC fragment
        assert abs(audio[number].start_s - segment.start_s) <= 0.25
    assert timeline.segments_abandoned_total == 0
    # audio segments are whole AAC fragments: up to one fragment longer than the video's
    assert 2.5 < timeline.longest_segment_s <= 2.5 + AUDIO_FRAGMENT_TICKS / AUDIO_TIMESCALE
    for rid in ("source", "audio"):
        extinf_within_target(timeline, rid, passthrough=True)
    # planned up front for a copied video: twice the segment duration, whatever the GOP
    assert publish.target_duration_s(PASSTHROUGH) == 4


def test_keyframes_further_apart_than_the_target_allows_are_cut_without_one() -> None:
    """Review finding: the target duration grew to the longest segment seen, once, mid-stream
    (RFC 8216bis §6.2.1: it MUST NOT change). It is planned up front (4 for a copied video on a
    2 s grid) and a segment is cut before its EXTINF would round above it, keyframe or not."""
    total_s = 60.0
    feed = passthrough_feed(gop_s=6.0, total_s=total_s)
    timeline = new_timeline(
        feed.renditions, target_duration_s=publish.target_duration_s(PASSTHROUGH)
    )
    order = sorted(
        ((rid, f) for rid, frags in feed.fragments.items() for f in frags),
        key=lambda e: e[1].decode_time_ticks
        / (VIDEO_TIMESCALE if e[0] == "source" else AUDIO_TIMESCALE),
    )
    targets = set()
    timeline.begin_epoch()
    for index, (rid, kind) in enumerate(feed.renditions):
        timeline.on_init(rid, init_for(kind, index + 1))
    for rid, piece in order:
        timeline.on_fragment(rid, piece, now_unix_s=AST)
        text = publish.render_media_playlist(timeline, "source", PASSTHROUGH)
        if text is not None:
            targets.update(re.findall(r"#EXT-X-TARGETDURATION:(\d+)", text))
            assert "#EXT-X-INDEPENDENT-SEGMENTS" not in text  # a segment may start mid-GOP
    timeline.end_epoch(now_unix_s=AST)
    assert targets == {"4"}  # the same from the first playlist to the last
    video = segments_by_number(timeline, "source")
    audio = segments_by_number(timeline, "audio")
    assert video.keys() == audio.keys()
    assert list(video) == list(range(len(video)))
    assert max(s.duration_s for s in video.values()) <= timeline.leader_cap_s
    # 6 s GOPs: a cut at the cap (no keyframe there), then one at the next keyframe
    assert any(not s.parts[0].independent for s in video.values())
    assert sum(s.duration_s for s in video.values()) == pytest.approx(total_s)
    for rid in ("source", "audio"):
        extinf_within_target(timeline, rid, passthrough=True)


gops = st.lists(st.integers(min_value=10, max_value=150), min_size=1, max_size=40)  # frames


@settings(max_examples=150, deadline=None)
@given(
    gop_frames=gops,
    video_rungs=st.integers(min_value=1, max_value=3),
    with_audio=st.booleans(),
    seed=st.integers(min_value=0, max_value=2**32 - 1),
)
def test_numbers_agree_by_media_time_in_any_arrival_order(
    gop_frames: list[int], video_rungs: int, with_audio: bool, seed: int
) -> None:
    keyframes = [sum(gop_frames[:i]) for i in range(len(gop_frames))]
    total_frames = sum(gop_frames)
    renditions: list[tuple[str, TrackKind]] = [(f"v{i}", "video") for i in range(video_rungs)]
    fragments = {rid: video_fragments(keyframes, total_frames) for rid, _ in renditions}
    if with_audio:
        renditions.append(("audio", "audio"))
        fragments["audio"] = audio_fragments(total_frames / 30)
    feed = Feed(renditions, fragments)
    # copied video: the source's keyframes
    timeline = new_timeline(renditions, target_duration_s=publish.target_duration_s(PASSTHROUGH))
    committed = run(timeline, feed, feed.interleave(random.Random(seed)))

    assert committed == list(range(len(committed)))  # contiguous, strictly increasing
    assert timeline.segments_abandoned_total == 0  # renditions with one GOP structure all agree
    leader = segments_by_number(timeline, "v0")
    for rid, _kind in renditions:
        mine = segments_by_number(timeline, rid)
        assert sorted(mine) == committed
        for number, segment in mine.items():
            if rid.startswith("v"):
                assert segment.start_ticks == leader[number].start_ticks
                assert segment.duration_ticks == leader[number].duration_ticks
            else:  # within half an AAC fragment of the video cut, a whole one after a very
                # short video segment (which holds no audio fragment's midpoint)
                assert abs(segment.start_s - leader[number].start_s) <= 0.4907
        extinf_within_target(timeline, rid, passthrough=True)
    assert timeline.fragments_dropped_total == 0
    # every segment starts at a keyframe — unless the one before it reached the cap — and no
    # two in the same grid slot
    cap_s = timeline.leader_cap_s
    keyframe_ticks = {k * FRAME_TICKS for k in keyframes}
    starts = [s.start_ticks - leader[0].start_ticks for s in leader.values()]
    durations = [s.duration_s for s in leader.values()]
    part_s = PART_FRAMES / 30
    for index, start in enumerate(starts):
        assert start in keyframe_ticks or durations[index - 1] > cap_s - part_s - 1e-6, (
            index,
            start,
            durations,
        )
    assert max(durations) <= cap_s
    slots = [
        # the cut rule's tolerance: half the first part, at most a quarter slot
        math.floor(
            (t / VIDEO_TIMESCALE + min(s.parts[0].duration_s / 2, SEGMENT_S / 4)) / SEGMENT_S
        )
        for t, s in zip(starts, leader.values(), strict=True)
    ]
    # one segment per slot, except that a keyframe ends a segment cut at the cap (mid-GOP) as
    # soon as it is half a segment long, in whichever slot (test_timeline_late_keyframes)
    segments = list(leader.values())
    for index in range(1, len(slots)):
        assert slots[index] > slots[index - 1] or not segments[index - 1].parts[0].independent


@settings(max_examples=100, deadline=None)
@given(
    late_frames=st.lists(st.integers(min_value=0, max_value=90), min_size=30, max_size=30),
    seed=st.integers(min_value=0, max_value=2**32 - 1),
)
def test_a_rung_whose_keyframes_land_late_keeps_the_numbers_of_the_leader(
    late_frames: list[int], seed: int
) -> None:
    # the leader has IDRs on the grid; the other rung's IDR for grid line k comes up to 3 s late
    # (sometimes past the next line: then it has no segment k and k is given up everywhere)
    total_frames = 60 * 30
    on_grid = keyframes_every(SEGMENT_S, total_frames / 30)
    late = [k + late_frames[i] for i, k in enumerate(on_grid)]
    renditions: list[tuple[str, TrackKind]] = [("v0", "video"), ("v1", "video"), ("audio", "audio")]
    feed = Feed(
        renditions,
        {
            "v0": video_fragments(on_grid, total_frames),
            "v1": video_fragments(late, total_frames),
            "audio": audio_fragments(total_frames / 30),
        },
    )
    timeline = new_timeline(renditions)
    committed = run(timeline, feed, feed.interleave(random.Random(seed)))
    assert committed == list(range(len(committed)))
    leader = segments_by_number(timeline, "v0")
    follower = segments_by_number(timeline, "v1")
    assert sorted(follower) == sorted(leader) == committed
    for number, segment in follower.items():
        # a late keyframe opens the leader segment its fragment's midpoint lands in: the same
        # media, starting at most half a part before it
        lead = leader[number]
        half_part_ticks = PART_FRAMES * FRAME_TICKS // 2
        assert lead.start_ticks - half_part_ticks <= segment.start_ticks
        assert segment.start_ticks < lead.start_ticks + lead.duration_ticks
    # every grid line whose late keyframe's first part still has its midpoint inside the leader
    # segment (late + at most half a part < 60 frames) was kept
    kept = 1 + sum(1 for i in range(1, len(on_grid)) if late_frames[i] + PART_FRAMES / 2 < 60)
    assert len(committed) >= kept


def test_a_stalled_rendition_keeps_the_barrier_bounded_and_numbers_contiguous() -> None:
    total_s = 40.0
    renditions: list[tuple[str, TrackKind]] = [("v0", "video"), ("v1", "video"), ("audio", "audio")]
    frames = round(total_s * 30)
    all_fragments = {
        "v0": video_fragments(keyframes_every(2.0, total_s), frames),
        "v1": video_fragments(keyframes_every(2.0, total_s), frames),
        "audio": audio_fragments(total_s),
    }
    timeline = new_timeline(renditions)
    timeline.begin_epoch()
    for index, (rid, kind) in enumerate(renditions):
        timeline.on_init(rid, init_for(kind, index + 1))

    abandoned = 0

    def deliver(rid: str, from_s: float, to_s: float) -> list[int]:
        nonlocal abandoned
        committed: list[int] = []
        timescale = AUDIO_TIMESCALE if rid == "audio" else VIDEO_TIMESCALE
        for piece in all_fragments[rid]:
            if from_s <= piece.decode_time_ticks / timescale < to_s:
                changes = timeline.on_fragment(rid, piece, now_unix_s=AST)
                committed += changes.segments_committed
                abandoned += changes.segments_abandoned
        return committed

    committed: list[int] = []
    for rid in ("v0", "v1", "audio"):
        committed += deliver(rid, 0.0, 6.0)
    assert committed == [0, 1]
    # v1's pipe stalls at 6 s while the others deliver 30 s more
    for rid in ("v0", "audio"):
        committed += deliver(rid, 6.0, 36.0)
        assert timeline.waiting_segments() <= 2 * (BARRIER_LIMIT + 1) + 1
    assert committed == [0, 1]  # nothing can be published without v1…
    assert timeline.segments_abandoned_total > 0  # …and what v1 never delivered was given up
    assert abandoned == timeline.segments_abandoned_total  # each one reported as a change
    # v1 catches up: its old segments are behind the barrier; the next common one is number 2
    committed += deliver("v1", 6.0, 40.0)
    for rid in ("v0", "audio"):
        committed += deliver(rid, 36.0, 40.0)
    committed += timeline.end_epoch(now_unix_s=AST).segments_committed
    assert committed == list(range(len(committed)))
    assert len(committed) > 2
    starts = {rid: segments_by_number(timeline, rid)[2].start_ticks for rid in ("v0", "v1")}
    assert starts["v0"] == starts["v1"]  # number 2 is the same media in both rungs
    # the oldest of the BARRIER_LIMIT finished segments the others kept waiting (34 s was growing)
    assert segments_by_number(timeline, "v0")[2].start_s == 34.0 - SEGMENT_S * BARRIER_LIMIT


def test_followers_hold_back_no_more_than_the_limit_for_a_silent_leader() -> None:
    renditions: list[tuple[str, TrackKind]] = [("v0", "video"), ("audio", "audio")]
    timeline = new_timeline(renditions)
    timeline.begin_epoch()
    timeline.on_init("v0", init_for("video", 1))
    timeline.on_init("audio", init_for("audio", 2))
    for piece in audio_fragments(60.0):
        timeline.on_fragment("audio", piece, now_unix_s=AST)
    held_s = timeline.held_fragments() * AUDIO_FRAGMENT_TICKS / AUDIO_TIMESCALE
    assert held_s <= BARRIER_LIMIT * SEGMENT_S
    assert timeline.fragments_dropped_total > 0
    assert timeline.edge("audio").partial is None  # nothing is published ahead of its cut
