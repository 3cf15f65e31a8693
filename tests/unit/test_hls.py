"""HLS writer: every tag, a strict round-trip parser, and Hypothesis over random live windows."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.packager.hls import (
    PART_WINDOW_TOLERANCE_S,
    AudioRendition,
    LowLatencyHls,
    MediaPlaylistInput,
    RenditionReport,
    VariantStream,
    format_decimal,
    format_iso8601_ms,
    render_media_playlist,
    render_multivariant_playlist,
)
from actors.packager.layout import (
    media_playlist_uri,
    part_file_name,
    rendition_report_uri,
    segment_file_name,
)
from actors.packager.model import PartRecord, SegmentRecord

TIMESCALE = 90_000
BASE_PDT = 1_700_000_000.0
LL = LowLatencyHls(part_target_s=0.5, part_hold_back_s=1.5, can_skip_until_s=12.0)

# ---------------------------------------------------------------------------------------------
# A tiny strict parser: it refuses unknown tags, tags in the wrong place and bad attribute lists,
# so "the parser accepted it" is itself an assertion.

_ATTR_RE = re.compile(r'([A-Z0-9-]+)=("[^"\r\n]*"|[^",\s]+)(?:,|$)')
_HEADER_TAGS = {
    "EXT-X-VERSION",
    "EXT-X-TARGETDURATION",
    "EXT-X-MEDIA-SEQUENCE",
    "EXT-X-DISCONTINUITY-SEQUENCE",
    "EXT-X-INDEPENDENT-SEGMENTS",
    "EXT-X-SERVER-CONTROL",
    "EXT-X-PART-INF",
}


def parse_attrs(text: str) -> dict[str, str]:
    attrs: dict[str, str] = {}
    pos = 0
    while pos < len(text):
        m = _ATTR_RE.match(text, pos)
        assert m is not None, f"bad attribute list at {text[pos:]!r}"
        assert m.group(1) not in attrs, f"duplicate attribute {m.group(1)}"
        attrs[m.group(1)] = m.group(2).strip('"')
        pos = m.end()
    return attrs


@dataclass
class ParsedSegment:
    uri: str = ""
    duration_s: float = 0.0
    discontinuity: bool = False
    map_uri: str | None = None  # the MAP tag written right before this segment, if any
    pdt: str | None = None
    parts: list[dict[str, str]] = field(default_factory=list)


@dataclass
class ParsedPlaylist:
    header: dict[str, str]
    segments: list[ParsedSegment]
    trailing: ParsedSegment | None  # tags and parts after the last EXTINF (the growing segment)
    skipped: int
    preload_hints: list[dict[str, str]]
    reports: list[dict[str, str]]
    ended: bool


def parse_media(text: str) -> ParsedPlaylist:
    assert text.endswith("\n")
    lines = text.splitlines()
    assert lines[0] == "#EXTM3U"
    header: dict[str, str] = {}
    segments: list[ParsedSegment] = []
    current = ParsedSegment()
    touched = False  # current has tags
    pending_uri = False
    skipped = 0
    hints: list[dict[str, str]] = []
    reports: list[dict[str, str]] = []
    ended = False
    body_started = False
    for line in lines[1:]:
        assert line, "no blank lines"
        if pending_uri:
            assert not line.startswith("#"), "EXTINF must be followed by its URI"
            current.uri = line
            segments.append(current)
            current, touched, pending_uri = ParsedSegment(), False, False
            continue
        assert line.startswith("#EXT"), f"unexpected line {line!r}"
        assert not ended, "nothing after ENDLIST"
        tag, _, value = line[1:].partition(":")
        if tag in _HEADER_TAGS:
            assert not body_started, f"{tag} after the first media segment tag"
            assert tag not in header, f"repeated {tag}"
            header[tag] = value
            continue
        if tag == "EXT-X-SKIP":
            assert not body_started
            assert not skipped
            skipped = int(parse_attrs(value)["SKIPPED-SEGMENTS"])
            assert skipped > 0
            continue
        if tag == "EXT-X-ENDLIST":
            ended = True
            continue
        if tag == "EXT-X-RENDITION-REPORT":
            reports.append(parse_attrs(value))
            continue
        assert not reports, "rendition reports come after segments, parts and the hint"
        assert not hints, "the preload hint comes after all segments and parts"
        body_started = True
        touched = True
        if tag == "EXT-X-DISCONTINUITY":
            assert not current.discontinuity
            assert not current.parts
            assert current.pdt is None
            current.discontinuity = True
        elif tag == "EXT-X-MAP":
            assert not current.parts
            assert current.pdt is None
            current.map_uri = parse_attrs(value)["URI"]
        elif tag == "EXT-X-PROGRAM-DATE-TIME":
            assert not current.parts
            assert current.pdt is None
            current.pdt = value
        elif tag == "EXT-X-PART":
            current.parts.append(parse_attrs(value))
        elif tag == "EXTINF":
            duration, comma, _title = value.partition(",")
            assert comma
            current.duration_s = float(duration)
            pending_uri = True
        elif tag == "EXT-X-PRELOAD-HINT":
            hints.append(parse_attrs(value))
            touched = bool(current.parts) or current.pdt is not None
        else:
            pytest.fail(f"unknown tag {tag}")
    assert not pending_uri
    return ParsedPlaylist(
        header=header,
        segments=segments,
        trailing=current if touched else None,
        skipped=skipped,
        preload_hints=hints,
        reports=reports,
        ended=ended,
    )


# ---------------------------------------------------------------------------------------------
# Builders


def parts_for(count: int, duration_s: float = 0.5) -> tuple[PartRecord, ...]:
    return tuple(
        PartRecord(
            index=k,
            duration_s=duration_s,
            independent=(k == 0),
            byte_offset=k * 100,
            byte_length=100,
        )
        for k in range(count)
    )


def make_window(
    first: int,
    durations_ticks: list[int],
    *,
    epochs: list[int] | None = None,
    inits: list[str] | None = None,
    part_counts: list[int] | None = None,
) -> tuple[SegmentRecord, ...]:
    segments = []
    start = first * 180_000
    for i, d in enumerate(durations_ticks):
        segments.append(
            SegmentRecord(
                number=first + i,
                start_ticks=start,
                duration_ticks=d,
                timescale=TIMESCALE,
                program_date_time_unix_s=BASE_PDT + start / TIMESCALE,
                byte_length=1000,
                epoch=epochs[i] if epochs else 0,
                init_name=inits[i] if inits else "init_0.mp4",
                parts=parts_for(part_counts[i] if part_counts else 4),
            )
        )
        start += d
    return tuple(segments)


def growing(after: SegmentRecord, part_count: int, **changes: object) -> SegmentRecord:
    seg = replace(
        after,
        number=after.number + 1,
        start_ticks=after.start_ticks + after.duration_ticks,
        program_date_time_unix_s=after.program_date_time_unix_s + after.duration_s,
        parts=parts_for(part_count),
    )
    return replace(seg, **changes)  # type: ignore[arg-type]


def parse_ll(
    segs: tuple[SegmentRecord, ...],
    partial: SegmentRecord | None = None,
    *,
    partial_complete: bool = False,
) -> ParsedPlaylist:
    """The parsed LL playlist (target duration 2 s, ``LL``) of a window and its growing segment."""
    return parse_media(
        render_media_playlist(
            MediaPlaylistInput(
                target_duration_s=2,
                segments=segs,
                low_latency=LL,
                partial_segment=partial,
                partial_complete=partial_complete,
            )
        )
    )


# ---------------------------------------------------------------------------------------------
# Formatting


def test_format_decimal_trims_to_at_least_three_places() -> None:
    assert format_decimal(2.0) == "2.000"
    assert format_decimal(1.5) == "1.500"
    assert format_decimal(1 / 3) == "0.33333"
    assert format_decimal(2.0000049) == "2.000"
    assert format_decimal(6.006) == "6.006"
    assert format_decimal(-0.000001) == "0.000"
    with pytest.raises(ValueError):
        format_decimal(float("nan"))


def test_program_date_time_has_milliseconds_and_zulu() -> None:
    assert format_iso8601_ms(0.0) == "1970-01-01T00:00:00.000Z"
    assert format_iso8601_ms(1_700_000_000.2499999) == "2023-11-14T22:13:20.250Z"
    assert format_iso8601_ms(1_700_000_000.9996) == "2023-11-14T22:13:21.000Z"


@given(st.integers(min_value=0, max_value=4_000_000_000_000))
def test_program_date_time_round_trips_to_the_millisecond(total_ms: int) -> None:
    text = format_iso8601_ms(total_ms / 1000)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", text)
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    assert round(parsed.timestamp() * 1000) == total_ms


# ---------------------------------------------------------------------------------------------
# Media playlist: standard HLS


def test_standard_playlist_exact_text() -> None:
    segs = make_window(10, [180_000, 180_000])
    text = render_media_playlist(
        MediaPlaylistInput(target_duration_s=2, segments=segs, discontinuity_sequence=3)
    )
    assert text == (
        "#EXTM3U\n"
        "#EXT-X-VERSION:6\n"
        "#EXT-X-TARGETDURATION:2\n"
        "#EXT-X-MEDIA-SEQUENCE:10\n"
        "#EXT-X-DISCONTINUITY-SEQUENCE:3\n"
        "#EXT-X-INDEPENDENT-SEGMENTS\n"
        '#EXT-X-MAP:URI="init_0.mp4"\n'
        "#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:40.000Z\n"
        "#EXTINF:2.000,\n"
        "seg_10.m4s\n"
        "#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:42.000Z\n"
        "#EXTINF:2.000,\n"
        "seg_11.m4s\n"
    )


def test_standard_playlist_ignores_low_latency_only_inputs() -> None:
    segs = make_window(0, [180_000] * 3)
    partial = growing(segs[-1], 2)
    text = render_media_playlist(
        MediaPlaylistInput(
            target_duration_s=2,
            segments=segs,
            partial_segment=partial,
            rendition_reports=(RenditionReport(rendition_report_uri("audio"), 3, 1),),
            skip_requested=True,
        )
    )
    assert "EXT-X-PART" not in text
    assert "PRELOAD-HINT" not in text
    assert "RENDITION-REPORT" not in text
    assert "SKIP" not in text
    assert "SERVER-CONTROL" not in text
    assert parse_media(text).trailing is None


def test_ended_playlist_has_endlist_and_no_live_edge() -> None:
    segs = make_window(0, [180_000] * 3)
    text = render_media_playlist(
        MediaPlaylistInput(
            target_duration_s=2,
            segments=segs,
            ended=True,
            low_latency=LL,
            partial_segment=growing(segs[-1], 1),
            skip_requested=True,
        )
    )
    parsed = parse_media(text)
    assert parsed.ended
    assert text.endswith("#EXT-X-ENDLIST\n")
    assert parsed.preload_hints == []
    assert parsed.trailing is None
    assert parsed.skipped == 0
    assert [s.uri for s in parsed.segments] == ["seg_0.m4s", "seg_1.m4s", "seg_2.m4s"]


def test_discontinuity_and_map_on_epoch_and_init_change() -> None:
    segs = make_window(
        0,
        [180_000] * 4,
        epochs=[0, 0, 1, 1],
        inits=["init_0.mp4", "init_0.mp4", "init_0.mp4", "init_1.mp4"],
    )
    parsed = parse_media(
        render_media_playlist(MediaPlaylistInput(target_duration_s=2, segments=segs))
    )
    assert [s.discontinuity for s in parsed.segments] == [False, False, True, False]
    assert [s.map_uri for s in parsed.segments] == ["init_0.mp4", None, None, "init_1.mp4"]
    assert all(s.pdt is not None for s in parsed.segments)


def test_invalid_windows_are_refused() -> None:
    segs = make_window(0, [180_000] * 3)
    with pytest.raises(ValueError, match="contiguous"):
        render_media_playlist(MediaPlaylistInput(target_duration_s=2, segments=(segs[0], segs[2])))
    with pytest.raises(ValueError, match="nothing to list"):
        render_media_playlist(MediaPlaylistInput(target_duration_s=2, segments=()))
    with pytest.raises(ValueError, match="target duration"):
        render_media_playlist(MediaPlaylistInput(target_duration_s=0, segments=segs))
    with pytest.raises(ValueError, match="directly follow"):
        render_media_playlist(
            MediaPlaylistInput(
                target_duration_s=2,
                segments=segs,
                low_latency=LL,
                partial_segment=replace(segs[0], number=7),
            )
        )
    with pytest.raises(ValueError, match="quoted-string"):
        render_media_playlist(
            MediaPlaylistInput(target_duration_s=2, segments=(replace(segs[0], init_name='a"b'),))
        )


# ---------------------------------------------------------------------------------------------
# Media playlist: LL-HLS


def test_low_latency_header_parts_hint_and_reports() -> None:
    segs = make_window(0, [180_000] * 5)
    partial = growing(segs[-1], 2)
    text = render_media_playlist(
        MediaPlaylistInput(
            target_duration_s=2,
            segments=segs,
            low_latency=LL,
            partial_segment=partial,
            rendition_reports=(RenditionReport(rendition_report_uri("audio"), 5, 1),),
        )
    )
    parsed = parse_media(text)
    assert parsed.header["EXT-X-VERSION"] == "6"
    assert parsed.header["EXT-X-SERVER-CONTROL"] == (
        "CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=1.500,CAN-SKIP-UNTIL=12.000"
    )
    assert parsed.header["EXT-X-PART-INF"] == "PART-TARGET=0.500"
    # Documented caller contract (Apple §14.3): PART-HOLD-BACK >= 3 x PART-TARGET.
    assert LL.part_hold_back_s >= 3 * LL.part_target_s
    # The live edge is at 11 s; parts of segments ending at or after 11 - 3 x 2 = 5 s stay.
    assert [len(s.parts) for s in parsed.segments] == [0, 0, 4, 4, 4]
    assert parsed.segments[2].parts[0] == {
        "DURATION": "0.50001",
        "URI": "part_2_0.m4s",
        "INDEPENDENT": "YES",
    }
    assert parsed.segments[2].parts[1] == {"DURATION": "0.50001", "URI": "part_2_1.m4s"}
    assert parsed.trailing is not None
    assert parsed.trailing.pdt == format_iso8601_ms(partial.program_date_time_unix_s)
    assert [p["URI"] for p in parsed.trailing.parts] == ["part_5_0.m4s", "part_5_1.m4s"]
    assert parsed.preload_hints == [{"TYPE": "PART", "URI": part_file_name(5, 2)}]
    assert parsed.reports == [{"URI": "../audio/playlist.m3u8", "LAST-MSN": "5", "LAST-PART": "1"}]


SHAKA_FUDGE_S = 0.001  # shaka.media.MediaSourceEngine: setTimestampOffset_ adds it when < 0


def shaka_aborts_inside_segment(
    listed_durations: list[str], media_ticks: list[int], timescale: int, start_s: float, tfdt: int
) -> bool:
    """Replay Shaka 5.2's per-append timestampOffset check over one segment's parts.

    Before each append Shaka computes ``y = part start in its playlist time − tfdt / timescale``
    and, when ``|stored − y| >= 0.001``, calls ``abort()`` and stores ``y`` (+ 1 ms when y < 0).
    The first part is independent (an abort there costs nothing): True when a later one aborts.
    """
    stored: float | None = None
    for index, (listed, ticks) in enumerate(zip(listed_durations, media_ticks, strict=True)):
        y = start_s - tfdt / timescale
        if stored is None or abs(stored - y) >= SHAKA_FUDGE_S:
            if index > 0:
                return True
            stored = y + SHAKA_FUDGE_S if y < 0 else y
        start_s += float(listed)
        tfdt += ticks
    return False


@settings(max_examples=300)
@given(
    segment_index=st.integers(min_value=1, max_value=20_000),
    epoch_offset_ticks=st.integers(min_value=0, max_value=3600 * 15360),
    frame_rate=st.sampled_from([25, 30, 50, 60]),
)
def test_listed_part_durations_keep_shaka_from_aborting_mid_segment(
    segment_index: int, epoch_offset_ticks: int, frame_rate: int
) -> None:
    # 0.5 s parts (or the nearest whole number of frames), 4 to a 2 s segment, timescale 15360
    frames = round(0.5 * frame_rate)
    ticks = frames * 15360 // frame_rate
    parts = tuple(
        PartRecord(index=k, duration_s=ticks / 15360, independent=k == 0, byte_offset=0,
                   byte_length=1)
        for k in range(4)
    )  # fmt: skip
    segs = make_window(0, [180_000] * 3)
    listed = [
        pt["DURATION"] for pt in parse_ll(segs, growing(segs[-1], 0, parts=parts)).trailing.parts
    ]  # type: ignore[union-attr]
    assert all(float(d) > p.duration_s for d, p in zip(listed, parts, strict=True))
    assert all(float(d) - p.duration_s <= 1e-5 for d, p in zip(listed, parts, strict=True))
    # Shaka's playlist time of the segment: its PDT minus the first listed one's (whole seconds
    # apart here), always below the media time, so the offset is negative.
    start_s = float(2 * segment_index)
    tfdt = epoch_offset_ticks + 4 * ticks * (segment_index + 3)
    assert not shaka_aborts_inside_segment(listed, [ticks] * 4, 15360, start_s, tfdt)


def test_media_exact_part_durations_made_shaka_abort() -> None:
    # The regression: DURATION=0.500 for 0.5 s parts; e.g. a segment at playlist time 10 s whose
    # tfdt is 15.3016 s (a run seen in Chromium: the offset check flipped on float noise).
    listed = ["0.500"] * 4
    assert shaka_aborts_inside_segment(listed, [7680] * 4, 15360, 10.0, 235033)


def test_complete_partial_hints_part_zero_of_the_next_segment() -> None:
    segs = make_window(0, [180_000] * 3)
    parsed = parse_ll(segs, growing(segs[-1], 4), partial_complete=True)
    assert parsed.trailing is not None
    assert len(parsed.trailing.parts) == 4
    assert parsed.preload_hints == [{"TYPE": "PART", "URI": "part_4_0.m4s"}]


def test_hint_for_next_segment_when_no_partial() -> None:
    parsed = parse_ll(make_window(0, [180_000] * 3))
    assert parsed.preload_hints == [{"TYPE": "PART", "URI": "part_3_0.m4s"}]
    assert parsed.trailing is None


def test_partial_segment_without_parts_only_hints_part_zero() -> None:
    segs = make_window(0, [180_000] * 3)
    parsed = parse_ll(segs, growing(segs[-1], 0))
    assert parsed.trailing is None
    assert parsed.preload_hints == [{"TYPE": "PART", "URI": "part_3_0.m4s"}]


def test_partial_segment_starting_a_new_epoch_gets_discontinuity_and_map() -> None:
    segs = make_window(0, [180_000] * 3)
    parsed = parse_ll(segs, growing(segs[-1], 1, epoch=1, init_name="init_1.mp4"))
    assert parsed.trailing is not None
    assert parsed.trailing.discontinuity
    assert parsed.trailing.map_uri == "init_1.mp4"
    assert parsed.trailing.pdt is not None


def test_playlist_of_only_a_growing_segment() -> None:
    seg0 = make_window(0, [180_000])[0]
    parsed = parse_ll((), replace(seg0, parts=parts_for(2)))
    assert parsed.header["EXT-X-MEDIA-SEQUENCE"] == "0"
    assert parsed.segments == []
    assert parsed.trailing is not None
    assert parsed.trailing.map_uri == "init_0.mp4"
    assert parsed.preload_hints == [{"TYPE": "PART", "URI": "part_0_2.m4s"}]


def test_skip_disabled_when_can_skip_until_is_zero() -> None:
    segs = make_window(0, [180_000] * 20)
    ll = replace(LL, can_skip_until_s=0.0)
    text = render_media_playlist(
        MediaPlaylistInput(target_duration_s=2, segments=segs, low_latency=ll, skip_requested=True)
    )
    assert "CAN-SKIP-UNTIL" not in text
    assert "EXT-X-SKIP" not in text


def test_skip_replaces_old_segments_and_bumps_version() -> None:
    segs = make_window(0, [180_000] * 10, epochs=[0] * 5 + [1] * 5)
    text = render_media_playlist(
        MediaPlaylistInput(
            target_duration_s=2,
            segments=segs,
            discontinuity_sequence=2,
            low_latency=LL,
            skip_requested=True,
        )
    )
    parsed = parse_media(text)
    # Edge at 20 s; boundary 8 s: segments ending at 2, 4, 6 s are skipped (8 s is not < 8).
    assert parsed.skipped == 3
    assert parsed.header["EXT-X-VERSION"] == "9"
    assert parsed.header["EXT-X-MEDIA-SEQUENCE"] == "0"
    assert parsed.header["EXT-X-DISCONTINUITY-SEQUENCE"] == "2"
    assert parsed.segments[0].uri == "seg_3.m4s"
    assert parsed.segments[0].map_uri == "init_0.mp4"  # re-stated after the SKIP
    assert [s.discontinuity for s in parsed.segments] == [
        False,
        False,
        True,
        False,
        False,
        False,
        False,
    ]
    lines = text.splitlines()
    assert lines.index("#EXT-X-SKIP:SKIPPED-SEGMENTS=3") > lines.index(
        "#EXT-X-PART-INF:PART-TARGET=0.500"
    )


# ---------------------------------------------------------------------------------------------
# Hypothesis over random live windows


@st.composite
def windows(draw: st.DrawFn) -> tuple[MediaPlaylistInput, tuple[SegmentRecord, ...]]:
    count = draw(st.integers(min_value=0, max_value=14))
    first = draw(st.integers(min_value=0, max_value=10_000))
    target_s = draw(st.integers(min_value=1, max_value=6))
    durations = [
        draw(st.integers(min_value=TIMESCALE // 10, max_value=int((target_s + 0.49) * TIMESCALE)))
        for _ in range(count)
    ]
    epoch_steps = draw(st.lists(st.booleans(), min_size=count + 1, max_size=count + 1))
    init_steps = draw(st.lists(st.booleans(), min_size=count + 1, max_size=count + 1))
    part_counts = draw(st.lists(st.integers(0, 6), min_size=count + 1, max_size=count + 1))
    epochs = [sum(epoch_steps[: i + 1]) for i in range(count + 1)]
    inits = [f"init_{sum(init_steps[: i + 1])}.mp4" for i in range(count + 1)]
    all_segs = make_window(
        first,
        [*durations, TIMESCALE],
        epochs=epochs,
        inits=inits,
        part_counts=part_counts,
    )
    segs, growing_seg = all_segs[:-1], all_segs[-1]
    low_latency = draw(st.booleans())
    ended = draw(st.booleans())
    with_partial = draw(st.booleans()) or count == 0
    part_target = draw(st.sampled_from([0.2, 0.33334, 0.5, 1.0]))
    ll = LowLatencyHls(
        part_target_s=part_target,
        part_hold_back_s=3 * part_target,
        can_skip_until_s=6.0 * target_s,
    )
    if count == 0:
        low_latency, ended = True, False
    p = MediaPlaylistInput(
        target_duration_s=target_s,
        segments=segs,
        discontinuity_sequence=draw(st.integers(0, 50)),
        ended=ended,
        low_latency=ll if low_latency else None,
        partial_segment=growing_seg if with_partial else None,
        rendition_reports=(RenditionReport(rendition_report_uri("480p"), first + count, 0),),
        skip_requested=draw(st.booleans()),
    )
    return p, segs


@settings(max_examples=300, deadline=None)
@given(windows())
def test_random_windows_round_trip(
    case: tuple[MediaPlaylistInput, tuple[SegmentRecord, ...]],
) -> None:
    p, segs = case
    parsed = parse_media(render_media_playlist(p))
    ll = p.low_latency is not None
    header = parsed.header
    first_number = segs[0].number if segs else p.partial_segment.number  # type: ignore[union-attr]
    assert int(header["EXT-X-MEDIA-SEQUENCE"]) == first_number
    assert int(header["EXT-X-DISCONTINUITY-SEQUENCE"]) == p.discontinuity_sequence
    assert int(header["EXT-X-TARGETDURATION"]) == p.target_duration_s
    assert "EXT-X-INDEPENDENT-SEGMENTS" in header
    assert int(header["EXT-X-VERSION"]) == (9 if parsed.skipped else 6)
    assert ("EXT-X-SERVER-CONTROL" in header) == ll
    assert ("EXT-X-PART-INF" in header) == ll

    # Every segment is either skipped or listed, in order, with its exact file name and duration.
    assert parsed.skipped + len(parsed.segments) == len(segs)
    listed = segs[parsed.skipped :]
    assert [s.uri for s in parsed.segments] == [segment_file_name(s.number) for s in listed]
    for got, want in zip(parsed.segments, listed, strict=True):
        assert abs(got.duration_s - want.duration_s) < 1e-5
        assert round(got.duration_s) <= p.target_duration_s
        assert got.pdt == format_iso8601_ms(want.program_date_time_unix_s)

    # DISCONTINUITY exactly where the epoch changes; MAP first and at each init change.
    for i, got in enumerate(parsed.segments):
        index = parsed.skipped + i
        prev = segs[index - 1] if index > 0 else None
        assert got.discontinuity == (prev is not None and prev.epoch != segs[index].epoch)
        expect_map = i == 0 or prev is None or prev.init_name != segs[index].init_name
        assert got.map_uri == (segs[index].init_name if expect_map else None)

    # Parts only in LL, only for the last 3 x TD, and exactly the segment's parts.
    edge_s = sum(s.duration_s for s in segs)
    live_partial = p.partial_segment if ll and not p.ended else None
    if live_partial is not None:
        edge_s += sum(pt.duration_s for pt in live_partial.parts)
    end_s = sum(s.duration_s for s in segs[: parsed.skipped])
    for got, want in zip(parsed.segments, listed, strict=True):
        end_s += want.duration_s
        in_window = ll and end_s >= edge_s - 3 * p.target_duration_s - PART_WINDOW_TOLERANCE_S
        if in_window:
            assert [pt["URI"] for pt in got.parts] == [
                part_file_name(want.number, pt.index) for pt in want.parts
            ]
            assert [pt.get("INDEPENDENT") == "YES" for pt in got.parts] == [
                pt.independent for pt in want.parts
            ]
        elif not ll:
            assert got.parts == []

    # Live edge: exactly one preload hint in LL, none with ENDLIST or without LL.
    if ll and not p.ended:
        assert len(parsed.preload_hints) == 1
        if live_partial is not None:
            expected = part_file_name(live_partial.number, len(live_partial.parts))
            if live_partial.parts:
                assert parsed.trailing is not None
                assert len(parsed.trailing.parts) == len(live_partial.parts)
        else:
            expected = part_file_name(segs[-1].number + 1, 0)
        assert parsed.preload_hints[0]["URI"] == expected
        assert len(parsed.reports) == 1
    else:
        assert parsed.preload_hints == []
        assert parsed.trailing is None
    assert parsed.ended == p.ended


@settings(max_examples=200, deadline=None)
@given(windows())
def test_skipped_playlist_merges_into_the_full_one(
    case: tuple[MediaPlaylistInput, tuple[SegmentRecord, ...]],
) -> None:
    p, _ = case
    full = parse_media(render_media_playlist(replace(p, skip_requested=False)))
    delta = parse_media(render_media_playlist(replace(p, skip_requested=True)))
    assert full.skipped == 0
    # A client merges by keeping its first `skipped` segments of the previous full playlist.
    merged = full.segments[: delta.skipped] + delta.segments
    assert [(s.uri, s.duration_s, s.pdt, s.discontinuity) for s in merged] == [
        (s.uri, s.duration_s, s.pdt, s.discontinuity) for s in full.segments
    ]
    assert [s.parts for s in merged] == [s.parts for s in full.segments]
    for key in ("EXT-X-MEDIA-SEQUENCE", "EXT-X-DISCONTINUITY-SEQUENCE", "EXT-X-TARGETDURATION"):
        assert delta.header[key] == full.header[key]
    assert delta.preload_hints == full.preload_hints
    if delta.skipped:
        assert p.low_latency is not None
        assert "EXT-X-SERVER-CONTROL" in delta.header
        # Exactly the segments ending more than CAN-SKIP-UNTIL before the live edge are skipped.
        segs = p.segments
        edge_s = sum(s.duration_s for s in segs)
        if p.partial_segment is not None:
            edge_s += sum(pt.duration_s for pt in p.partial_segment.parts)
        boundary_s = edge_s - p.low_latency.can_skip_until_s
        ends_s = [sum(s.duration_s for s in segs[: i + 1]) for i in range(len(segs))]
        assert ends_s[delta.skipped - 1] < boundary_s
        if delta.skipped < len(segs):
            assert ends_s[delta.skipped] >= boundary_s - 1e-9


# ---------------------------------------------------------------------------------------------
# Multivariant playlist

VIDEO = (
    VariantStream(
        uri=media_playlist_uri("480p"),
        bandwidth_bps=1_400_000,
        average_bandwidth_bps=1_200_000,
        codecs="avc1.64001e",
        width=854,
        height=480,
        frame_rate=30.0,
    ),
    VariantStream(
        uri=media_playlist_uri("720p"),
        bandwidth_bps=3_000_000,
        average_bandwidth_bps=2_600_000,
        codecs="avc1.64001f",
        width=1280,
        height=720,
        frame_rate=29.97,
    ),
)
AUDIO = AudioRendition(
    uri=media_playlist_uri("audio"),
    group_id="aud",
    name="English",
    language="en",
    codecs="mp4a.40.2",
    channels=2,
    bandwidth_bps=130_000,
    average_bandwidth_bps=128_000,
)


def test_multivariant_with_audio_group_exact_text() -> None:
    assert render_multivariant_playlist(VIDEO, AUDIO) == (
        "#EXTM3U\n"
        "#EXT-X-VERSION:6\n"
        "#EXT-X-INDEPENDENT-SEGMENTS\n"
        '#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aud",NAME="English",LANGUAGE="en",DEFAULT=YES,'
        'AUTOSELECT=YES,CHANNELS="2",URI="audio/playlist.m3u8"\n'
        "#EXT-X-STREAM-INF:BANDWIDTH=3000000,AVERAGE-BANDWIDTH=2600000,"
        'CODECS="avc1.64001f,mp4a.40.2",RESOLUTION=1280x720,FRAME-RATE=29.970,AUDIO="aud"\n'
        "720p/playlist.m3u8\n"
        "#EXT-X-STREAM-INF:BANDWIDTH=1400000,AVERAGE-BANDWIDTH=1200000,"
        'CODECS="avc1.64001e,mp4a.40.2",RESOLUTION=854x480,FRAME-RATE=30.000,AUDIO="aud"\n'
        "480p/playlist.m3u8\n"
    )


def test_multivariant_without_audio() -> None:
    text = render_multivariant_playlist(VIDEO, None)
    assert "EXT-X-MEDIA" not in text
    assert "AUDIO=" not in text
    assert 'CODECS="avc1.64001f",' in text


def test_audio_only_multivariant_points_at_the_audio_playlist() -> None:
    lines = render_multivariant_playlist((), AUDIO).splitlines()
    assert lines[3:] == [
        '#EXT-X-STREAM-INF:BANDWIDTH=130000,AVERAGE-BANDWIDTH=128000,CODECS="mp4a.40.2"',
        "audio/playlist.m3u8",
    ]
    with pytest.raises(ValueError, match="bandwidth"):
        render_multivariant_playlist((), replace(AUDIO, bandwidth_bps=None))
    with pytest.raises(ValueError, match="at least one"):
        render_multivariant_playlist((), None)


@given(st.lists(st.integers(min_value=1, max_value=50_000_000), min_size=1, max_size=8))
def test_multivariant_orders_by_bandwidth_and_every_variant_has_required_attrs(
    bandwidths: list[int],
) -> None:
    variants = [
        replace(VIDEO[0], bandwidth_bps=b, average_bandwidth_bps=b // 2, uri=f"{i}/playlist.m3u8")
        for i, b in enumerate(bandwidths)
    ]
    lines = render_multivariant_playlist(variants, AUDIO).splitlines()
    infs = [
        parse_attrs(line.split(":", 1)[1]) for line in lines if line.startswith("#EXT-X-STREAM-INF")
    ]
    assert len(infs) == len(variants)
    got = [int(a["BANDWIDTH"]) for a in infs]
    assert got == sorted(bandwidths, reverse=True)
    for attrs in infs:
        assert set(attrs) == {
            "BANDWIDTH",
            "AVERAGE-BANDWIDTH",
            "CODECS",
            "RESOLUTION",
            "FRAME-RATE",
            "AUDIO",
        }
        assert attrs["AUDIO"] == "aud"
        assert attrs["CODECS"].endswith(",mp4a.40.2")


def test_multivariant_says_closed_captions_none_on_every_variant_or_none() -> None:
    """rfc8216 §4.3.4.2: CLOSED-CAPTIONS=NONE on one EXT-X-STREAM-INF means on all of them."""
    none = [replace(v, no_closed_captions=True) for v in VIDEO]
    infs = [
        parse_attrs(line.split(":", 1)[1])
        for line in render_multivariant_playlist(none, AUDIO).splitlines()
        if line.startswith("#EXT-X-STREAM-INF")
    ]
    assert [a.get("CLOSED-CAPTIONS") for a in infs] == ["NONE", "NONE"]
    assert "CLOSED-CAPTIONS" not in render_multivariant_playlist(VIDEO, AUDIO)
    with pytest.raises(ValueError, match="CLOSED-CAPTIONS"):
        render_multivariant_playlist([none[0], VIDEO[1]], AUDIO)
