"""DASH writer: MPD attributes via ElementTree, SegmentTimeline run-length, periods, LL-DASH."""

from __future__ import annotations

import itertools
import xml.etree.ElementTree as ET
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.packager.dash import (
    AUDIO_CHANNEL_SCHEME,
    PROFILE_CMAF,
    PROFILE_LIVE,
    PROFILE_LOW_LATENCY,
    UTC_TIMING_SCHEME,
    DashManifestInput,
    DashPeriod,
    DashRepresentation,
    LowLatencyDash,
    build_timeline,
    format_duration,
    render_mpd,
    split_periods,
)
from actors.packager.hls import format_iso8601_ms
from actors.packager.layout import segment_file_name
from actors.packager.model import SegmentRecord

NS = {"d": "urn:mpeg:dash:schema:mpd:2011"}
VIDEO_TS = 90_000
AUDIO_TS = 48_000
AST = 1_700_000_000.0
UTC_URL = 'https://origin.example/time?x=1&y="2"'
LL = LowLatencyDash(
    availability_time_offset_s=1.5,
    target_latency_ms=3000,
    min_latency_ms=2000,
    max_latency_ms=6000,
    min_playback_rate=0.96,
    max_playback_rate=1.04,
)


def make_segments(
    first: int,
    count: int,
    *,
    timescale: int,
    seg_ticks: int,
    init: str = "init_0.mp4",
    start_ticks: int | None = None,
) -> tuple[SegmentRecord, ...]:
    start = first * seg_ticks if start_ticks is None else start_ticks
    out = []
    for i in range(count):
        out.append(
            SegmentRecord(
                number=first + i,
                start_ticks=start,
                duration_ticks=seg_ticks,
                timescale=timescale,
                program_date_time_unix_s=AST + start / timescale,
                byte_length=1000,
                epoch=0,
                init_name=init,
            )
        )
        start += seg_ticks
    return tuple(out)


def video_rep(rep_id: str, segs: tuple[SegmentRecord, ...], **kw: object) -> DashRepresentation:
    height = int(rep_id.rstrip("p"))
    base = DashRepresentation(
        rep_id=rep_id,
        bandwidth_bps=height * 4000,
        codecs="avc1.64001f",
        kind="video",
        timescale=VIDEO_TS,
        segments=segs,
        width=height * 16 // 9,
        height=height,
        frame_rate=30.0,
    )
    return replace(base, **kw)  # type: ignore[arg-type]


def audio_rep(segs: tuple[SegmentRecord, ...], **kw: object) -> DashRepresentation:
    base = DashRepresentation(
        rep_id="audio",
        bandwidth_bps=128_000,
        codecs="mp4a.40.2",
        kind="audio",
        timescale=AUDIO_TS,
        segments=segs,
        sample_rate=48_000,
        channels=2,
        language="en",
    )
    return replace(base, **kw)  # type: ignore[arg-type]


def manifest(periods: tuple[DashPeriod, ...], **kw: object) -> DashManifestInput:
    base = DashManifestInput(
        availability_start_unix_s=AST,
        publish_time_unix_s=AST + 30.25,
        min_buffer_time_s=2.0,
        time_shift_buffer_depth_s=30.0,
        max_segment_duration_s=2.0,
        minimum_update_period_s=2.0,
        suggested_presentation_delay_s=6.0,
        utc_timing_url=UTC_URL,
        periods=periods,
    )
    return replace(base, **kw)  # type: ignore[arg-type]


def single_period(*reps: DashRepresentation) -> tuple[DashPeriod, ...]:
    return (DashPeriod(period_id="p0", start_s=0.0, representations=reps),)


