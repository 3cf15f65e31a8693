"""The MPD across a pause in the media (a publisher reconnecting, an encoder restarting).

Real FFmpeg fragments (tests/fixtures/bmff, via ``tests.unit.test_timeline``): one encoder run,
then the next one ``gap_s`` later on the wall clock, as a publisher killed and back.

What dash.js 5.2.1 needs (README, *Push ingest*): no gap inside a SegmentTimeline (it asks for
the segment at the previous one's end and nothing else, forever), a Period per encoder run that
starts where the media before it ended, and a time-shift depth that does not make it take the
pause for a broken clock.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from itertools import pairwise

import pytest

from actors.packager import publish
from actors.packager.timeline import PERIOD_START_BEFORE_MEDIA_END_S, StreamTimeline
from tests.unit.test_timeline import AST, make_timeline, publish_settings, run_epoch

NS = {"mpd": "urn:mpeg:dash:schema:mpd:2011"}
METAS = (
    publish.RenditionMeta(rendition_id="180p", kind="video", nominal_bandwidth_bps=400_000),
    publish.RenditionMeta(rendition_id="audio", kind="audio", nominal_bandwidth_bps=128_000),
)
FIRST_RUN_AT = AST + 5.0


def _seconds(duration: str) -> float:
    assert duration.startswith("PT"), duration
    assert duration.endswith("S"), duration
    return float(duration[2:-1])


def _mpd(timeline: StreamTimeline, now_unix_s: float, *, low_latency: bool = False) -> ET.Element:
    settings = publish_settings(0.34, low_latency=low_latency)
    text = publish.render_manifest(timeline, METAS, settings, now_unix_s=now_unix_s)
    assert text is not None
    return ET.fromstring(text)


def _timeline_ticks(template: ET.Element) -> list[tuple[int, int]]:
    """(start, duration) of every segment an ``<S>`` list describes."""
    out: list[tuple[int, int]] = []
    for s in template.findall("mpd:SegmentTimeline/mpd:S", NS):
        # an S without @t follows the one before; the LL MPD's open-ended last S (r="-1": one
        # segment after another until the next MPD) is counted once, as the next segment
        d = int(s.attrib["d"])
        t = int(s.attrib["t"]) if "t" in s.attrib else out[-1][0] + out[-1][1]
        out += [(t + k * d, d) for k in range(max(int(s.attrib.get("r", "0")), 0) + 1)]
    return out


def _reconnected(gap_s: float) -> tuple[StreamTimeline, float, float]:
    """Two encoder runs ``gap_s`` apart; (timeline, where the first run's shortest rendition
    ends, wall clock)."""
    timeline = make_timeline()
    run_epoch(timeline, FIRST_RUN_AT)
    last = [timeline.edge(rid).committed[-1] for rid in ("180p", "audio")]
    first_end_s = min(s.start_s + s.duration_s for s in last)
    second_run_at = FIRST_RUN_AT + 2.5 + gap_s  # the first run ended 2.5 s after it began
    run_epoch(timeline, second_run_at, end=False)
    return timeline, first_end_s, second_run_at + 2.0


@pytest.mark.parametrize("gap_s", [1.0, 9.0, 30.0, 120.0])
@pytest.mark.parametrize("low_latency", [False, True])
def test_the_next_run_opens_a_period_where_the_media_stopped(
    gap_s: float, low_latency: bool
) -> None:
    timeline, first_end_s, now_s = _reconnected(gap_s)
    mpd = _mpd(timeline, now_s, low_latency=low_latency)
    periods = mpd.findall("mpd:Period", NS)
    assert [p.attrib["id"] for p in periods] == ["p0", "p2"]
    second_start_s = _seconds(periods[1].attrib["start"])
    # a hair before the end of what a player has buffered of every rendition, so that dash.js,
    # stopped there, is at or past the old Period's end and never seeks into the pause
    assert second_start_s == pytest.approx(first_end_s - PERIOD_START_BEFORE_MEDIA_END_S, abs=1e-6)
    for period in periods:
        start_s = _seconds(period.attrib["start"])
        for template in period.findall(".//mpd:SegmentTemplate", NS):
            timescale = int(template.attrib["timescale"])
            assert int(template.attrib["presentationTimeOffset"]) == round(start_s * timescale)
            ticks = _timeline_ticks(template)
            # no gap inside a Period's timeline: dash.js would stop at it for good
            for (t, d), (next_t, _) in pairwise(ticks):
                assert next_t == t + d, (period.attrib["id"], ticks)
            # nothing of a Period before its start; the pause is at the new Period's start
            assert ticks[0][0] >= round(start_s * timescale)
    video = periods[1].find("mpd:AdaptationSet[@contentType='video']/mpd:SegmentTemplate", NS)
    assert video is not None
    first_t, _ = _timeline_ticks(video)[0]
    pause_s = first_t / int(video.attrib["timescale"]) - second_start_s
    assert gap_s <= pause_s < gap_s + 1.2  # the wall clock the new run is anchored to


def test_the_first_period_of_a_stream_starts_at_its_first_segment() -> None:
    timeline = make_timeline()
    run_epoch(timeline, FIRST_RUN_AT)
    (period,) = _mpd(timeline, FIRST_RUN_AT + 3.0).findall("mpd:Period", NS)
    first_starts_s = [
        _timeline_ticks(template)[0][0] / int(template.attrib["timescale"])
        for template in period.findall(".//mpd:SegmentTemplate", NS)
    ]
    assert _seconds(period.attrib["start"]) == pytest.approx(min(first_starts_s), abs=1e-6)


def test_an_interrupted_stream_says_its_segments_stay_available() -> None:
    timeline = make_timeline()
    run_epoch(timeline, FIRST_RUN_AT, end=False)
    assert _mpd(timeline, FIRST_RUN_AT + 2.0).attrib["timeShiftBufferDepth"] == "PT10S"
    ended = timeline.end_epoch(now_unix_s=FIRST_RUN_AT + 2.5)
    # the MPD changes even when the ended run had nothing left to commit, so a cached copy is
    # replaced (the origin renders a new one per live-edge version)
    assert ended.epoch_ended
    assert ended.anything
    assert timeline.media_interrupted
    # a minute later the newest segment is 60 s old: with a 10 s depth dash.js would take the
    # SegmentTimeline for a broken clock and never play the next run
    away = _mpd(timeline, FIRST_RUN_AT + 62.5)
    assert (
        _seconds(away.attrib["timeShiftBufferDepth"])
        == publish.DASH_INTERRUPTED_TIME_SHIFT_BUFFER_S
    )
    assert [p.attrib["id"] for p in away.findall("mpd:Period", NS)] == ["p0"]
    # the next run's first segment brings the listed window back
    run_epoch(timeline, FIRST_RUN_AT + 62.5, end=False)
    assert not timeline.media_interrupted
    back = _mpd(timeline, FIRST_RUN_AT + 65.0)
    assert back.attrib["timeShiftBufferDepth"] == "PT10S"
    assert [p.attrib["id"] for p in back.findall("mpd:Period", NS)] == ["p0", "p2"]


def test_a_stream_that_never_published_is_not_interrupted() -> None:
    timeline = make_timeline()
    timeline.begin_epoch()
    assert timeline.end_epoch(now_unix_s=FIRST_RUN_AT).epoch_ended
    assert not timeline.media_interrupted
