"""Keyframes that cannot sit exactly on the grid: 29.97 fps, and a WebRTC camera's variable rate.

FFmpeg forces an IDR on the first frame at or after each grid line (``expr:gte(t,n_forced*D)``),
so at 29.97 fps a 1 s segment is 30 frames = 1.001 s (29 = 0.968 s when the drift adds up), and a
browser camera's keyframe lands up to one (irregular) frame interval late. The timeline's length
cap was the target duration itself (1 s): such a segment was cut a part early without a keyframe
and from there on every segment started mid-GOP, renditions disagreed and segments were given up
(holes in the media: dash.js jumped them, issue 12's WHIP-to-dash.js test). Segments may be up to
``leader_cap_s`` long instead, which still keeps every EXTINF, audio's included, within the target.
"""

from __future__ import annotations

import itertools
import math
import random
import re

from hypothesis import given, settings
from hypothesis import strategies as st

from actors.packager import publish
from actors.packager.model import Fragment, SegmentRecord, TrackKind
from actors.packager.timeline import StreamTimeline
from tests.unit.test_timeline_grid import AST, fragment, init_for

SEGMENT_S = 1.0
PART_S = 0.5
VIDEO_TIMESCALE = 90_000
AUDIO_TIMESCALE = 48_000
AUDIO_FRAGMENT_TICKS = 23 * 1024  # what FFmpeg makes of -frag_duration 0.5 at 48 kHz: 0.4907 s
RENDITIONS: list[tuple[str, TrackKind]] = [("360p", "video"), ("240p", "video"), ("audio", "audio")]
SETTINGS = publish.PublishSettings(
    segment_duration_s=SEGMENT_S, playlist_size=1000, part_target_s=PART_S, low_latency=True
)


def video_fragments(frame_ticks: list[int]) -> list[Fragment]:
    """FFmpeg's fragments of frames starting at ``frame_ticks`` (the last one only ends the run):
    an IDR on the first frame at or after each grid line, a fragment at every IDR and whenever
    it reaches the part duration."""
    keyframes, line = set(), 0
    for index, ticks in enumerate(frame_ticks[:-1]):
        if ticks >= line * SEGMENT_S * VIDEO_TIMESCALE:
            keyframes.add(index)
            while ticks >= line * SEGMENT_S * VIDEO_TIMESCALE:
                line += 1
    out: list[Fragment] = []
    start = 0
    for index in range(1, len(frame_ticks)):
        closes = frame_ticks[index] - frame_ticks[start] >= PART_S * VIDEO_TIMESCALE
        if index == len(frame_ticks) - 1 or index in keyframes or closes:
            out.append(
                fragment(
                    frame_ticks[start],
                    frame_ticks[index] - frame_ticks[start],
                    sync=start in keyframes,
                )
            )
            start = index
    return out


def audio_fragments(total_s: float) -> list[Fragment]:
    count = math.ceil(total_s * AUDIO_TIMESCALE / AUDIO_FRAGMENT_TICKS)
    return [
        fragment(i * AUDIO_FRAGMENT_TICKS, AUDIO_FRAGMENT_TICKS, sync=True) for i in range(count)
    ]


def started_timeline() -> StreamTimeline:
    """A timeline for RENDITIONS (target duration 1, as publish plans it), its run begun."""
    timeline = StreamTimeline(
        renditions=RENDITIONS,
        segment_duration_s=SEGMENT_S,
        availability_start_unix_s=AST,
        retained_segments=1000,
        target_duration_s=publish.target_duration_s(SETTINGS),
    )
    timeline.begin_epoch()
    for index, (rid, kind) in enumerate(RENDITIONS):
        timeline.on_init(rid, init_for(kind, index + 1))
    return timeline


def publish_run(frame_ticks: list[int], seed: int, *, audio_first: bool = True) -> StreamTimeline:
    """One encoder run of two rungs (same frames, as FFmpeg's split gives them) and AAC audio,
    the pipes read in a random interleaving that keeps each pipe's order, none more than 3 s
    of media ahead of the slowest (they come from one FFmpeg)."""
    video = video_fragments(frame_ticks)
    pieces = {"360p": video, "240p": list(video), "audio": audio_fragments(frame_ticks[-1] / 90e3)}
    timeline = started_timeline()
    rng = random.Random(seed)
    positions = dict.fromkeys(pieces, 0)
    if audio_first:  # as FFmpeg's pipes deliver it: x264's lookahead holds the video back
        timeline.on_fragment("audio", pieces["audio"][0], now_unix_s=AST)
        positions["audio"] = 1

    def next_start_s(rid: str) -> float:
        timescale = AUDIO_TIMESCALE if rid == "audio" else VIDEO_TIMESCALE
        return pieces[rid][positions[rid]].decode_time_ticks / timescale

    while open_pipes := [rid for rid, at in positions.items() if at < len(pieces[rid])]:
        slowest_s = min(next_start_s(rid) for rid in open_pipes)
        rid = rng.choice([r for r in open_pipes if next_start_s(r) <= slowest_s + 3.0])
        timeline.on_fragment(rid, pieces[rid][positions[rid]], now_unix_s=AST)
        positions[rid] += 1
    timeline.end_epoch(now_unix_s=AST)
    return timeline