def one_period(*, partial: bool = False) -> tuple[DashPeriod, ...]:
    vsegs = make_segments(5, 6, timescale=VIDEO_TS, seg_ticks=180_000)
    asegs = make_segments(5, 6, timescale=AUDIO_TS, seg_ticks=96_000)
    reps: tuple[DashRepresentation, ...] = (
        video_rep("720p", vsegs),
        video_rep("360p", vsegs),
        audio_rep(asegs),
    )
    if partial:
        reps = tuple(
            replace(
                r,
                partial_segment=replace(
                    r.segments[-1],
                    number=11,
                    start_ticks=r.segments[-1].start_ticks + r.segments[-1].duration_ticks,
                ),
            )
            for r in reps
        )
    return single_period(*reps)


def parse(text: str) -> ET.Element:
    assert text.startswith('<?xml version="1.0" encoding="UTF-8"?>\n')
    root = ET.fromstring(text)
    assert root.tag == "{urn:mpeg:dash:schema:mpd:2011}MPD"
    return root


def expand(template: ET.Element) -> list[tuple[int, int, int]]:
    """(number, t, d) for every segment a SegmentTemplate+SegmentTimeline lists.

    An open-ended last ``<S r="-1">`` (segments to come, see ``test_ll_timeline_is_open_ended``)
    lists none.
    """
    number = int(template.get("startNumber", "1"))
    out: list[tuple[int, int, int]] = []
    t = 0
    for s in template.findall("d:SegmentTimeline/d:S", NS):
        if "t" in s.attrib:
            t = int(s.attrib["t"])
        d = int(s.attrib["d"])
        for _ in range(int(s.get("r", "0")) + 1):
            out.append((number, t, d))
            number += 1
            t += d
    return out


# ---------------------------------------------------------------------------------------------


def test_format_duration() -> None:
    assert format_duration(2.0) == "PT2S"
    assert format_duration(0.5) == "PT0.5S"
    assert format_duration(1 / 3) == "PT0.333333S"
    with pytest.raises(ValueError):
        format_duration(-1.0)


def test_dynamic_mpd_top_level_attributes() -> None:
    root = parse(render_mpd(manifest(one_period())))
    a = root.attrib
    assert a["type"] == "dynamic"
    assert a["profiles"].split(",") == [PROFILE_LIVE, PROFILE_CMAF]
    assert a["availabilityStartTime"] == "2023-11-14T22:13:20.000Z"
    assert a["publishTime"] == "2023-11-14T22:13:50.250Z"
    assert a["minimumUpdatePeriod"] == "PT2S"
    assert a["timeShiftBufferDepth"] == "PT30S"
    assert a["maxSegmentDuration"] == "PT2S"
    assert a["suggestedPresentationDelay"] == "PT6S"
    assert a["minBufferTime"] == "PT2S"
    assert "mediaPresentationDuration" not in a
    timing = root.findall("d:UTCTiming", NS)
    assert len(timing) == 1
    # The quote and ampersand went through attribute escaping and come back intact.
    assert timing[0].attrib == {"schemeIdUri": UTC_TIMING_SCHEME, "value": UTC_URL}
    assert root.find("d:ServiceDescription", NS) is None
    # XSD order: UTCTiming after the Periods.
    assert [child.tag.split("}")[1] for child in root] == ["Period", "UTCTiming"]


