"""MPEG-DASH / LL-DASH MPD text, rendered from the same segment records as HLS. Pure: no clock.

Addressing is ``SegmentTemplate`` + ``SegmentTimeline`` + ``$Number$`` with the HLS media sequence
number as ``$Number$``, so one CMAF file on disk serves both protocols (spec E5). Times in
``SegmentRecord.start_ticks`` are absolute media times on the stream's one timeline, so
``presentationTimeOffset`` = Period@start in ticks and presentation time = media time / timescale.

Element order follows the MPD XSD (ServiceDescription before Period, UTCTiming after it;
ProducerReferenceTime before SegmentTemplate inside an AdaptationSet).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass, replace
from fractions import Fraction
from itertools import pairwise
from typing import Literal

from actors.packager.hls import format_decimal, format_iso8601_ms
from actors.packager.layout import DASH_MEDIA_TEMPLATE, dash_init_template
from actors.packager.model import SegmentRecord

MPD_NAMESPACE = "urn:mpeg:dash:schema:mpd:2011"
PROFILE_LIVE = "urn:mpeg:dash:profile:isoff-live:2011"
PROFILE_CMAF = "urn:mpeg:dash:profile:cmaf:2019"
PROFILE_LOW_LATENCY = "http://www.dashif.org/guidelines/low-latency-live-v5"
UTC_TIMING_SCHEME = "urn:mpeg:dash:utc:http-iso:2014"
AUDIO_CHANNEL_SCHEME = "urn:mpeg:dash:23003:3:audio_channel_configuration:2011"

# ServiceDescription/Latency@referenceId points at this ProducerReferenceTime@id.
_PRT_ID = "0"


@dataclass(frozen=True, slots=True, kw_only=True)
class DashRepresentation:
    """One rendition inside one Period. All its ``segments`` share one ``init_name``.

    ``segments`` are complete, oldest first, contiguous numbers (time gaps allowed).
    ``partial_segment`` is the growing segment, passed with ``duration_ticks`` set to the
    *nominal* segment duration; it is listed only in LL (ATO lets players fetch it while it grows),
    with the segment after it and an open-ended S for the rest, and never once the stream has
    ended.
    """

    rep_id: str  # the rendition id: $RepresentationID$ expands to the rendition folder
    bandwidth_bps: int
    codecs: str
    kind: Literal["video", "audio"]
    timescale: int
    segments: tuple[SegmentRecord, ...]
    partial_segment: SegmentRecord | None = None
    width: int | None = None
    height: int | None = None
    frame_rate: float | None = None
    sample_rate: int | None = None
    channels: int | None = None
    language: str = "und"  # audio AdaptationSet@lang (BCP 47)


@dataclass(frozen=True, slots=True, kw_only=True)
class DashPeriod:
    """A run of segments with one init segment per representation.

    Keep ``period_id`` and ``start_s`` stable across MPD updates (players key on them): see
    :func:`split_periods`.
    """

    period_id: str
    start_s: float
    representations: tuple[DashRepresentation, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class LowLatencyDash:
    availability_time_offset_s: float
    target_latency_ms: int
    min_latency_ms: int
    max_latency_ms: int
    min_playback_rate: float
    max_playback_rate: float


@dataclass(frozen=True, slots=True, kw_only=True)
class DashManifestInput:
    availability_start_unix_s: float
    publish_time_unix_s: float
    min_buffer_time_s: float
    time_shift_buffer_depth_s: float
    max_segment_duration_s: float
    minimum_update_period_s: float
    suggested_presentation_delay_s: float
    utc_timing_url: str  # the origin's own /time (spec E2)
    periods: tuple[DashPeriod, ...]
    low_latency: LowLatencyDash | None = None
    ended: bool = False


# ---------------------------------------------------------------------------------------------
# Formatting


def format_duration(seconds: float) -> str:
    """xs:duration in seconds only (``PT2S``, ``PT0.5S``); players parse that form everywhere."""
    if seconds < 0:
        raise ValueError(f"negative duration: {seconds}")
    return f"PT{format_decimal(seconds, max_decimals=6, min_decimals=0)}S"


def _frame_rate(fps: float) -> str:
    # FrameRateType is `n` or `n/d` (no decimal point): 29.97… becomes 30000/1001.
    exact = Fraction(fps).limit_denominator(1001)
    if exact.denominator == 1:
        return str(exact.numerator)
    return f"{exact.numerator}/{exact.denominator}"


# ---------------------------------------------------------------------------------------------
# SegmentTimeline


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    """One ``<S>``: ``repeat + 1`` back-to-back segments of one duration from ``start_ticks``."""

    start_ticks: int
    duration_ticks: int
    repeat: int


def build_timeline(segments: Sequence[SegmentRecord]) -> tuple[TimelineEntry, ...]:
    """Run-length encode segment times; a new ``<S t=…>`` starts after every gap or overlap."""
    entries: list[TimelineEntry] = []
    for seg in segments:
        if entries:
            last = entries[-1]
            run_end = last.start_ticks + last.duration_ticks * (last.repeat + 1)
            if seg.start_ticks == run_end and seg.duration_ticks == last.duration_ticks:
                entries[-1] = TimelineEntry(last.start_ticks, last.duration_ticks, last.repeat + 1)
                continue
        entries.append(TimelineEntry(seg.start_ticks, seg.duration_ticks, 0))
    return tuple(entries)


def _listed_segments(rep: DashRepresentation, *, live_edge: bool) -> tuple[SegmentRecord, ...]:
    segs = rep.segments
    if live_edge and rep.partial_segment is not None:
        segs = (*segs, rep.partial_segment)
    for before, after in pairwise(segs):
        if after.number != before.number + 1:
            raise ValueError(
                f"{rep.rep_id}: $Number$ must be contiguous: {before.number} → {after.number}"
            )
    if len({s.init_name for s in segs}) > 1:
        raise ValueError(f"{rep.rep_id}: one Period holds one init segment per representation")
    if any(s.timescale != rep.timescale for s in segs):
        raise ValueError(f"{rep.rep_id}: segment timescale differs from the representation's")
    return segs


@dataclass(frozen=True, slots=True)
class _Template:
    init_name: str
    timescale: int
    start_number: int
    presentation_time_offset: int
    timeline: tuple[TimelineEntry, ...]
    # LL live edge: the nominal duration of the segments after the growing one and the one
    # announced after it (see ``_segment_template``); None when nothing grows.
    next_duration_ticks: int | None = None


def _template_of(
    rep: DashRepresentation, period_start_s: float, *, live_edge: bool
) -> _Template | None:
    segs = _listed_segments(rep, live_edge=live_edge)
    if not segs:
        return None
    growing = rep.partial_segment if live_edge else None
    if growing is not None:
        segs = (*segs, _next_after(growing))
    return _Template(
        init_name=segs[0].init_name,
        timescale=rep.timescale,
        start_number=segs[0].number,
        presentation_time_offset=round(period_start_s * rep.timescale),
        timeline=build_timeline(segs),
        next_duration_ticks=None if growing is None else growing.duration_ticks,
    )


def _next_after(growing: SegmentRecord) -> SegmentRecord:
    """The segment after the growing one, announced where the growing one's nominal end is.

    Players learn of segments only from the timeline, and the packager can list a segment only
    once every rendition has finished the one before (the commit barrier): 0.35-1.05 s after it
    began on this machine, up to 1.45 s under load. Shaka 5.2 asked for each segment that late
    and stalled whenever it was later than its buffer; told one segment ahead, it asks as soon as
    the previous one is complete and the origin streams the new one as it is made. Its start may
    move when the growing one ends off its nominal duration (AAC: 1.92-2.24 s for 2 s), as the
    growing one's own end does.
    """
    return replace(
        growing,
        number=growing.number + 1,
        start_ticks=growing.start_ticks + growing.duration_ticks,
    )


# ---------------------------------------------------------------------------------------------
# MPD


def _sub(parent: ET.Element, tag: str, **attrs: str) -> ET.Element:
    # ElementTree escapes attribute values (&, <, ", newlines), so any caller text is safe.
    return ET.SubElement(parent, tag, attrs)


def _segment_template(parent: ET.Element, t: _Template, ll: LowLatencyDash | None) -> ET.Element:
    el = _sub(
        parent,
        "SegmentTemplate",
        media=DASH_MEDIA_TEMPLATE,
        initialization=dash_init_template(t.init_name),
        timescale=str(t.timescale),
        startNumber=str(t.start_number),
        presentationTimeOffset=str(t.presentation_time_offset),
    )
    if ll is not None:
        # Chunked low-latency mode (spec F4): a segment is fetchable ATO seconds before its end
        # and arrives as it grows.
        el.set(
            "availabilityTimeOffset", format_decimal(ll.availability_time_offset_s, min_decimals=0)
        )
        el.set("availabilityTimeComplete", "false")
    timeline = _sub(el, "SegmentTimeline")
    for entry in t.timeline:
        s = _sub(timeline, "S", t=str(entry.start_ticks), d=str(entry.duration_ticks))
        if entry.repeat:
            s.set("r", str(entry.repeat))
    if ll is not None and t.next_duration_ticks is not None:
        # Then the segments after those, open-ended: a last S with r="-1" repeats "until the
        # next MPD update" (ISO/IEC 23009-1 5.3.9.6), so a player can fetch each when its
        # availability time (nominal end − ATO) comes instead of waiting for an MPD that lists
        # it. dash.js 5.2 otherwise heard of each segment only from its next MPD reload (at most
        # one a second, drifting against the segment clock): 0.3-1.3 s late, its buffer ran dry
        # at segment boundaries and it stalled whenever that lateness passed its buffer (glass
        # bench). Shaka 5.2 ignores a last S with a negative repeat (the one announced segment,
        # ``_next_after``, is what it needs).
        _sub(timeline, "S", d=str(t.next_duration_ticks), r="-1")
    return el


def _adaptation_set(
    period_el: ET.Element,
    *,
    set_id: int,
    kind: Literal["video", "audio"],
    reps: Sequence[DashRepresentation],
    period_start_s: float,
    m: DashManifestInput,
    ll: LowLatencyDash | None,
) -> None:
    # Only LL announces the growing segment early; without ATO a player could not use it yet.
    live_edge = ll is not None
    # A representation with nothing listed in this Period (e.g. it joined later) is left out: a
    # Representation without a SegmentTemplate would be invalid.
    with_template = [(r, _template_of(r, period_start_s, live_edge=live_edge)) for r in reps]
    pairs = [(r, t) for r, t in with_template if t is not None]
    if not pairs:
        return
    reps = [r for r, _ in pairs]
    templates = [t for _, t in pairs]
    shared = templates[0] if all(t == templates[0] for t in templates) else None

    aset = _sub(
        period_el,
        "AdaptationSet",
        id=str(set_id),
        contentType=kind,
        mimeType=f"{kind}/mp4",
        segmentAlignment="true",
        startWithSAP="1",
    )
    if kind == "video":
        widths = [r.width for r in reps if r.width is not None]
        heights = [r.height for r in reps if r.height is not None]
        if widths:
            aset.set("maxWidth", str(max(widths)))
        if heights:
            aset.set("maxHeight", str(max(heights)))
    else:
        aset.set("lang", reps[0].language)

    if ll is not None:
        _producer_reference_time(aset, reps[0], templates[0], m)
    if shared is not None:
        _segment_template(aset, shared, ll)

    for rep, template in zip(reps, templates, strict=True):
        rep_el = _sub(
            aset,
            "Representation",
            id=rep.rep_id,
            bandwidth=str(rep.bandwidth_bps),
            codecs=rep.codecs,
        )
        if kind == "video":
            if rep.width is not None and rep.height is not None:
                rep_el.set("width", str(rep.width))
                rep_el.set("height", str(rep.height))
            if rep.frame_rate is not None:
                rep_el.set("frameRate", _frame_rate(rep.frame_rate))
            rep_el.set("sar", "1:1")
        else:
            if rep.sample_rate is not None:
                rep_el.set("audioSamplingRate", str(rep.sample_rate))
            if rep.channels is not None:
                _sub(
                    rep_el,
                    "AudioChannelConfiguration",
                    schemeIdUri=AUDIO_CHANNEL_SCHEME,
                    value=str(rep.channels),
                )
        if shared is None:
            # Renditions whose timelines differ (rare: audio-like drift) get their own template.
            _segment_template(rep_el, template, ll)


def _producer_reference_time(
    aset: ET.Element, rep: DashRepresentation, template: _Template, m: DashManifestInput
) -> None:
    """Anchor media time to wall clock (spec F2): presentationTime = PTO, wallClockTime = PDT.

    The wall clock at the PTO is extrapolated from the first listed segment's PDT, the same clock
    HLS writes as EXT-X-PROGRAM-DATE-TIME, so both protocols agree on latency.
    """
    first = _listed_segments(rep, live_edge=True)[0]
    pto = template.presentation_time_offset
    wall_s = first.program_date_time_unix_s - (first.start_ticks - pto) / rep.timescale
    prt = _sub(
        aset,
        "ProducerReferenceTime",
        id=_PRT_ID,
        type="encoder",
        wallClockTime=format_iso8601_ms(wall_s),
        presentationTime=str(pto),
    )
    # Must be identical to the MPD-level UTCTiming (DASH-IF conformance 9.X.4.2).
    _sub(prt, "UTCTiming", schemeIdUri=UTC_TIMING_SCHEME, value=m.utc_timing_url)


def _presentation_end_s(m: DashManifestInput) -> float:
    end_s = 0.0
    for period in m.periods:
        for rep in period.representations:
            if rep.segments:
                last = rep.segments[-1]
                pto = round(period.start_s * rep.timescale)
                rep_end = (
                    period.start_s + (last.start_ticks + last.duration_ticks - pto) / rep.timescale
                )
                end_s = max(end_s, rep_end)
    return end_s


def render_mpd(m: DashManifestInput) -> str:
    """Render the MPD: dynamic while live, static with mediaPresentationDuration once ended."""
    # Once ended, nothing grows any more: no LL signalling, no partial segment.
    ll = m.low_latency if not m.ended else None
    profiles = [PROFILE_LIVE, PROFILE_CMAF] + ([PROFILE_LOW_LATENCY] if ll is not None else [])

    root = ET.Element("MPD", {"xmlns": MPD_NAMESPACE, "profiles": ",".join(profiles)})
    root.set("type", "static" if m.ended else "dynamic")
    root.set("availabilityStartTime", format_iso8601_ms(m.availability_start_unix_s))
    root.set("publishTime", format_iso8601_ms(m.publish_time_unix_s))
    if m.ended:
        root.set("mediaPresentationDuration", format_duration(_presentation_end_s(m)))
    else:
        root.set("minimumUpdatePeriod", format_duration(m.minimum_update_period_s))
        root.set("timeShiftBufferDepth", format_duration(m.time_shift_buffer_depth_s))
        root.set("suggestedPresentationDelay", format_duration(m.suggested_presentation_delay_s))
    root.set("maxSegmentDuration", format_duration(m.max_segment_duration_s))
    root.set("minBufferTime", format_duration(m.min_buffer_time_s))

    if ll is not None:
        service = _sub(root, "ServiceDescription", id="0")
        _sub(
            service,
            "Latency",
            target=str(ll.target_latency_ms),
            min=str(ll.min_latency_ms),
            max=str(ll.max_latency_ms),
            referenceId=_PRT_ID,
        )
        _sub(
            service,
            "PlaybackRate",
            min=format_decimal(ll.min_playback_rate, min_decimals=0),
            max=format_decimal(ll.max_playback_rate, min_decimals=0),
        )

    for period in m.periods:
        period_el = _sub(root, "Period", id=period.period_id, start=format_duration(period.start_s))
        kinds: tuple[Literal["video", "audio"], ...] = ("video", "audio")
        for set_id, kind in enumerate(kinds):
            reps = [r for r in period.representations if r.kind == kind]
            if reps:
                _adaptation_set(
                    period_el,
                    set_id=set_id,
                    kind=kind,
                    reps=reps,
                    period_start_s=period.start_s,
                    m=m,
                    ll=ll,
                )

    _sub(root, "UTCTiming", schemeIdUri=UTC_TIMING_SCHEME, value=m.utc_timing_url)
    ET.indent(root, space="  ")
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


# ---------------------------------------------------------------------------------------------
# Period split


def split_periods(
    representations: Sequence[DashRepresentation],
    *,
    first_period_start_number: int,
    first_period_start_s: float,
) -> tuple[DashPeriod, ...]:
    """Cut whole-window representations into Periods wherever any init segment changes.

    A Period starts at the first segment number where some representation's ``init_name``
    differs from its previous segment; its id is ``p{number}`` and its start the earliest start
    among the representations at that number. Both stay stable while that boundary is in the
    window. The window's first Period began at a boundary that may already have slid out, so the
    caller (the packager, which saw the init change happen) passes its number and start.
    """
    listed: list[tuple[DashRepresentation, tuple[SegmentRecord, ...]]] = []
    for rep in representations:
        segs = rep.segments + ((rep.partial_segment,) if rep.partial_segment else ())
        listed.append((rep, segs))

    boundaries: dict[int, float] = {}
    for _, segs in listed:
        for before, after in pairwise(segs):
            if after.init_name != before.init_name:
                start_s = after.start_s
                boundaries[after.number] = min(boundaries.get(after.number, start_s), start_s)
    for number in list(boundaries):
        # Every representation's segment with that number bounds the Period start.
        for _, segs in listed:
            for seg in segs:
                if seg.number == number:
                    boundaries[number] = min(boundaries[number], seg.start_s)
    starts = [(first_period_start_number, first_period_start_s)]
    starts += sorted((n, s) for n, s in boundaries.items() if n > first_period_start_number)

    periods: list[DashPeriod] = []
    for index, (start_number, start_s) in enumerate(starts):
        end_number = starts[index + 1][0] if index + 1 < len(starts) else None

        def inside(seg: SegmentRecord, lo: int = start_number, hi: int | None = end_number) -> bool:
            return seg.number >= lo and (hi is None or seg.number < hi)

        reps = tuple(
            replace(
                rep,
                segments=tuple(s for s in rep.segments if inside(s)),
                partial_segment=(
                    rep.partial_segment
                    if rep.partial_segment is not None and inside(rep.partial_segment)
                    else None
                ),
            )
            for rep, _ in listed
        )
        periods.append(
            DashPeriod(period_id=f"p{start_number}", start_s=start_s, representations=reps)
        )
    return tuple(periods)