def assert_clean(
    timeline: StreamTimeline, frame_ticks: list[int], *, mid_gop_numbers: set[int] | None = None
) -> None:
    committed = {rid: list(timeline.edge(rid).committed) for rid, _ in RENDITIONS}
    numbers = [s.number for s in committed["360p"]]
    assert numbers == list(range(len(numbers)))
    assert timeline.segments_abandoned_total == 0
    for rid, kind in RENDITIONS:
        segments: list[SegmentRecord] = committed[rid]
        assert [s.number for s in segments] == numbers, rid
        for before, after in itertools.pairwise(segments):
            assert before.start_ticks + before.duration_ticks == after.start_ticks, (rid, after)
        if kind == "video":
            # every segment starts at a keyframe: independent, a player may join or switch there
            mid_gop = {s.number for s in segments if not s.parts[0].independent}
            assert mid_gop == (mid_gop_numbers or set()), [
                (s.number, s.duration_s) for s in segments if s.number in mid_gop
            ]
            assert sum(s.duration_ticks for s in segments) == frame_ticks[-1] - frame_ticks[0]
        text = publish.render_media_playlist(timeline, rid, SETTINGS)
        assert text is not None
        assert re.search(r"#EXT-X-TARGETDURATION:1\n", text)
        for extinf in re.findall(r"#EXTINF:([\d.]+),", text):
            # RFC 8216bis §4.4.3.1 with rounding half up: 1.5 would be a 2 under a target of 1
            assert math.floor(float(extinf) + 0.5) <= 1, (rid, extinf)


def test_29_97_fps_keeps_every_segment_on_a_keyframe() -> None:
    # 60 s at 30000/1001 fps, the timescale FFmpeg keeps for it
    frame_ticks = [round(i * 1001 * VIDEO_TIMESCALE / 30000) for i in range(1799)]
    for seed in range(5):
        timeline = publish_run(frame_ticks, seed)
        assert_clean(timeline, frame_ticks)
        durations = {round(s.duration_s, 3) for s in timeline.edge("360p").committed}
        assert durations <= {0.968, 1.001}, durations  # 29 or 30 frames, never a part
        assert timeline.leader_cap_s > 1.001


@settings(max_examples=60, deadline=None)
@given(
    intervals_ms=st.lists(st.integers(min_value=20, max_value=120), min_size=200, max_size=400),
    seed=st.integers(min_value=0, max_value=2**32 - 1),
)
def test_a_variable_frame_rate_camera_keeps_every_segment_on_a_keyframe(
    intervals_ms: list[int], seed: int
) -> None:
    # a WebRTC camera: frames 20-120 ms apart, as the browser sent them (no fps filter)
    frame_ticks = [0]
    for interval in intervals_ms:
        frame_ticks.append(frame_ticks[-1] + interval * 90)
    # the run ends on a grid line, as the audio does (a last keyframe with no audio after it
    # would be left out at the end of the run, as it should)
    end_ticks = frame_ticks[-1] // VIDEO_TIMESCALE * VIDEO_TIMESCALE
    frame_ticks = [t for t in frame_ticks if t < end_ticks] + [end_ticks]
    assert_clean(publish_run(frame_ticks, seed), frame_ticks)


def test_before_the_audio_is_known_a_cut_at_the_cap_realigns_at_the_next_keyframe() -> None:
    # video first: the cap is the target duration (1 s) until the AAC fragment length is known;
    # the 1.001 s segment is cut a part early, and the next keyframe (half a segment on) ends
    # that mid-GOP segment: one, not a cascade of them
    frame_ticks = [round(i * 1001 * VIDEO_TIMESCALE / 30000) for i in range(600)]
    video = video_fragments(frame_ticks)
    timeline = started_timeline()
    audio = audio_fragments(frame_ticks[-1] / 90e3)
    for piece in video[:2]:  # 0-1.001 s of both rungs before any audio
        for rid in ("360p", "240p"):
            timeline.on_fragment(rid, piece, now_unix_s=AST)
    # then in media-time order
    rest = [("audio", piece) for piece in audio] + [
        (rid, piece) for piece in video[2:] for rid in ("360p", "240p")
    ]
    timescales = {"audio": AUDIO_TIMESCALE, "360p": VIDEO_TIMESCALE, "240p": VIDEO_TIMESCALE}
    rest.sort(key=lambda item: item[1].decode_time_ticks / timescales[item[0]])
    for rid, piece in rest:
        timeline.on_fragment(rid, piece, now_unix_s=AST)
    timeline.end_epoch(now_unix_s=AST)
    assert_clean(timeline, frame_ticks, mid_gop_numbers={1})
    first = [round(s.duration_s, 4) for s in timeline.edge("360p").committed][:3]
    assert first == [0.5005, 0.5005, 1.001]


def test_the_cap_leaves_the_audio_within_the_target() -> None:
    timeline = publish_run([i * 3000 for i in range(301)], seed=0)  # 10 s at 30 fps
    fragment_s = AUDIO_FRAGMENT_TICKS / AUDIO_TIMESCALE
    # three AAC fragments (1.472 s) still round to 1; the video may take 2.5 of them
    assert timeline.leader_cap_s == 2.5 * fragment_s
    video_only = StreamTimeline(
        renditions=[("360p", "video")],
        segment_duration_s=SEGMENT_S,
        availability_start_unix_s=AST,
        retained_segments=10,
        target_duration_s=1,
    )
    assert video_only.leader_cap_s == 1.499