def test_adaptation_sets_representations_and_template() -> None:
    root = parse(render_mpd(manifest(one_period())))
    period = root.find("d:Period", NS)
    assert period is not None
    assert period.attrib == {"id": "p0", "start": "PT0S"}
    video, audio = period.findall("d:AdaptationSet", NS)
    assert video.attrib == {
        "id": "0",
        "contentType": "video",
        "mimeType": "video/mp4",
        "segmentAlignment": "true",
        "startWithSAP": "1",
        "maxWidth": "1280",
        "maxHeight": "720",
    }
    assert audio.attrib["contentType"] == "audio"
    assert audio.attrib["mimeType"] == "audio/mp4"
    assert audio.attrib["lang"] == "en"

    template = video.find("d:SegmentTemplate", NS)
    assert template is not None
    assert template.attrib == {
        "media": "$RepresentationID$/seg_$Number$.m4s",
        "initialization": "$RepresentationID$/init_0.mp4",
        "timescale": "90000",
        "startNumber": "5",
        "presentationTimeOffset": "0",
    }
    assert [s.attrib for s in template.findall("d:SegmentTimeline/d:S", NS)] == [
        {"t": "900000", "d": "180000", "r": "5"}
    ]
    # Shared timeline: no per-Representation template.
    reps = video.findall("d:Representation", NS)
    assert [r.find("d:SegmentTemplate", NS) for r in reps] == [None, None]
    assert reps[0].attrib == {
        "id": "720p",
        "bandwidth": "2880000",
        "codecs": "avc1.64001f",
        "width": "1280",
        "height": "720",
        "frameRate": "30",
        "sar": "1:1",
    }
    (arep,) = audio.findall("d:Representation", NS)
    assert arep.attrib == {
        "id": "audio",
        "bandwidth": "128000",
        "codecs": "mp4a.40.2",
        "audioSamplingRate": "48000",
    }
    channel = arep.find("d:AudioChannelConfiguration", NS)
    assert channel is not None
    assert channel.attrib == {"schemeIdUri": AUDIO_CHANNEL_SCHEME, "value": "2"}
    atemplate = audio.find("d:SegmentTemplate", NS)
    assert atemplate is not None
    assert atemplate.attrib["timescale"] == "48000"
    assert expand(atemplate)[0] == (5, 480_000, 96_000)


def test_template_names_match_the_hls_files() -> None:
    """DASH Number k is the HLS MSN k file, and the init path is the rendition's init file."""
    root = parse(render_mpd(manifest(one_period())))
    for aset in root.iterfind("d:Period/d:AdaptationSet", NS):
        template = aset.find("d:SegmentTemplate", NS)
        assert template is not None
        for rep in aset.findall("d:Representation", NS):
            rep_id = rep.attrib["id"]
            for number, _, _ in expand(template):
                media = template.attrib["media"].replace("$RepresentationID$", rep_id)
                assert media.replace("$Number$", str(number)) == (
                    f"{rep_id}/{segment_file_name(number)}"
                )
            init = template.attrib["initialization"].replace("$RepresentationID$", rep_id)
            assert init == f"{rep_id}/init_0.mp4"


def test_differing_video_timelines_get_per_representation_templates() -> None:
    vsegs = make_segments(5, 4, timescale=VIDEO_TS, seg_ticks=180_000)
    odd = make_segments(5, 4, timescale=VIDEO_TS, seg_ticks=180_000, start_ticks=900_300)
    root = parse(
        render_mpd(manifest(single_period(video_rep("720p", vsegs), video_rep("480p", odd))))
    )
    aset = root.find("d:Period/d:AdaptationSet", NS)
    assert aset is not None
    assert aset.find("d:SegmentTemplate", NS) is None
    starts = []
    for rep in aset.findall("d:Representation", NS):
        template = rep.find("d:SegmentTemplate", NS)
        assert template is not None
        starts.append(expand(template)[0][1])
    assert starts == [900_000, 900_300]


def test_fractional_frame_rate() -> None:
    segs = make_segments(0, 2, timescale=VIDEO_TS, seg_ticks=180_000)
    period = single_period(video_rep("720p", segs, frame_rate=30000 / 1001))
    rep = parse(render_mpd(manifest(period))).find("d:Period/d:AdaptationSet/d:Representation", NS)
    assert rep is not None
    assert rep.attrib["frameRate"] == "30000/1001"


def test_low_latency_elements() -> None:
    periods = one_period(partial=True)
    root = parse(render_mpd(manifest(periods, low_latency=LL)))
    assert root.attrib["profiles"].split(",") == [PROFILE_LIVE, PROFILE_CMAF, PROFILE_LOW_LATENCY]
    # XSD order: ServiceDescription before Period.
    assert [child.tag.split("}")[1] for child in root] == [
        "ServiceDescription",
        "Period",
        "UTCTiming",
    ]
    service = root.find("d:ServiceDescription", NS)
    assert service is not None
    assert service.attrib == {"id": "0"}
    latency = service.find("d:Latency", NS)
    rate = service.find("d:PlaybackRate", NS)
    assert latency is not None
    assert rate is not None
    assert latency.attrib == {"target": "3000", "min": "2000", "max": "6000", "referenceId": "0"}
    assert rate.attrib == {"min": "0.96", "max": "1.04"}

    mpd_timing = root.find("d:UTCTiming", NS)
    assert mpd_timing is not None
    for aset, rep in zip(
        root.iterfind("d:Period/d:AdaptationSet", NS),
        (periods[0].representations[0], periods[0].representations[2]),
        strict=True,
    ):
        children = [c.tag.split("}")[1] for c in aset]
        assert children.index("ProducerReferenceTime") < children.index("SegmentTemplate")
        prt = aset.find("d:ProducerReferenceTime", NS)
        assert prt is not None
        assert prt.attrib["id"] == "0"
        assert prt.attrib["type"] == "encoder"
        assert prt.attrib["presentationTime"] == "0"
        # Media time 0 is at AST in these fixtures.
        assert prt.attrib["wallClockTime"] == format_iso8601_ms(AST)
        prt_timing = prt.find("d:UTCTiming", NS)
        assert prt_timing is not None
        assert prt_timing.attrib == mpd_timing.attrib

        template = aset.find("d:SegmentTemplate", NS)
        assert template is not None
        assert template.attrib["availabilityTimeOffset"] == "1.5"
        assert template.attrib["availabilityTimeComplete"] == "false"
        # The growing segment is listed with its nominal duration, and the next one after it.
        listed = expand(template)
        assert len(listed) == 8
        partial = rep.partial_segment
        assert partial is not None
        assert listed[-2] == (11, partial.start_ticks, partial.duration_ticks)
        next_start = partial.start_ticks + partial.duration_ticks
        assert listed[-1] == (12, next_start, partial.duration_ticks)


def open_ended(template: ET.Element) -> list[dict[str, str]]:
    """The attributes of the S elements with a negative repeat count."""
    return [
        dict(s.attrib)
        for s in template.findall("d:SegmentTimeline/d:S", NS)
        if int(s.get("r", "0")) < 0
    ]


def test_ll_timeline_announces_the_next_segment_and_is_open_ended() -> None:
    """After the growing segment: the next one, then a last ``<S d=nominal r="-1">`` for the rest.

    Players learn of a segment only from the timeline, and the packager lists one only after every
    rendition finished the one before (0.35-1.45 s after it began). dash.js, hearing of each from
    its next MPD reload (≥ 1 s apart), asked up to 1.3 s late and stalled whenever that passed its
    buffer; Shaka asked up to 1.45 s late and stalled. With the next segment announced they ask
    as soon as the one before is complete; with the open-ended S dash.js also asks for later ones
    when their availability time (nominal end − ATO) comes. Shaka ignores a last S with a negative
    repeat (so it counts for nothing in ``expand``).
    """
    periods = one_period(partial=True)
    root = parse(render_mpd(manifest(periods, low_latency=LL)))
    templates = root.findall("d:Period/d:AdaptationSet/d:SegmentTemplate", NS)
    assert len(templates) == 2
    for template, rep in zip(
        templates, (periods[0].representations[0], periods[0].representations[2]), strict=True
    ):
        last = template.findall("d:SegmentTimeline/d:S", NS)[-1]
        partial = rep.partial_segment
        assert partial is not None
        # no t: it starts where the announced segment's nominal duration ends
        assert last.attrib == {"d": str(partial.duration_ticks), "r": "-1"}
        assert open_ended(template) == [last.attrib]
        next_start = partial.start_ticks + partial.duration_ticks
        assert expand(template)[-2:] == [
            (11, partial.start_ticks, partial.duration_ticks),
            (12, next_start, partial.duration_ticks),
        ]


@pytest.mark.parametrize(
    ("partial", "ended", "low_latency"),
    [(True, True, LL), (True, False, None), (False, False, LL)],
)
def test_timeline_is_closed_unless_a_segment_grows_in_low_latency(
    partial: bool, ended: bool, low_latency: LowLatencyDash | None
) -> None:
    """Plain DASH, an ended stream, or nothing growing: every S is a listed segment."""
    root = parse(
        render_mpd(manifest(one_period(partial=partial), ended=ended, low_latency=low_latency))
    )
    templates = root.findall("d:Period/d:AdaptationSet/d:SegmentTemplate", NS)
    assert templates
    for template in templates:
        assert open_ended(template) == []


@pytest.mark.parametrize(("ended", "low_latency"), [(True, LL), (False, None)])
def test_partial_segment_listed_only_in_live_low_latency(
    ended: bool, low_latency: LowLatencyDash | None
) -> None:
    root = parse(
        render_mpd(manifest(one_period(partial=True), ended=ended, low_latency=low_latency))
    )
    for template in root.iterfind("d:Period/d:AdaptationSet/d:SegmentTemplate", NS):
        assert [n for n, _, _ in expand(template)] == list(range(5, 11))
        assert "availabilityTimeOffset" not in template.attrib
        assert "availabilityTimeComplete" not in template.attrib


def test_static_when_ended() -> None:
    root = parse(render_mpd(manifest(one_period(), ended=True, low_latency=LL)))
    a = root.attrib
    assert a["type"] == "static"
    # Last video segment ends at 11 × 2 s.
    assert a["mediaPresentationDuration"] == "PT22S"
    for live_only in ("minimumUpdatePeriod", "timeShiftBufferDepth", "suggestedPresentationDelay"):
        assert live_only not in a
    assert PROFILE_LOW_LATENCY not in a["profiles"]
    assert root.find("d:ServiceDescription", NS) is None
    assert root.find("d:Period/d:AdaptationSet/d:ProducerReferenceTime", NS) is None


def test_refuses_mixed_inits_and_gaps_in_numbers() -> None:
    segs = make_segments(0, 3, timescale=VIDEO_TS, seg_ticks=180_000)
    mixed = (segs[0], replace(segs[1], init_name="init_1.mp4"))
    with pytest.raises(ValueError, match="init"):
        render_mpd(manifest(single_period(video_rep("720p", mixed))))
    holey = (segs[0], segs[2])
    with pytest.raises(ValueError, match="contiguous"):
        render_mpd(manifest(single_period(video_rep("720p", holey))))


# ---------------------------------------------------------------------------------------------
# Periods


def test_split_periods_on_init_change() -> None:
    vsegs = make_segments(10, 6, timescale=VIDEO_TS, seg_ticks=180_000)
    vsegs = tuple(s if s.number < 13 else replace(s, init_name="init_1.mp4") for s in vsegs)
    asegs = make_segments(10, 6, timescale=AUDIO_TS, seg_ticks=96_000)
    # Audio's new init starts a touch earlier than video's: the Period starts at the earlier one.
    asegs = tuple(
        s if s.number < 13 else replace(s, init_name="init_1.mp4", start_ticks=s.start_ticks - 960)
        for s in asegs
    )
    video = video_rep("720p", vsegs[:-1], partial_segment=vsegs[-1])
    audio = audio_rep(asegs)
    periods = split_periods((video, audio), first_period_start_number=7, first_period_start_s=14.0)
    assert [(p.period_id, p.start_s) for p in periods] == [("p7", 14.0), ("p13", 25.98)]
    first, second = periods
    assert [s.number for s in first.representations[0].segments] == [10, 11, 12]
    assert first.representations[0].partial_segment is None
    assert [s.number for s in second.representations[0].segments] == [13, 14]
    assert second.representations[0].partial_segment == vsegs[-1]
    assert [s.number for s in second.representations[1].segments] == [13, 14, 15]

    root = parse(render_mpd(manifest(periods)))
    rendered = root.findall("d:Period", NS)
    assert [(p.attrib["id"], p.attrib["start"]) for p in rendered] == [
        ("p7", "PT14S"),
        ("p13", "PT25.98S"),
    ]
    second_video = rendered[1].find("d:AdaptationSet/d:SegmentTemplate", NS)
    assert second_video is not None
    assert second_video.attrib["initialization"] == "$RepresentationID$/init_1.mp4"
    assert second_video.attrib["startNumber"] == "13"
    assert second_video.attrib["presentationTimeOffset"] == str(round(25.98 * VIDEO_TS))
    second_audio = rendered[1].findall("d:AdaptationSet", NS)[1].find("d:SegmentTemplate", NS)
    assert second_audio is not None
    assert second_audio.attrib["presentationTimeOffset"] == str(round(25.98 * AUDIO_TS))


def test_split_periods_without_init_change_is_one_period() -> None:
    segs = make_segments(3, 4, timescale=VIDEO_TS, seg_ticks=180_000)
    (period,) = split_periods(
        (video_rep("720p", segs),), first_period_start_number=0, first_period_start_s=0.0
    )
    assert period.period_id == "p0"
    assert period.representations[0].segments == segs


def test_representation_empty_in_a_period_is_left_out() -> None:
    segs = make_segments(0, 2, timescale=VIDEO_TS, seg_ticks=180_000)
    root = parse(
        render_mpd(manifest(single_period(video_rep("720p", segs), video_rep("480p", ()))))
    )
    ids = [r.attrib["id"] for r in root.iterfind("d:Period/d:AdaptationSet/d:Representation", NS)]
    assert ids == ["720p"]


# ---------------------------------------------------------------------------------------------
# SegmentTimeline run-length (Hypothesis)


@st.composite
def timelines(draw: st.DrawFn) -> tuple[SegmentRecord, ...]:
    first = draw(st.integers(0, 1_000_000))
    count = draw(st.integers(2, 40))
    t = draw(st.integers(0, 10**12))
    out: list[SegmentRecord] = []
    for i in range(count):
        # Mostly equal durations (so runs form), sometimes different ones and gaps.
        d = draw(st.sampled_from([180_000, 180_000, 180_000, 179_200, 181_000]))
        gap = draw(st.sampled_from([0, 0, 0, 0, 3_000, 180_000]))
        t += gap
        out += make_segments(first + i, 1, timescale=VIDEO_TS, seg_ticks=d, start_ticks=t)
        t += d
    return tuple(out)


@settings(max_examples=300, deadline=None)
@given(timelines(), st.booleans())
def test_timeline_expands_to_exactly_the_input(segs: tuple[SegmentRecord, ...], ll: bool) -> None:
    *complete, last = segs
    # The partial is always passed; only LL lists it.
    rep = video_rep("720p", tuple(complete), partial_segment=last)
    root = parse(render_mpd(manifest(single_period(rep), low_latency=LL if ll else None)))
    template = root.find("d:Period/d:AdaptationSet/d:SegmentTemplate", NS)
    assert template is not None
    listed = segs if ll else complete
    expected = [(s.number, s.start_ticks, s.duration_ticks) for s in listed]
    if ll:
        # LL also announces the segment after the growing one, from its nominal end
        next_start = last.start_ticks + last.duration_ticks
        expected.append((last.number + 1, next_start, last.duration_ticks))
    assert expand(template) == expected
    # Run-length is maximal: neighbouring S elements never could have been merged.
    entries = build_timeline(listed)
    for a, b in itertools.pairwise(entries):
        contiguous = b.start_ticks == a.start_ticks + a.duration_ticks * (a.repeat + 1)
        assert not (contiguous and a.duration_ticks == b.duration_ticks)
