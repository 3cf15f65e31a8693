"""HLS and LL-HLS playlist text, rendered from segment records. Pure: no clock, no I/O, no trio.

Every time a playlist shows is an argument (``SegmentRecord.program_date_time_unix_s``), so the same
input always gives the same bytes — the origin can ETag them and tests can compare them.

Tag order and rules follow draft-pantos-hls-rfc8216bis and Apple's authoring spec (see
``/work/shared/specs/ll-hls-ll-dash-requirements.md`` sections A–C). Every URI written is relative
and comes from :mod:`actors.packager.layout`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import pairwise

from actors.packager.layout import part_file_name, segment_file_name
from actors.packager.model import PartRecord, SegmentRecord

# Compatibility versions (rfc8216bis §7): EXT-X-MAP (no I-FRAMES-ONLY) needs 6, EXT-X-SKIP needs 9.
# We never write EXT-X-DATERANGE, so a `_HLS_skip=v2` request never needs 10.
_VERSION_BASE = 6
_VERSION_WITH_SKIP = 9

# Parts older than this many target durations from the live edge are dropped (rfc8216bis §6.2.2).
_PART_WINDOW_TARGET_DURATIONS = 3
# a segment ending on the part window's edge is inside it: sums of float durations differ by
# rounding noise (0.1 vs 3.1 - 3.0), which must not decide whether its parts are listed
PART_WINDOW_TOLERANCE_S = 1e-6

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


# ---------------------------------------------------------------------------------------------
# Formatting helpers (shared with dash.py)


def format_decimal(value: float, *, max_decimals: int = 5, min_decimals: int = 3) -> str:
    """A decimal-floating-point with ``max_decimals`` precision and trailing zeros trimmed.

    At least ``min_decimals`` stay so durations line up when read by eye (``2.000``, ``0.33333``).
    Never exponent notation (HLS attribute grammar forbids it).
    """
    if not math.isfinite(value):
        raise ValueError(f"not a finite number: {value!r}")
    text = f"{value:.{max_decimals}f}"
    whole, _, frac = text.partition(".")
    frac = frac.rstrip("0").ljust(min_decimals, "0")
    if whole == "-0" and not frac.strip("0"):
        whole = "0"
    return f"{whole}.{frac}" if frac else whole


def format_iso8601_ms(unix_s: float) -> str:
    """UTC ISO 8601 with milliseconds and ``Z`` (``2024-05-01T12:00:00.250Z``).

    Rounds to the nearest millisecond from an integer count, so float noise never shows up as
    ``.999``.
    """
    total_ms = round(unix_s * 1000)
    moment = _EPOCH + timedelta(milliseconds=total_ms)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _quoted(value: str) -> str:
    # A quoted-string may not hold a double quote, CR or LF (rfc8216bis §4.2); refuse rather than
    # write a playlist that a player would mis-parse.
    if any(ch in value for ch in '"\r\n'):
        raise ValueError(f"value cannot be an HLS quoted-string: {value!r}")
    return f'"{value}"'


# ---------------------------------------------------------------------------------------------
# Media playlist


@dataclass(frozen=True, slots=True, kw_only=True)
class LowLatencyHls:
    """LL-HLS settings. ``part_hold_back_s`` ≥ 3 × ``part_target_s`` is the caller's job (Apple).

    ``can_skip_until_s`` ≤ 0 disables delta updates: CAN-SKIP-UNTIL is not written and
    ``skip_requested`` is ignored (rfc8216bis §6.2.5.1: ignore ``_HLS_skip`` without it).
    """

    part_target_s: float
    part_hold_back_s: float
    can_skip_until_s: float


@dataclass(frozen=True, slots=True)
class RenditionReport:
    """A sibling rendition's live edge; ``uri`` from ``layout.rendition_report_uri``."""

    uri: str
    last_msn: int
    last_part: int


@dataclass(frozen=True, slots=True, kw_only=True)
class MediaPlaylistInput:
    """Everything one media playlist shows.

    ``segments`` are the complete segments in the window, oldest first, contiguous numbers.
    ``discontinuity_sequence`` counts the discontinuities before the first listed segment (it does
    not change for a delta update). ``partial_segment`` is the growing segment at the live edge
    (its number and the parts published so far); it is used only with ``low_latency`` and not
    after ``ended``. ``partial_complete`` says the growing segment has all its parts (the packager
    knows, or predicts from the segment grid, that the next part opens the next segment): the
    preload hint then names part 0 of the next segment, since a hint MUST name the part that will
    appear next (rfc8216bis App. B; Shaka requests the hint and fails on a part that never comes).
    """

    target_duration_s: int
    segments: tuple[SegmentRecord, ...]
    discontinuity_sequence: int = 0
    # False when a segment may start without a keyframe (a passthrough video cut at the cap)
    independent_segments: bool = True
    ended: bool = False
    low_latency: LowLatencyHls | None = None
    partial_segment: SegmentRecord | None = None
    rendition_reports: tuple[RenditionReport, ...] = ()
    skip_requested: bool = False
    partial_complete: bool = False


def _validate(p: MediaPlaylistInput, partial: SegmentRecord | None) -> None:
    if p.target_duration_s < 1:
        raise ValueError("target duration must be an integer >= 1")
    for before, after in pairwise(p.segments):
        if after.number != before.number + 1:
            raise ValueError(f"segment numbers not contiguous: {before.number} → {after.number}")
    if partial is not None and p.segments and partial.number != p.segments[-1].number + 1:
        raise ValueError("partial segment must directly follow the last complete segment")
    if not p.segments and partial is None:
        raise ValueError("nothing to list: no complete segment and no partial segment")


def _segment_lead_tags(
    seg: SegmentRecord, previous: SegmentRecord | None, *, force_map: bool
) -> list[str]:
    """DISCONTINUITY, MAP and PDT: the tags that must come before a segment's first part."""
    lines: list[str] = []
    if previous is not None and seg.epoch != previous.epoch:
        lines.append("#EXT-X-DISCONTINUITY")
    if force_map or previous is None or seg.init_name != previous.init_name:
        lines.append(f"#EXT-X-MAP:URI={_quoted(seg.init_name)}")
    lines.append(f"#EXT-X-PROGRAM-DATE-TIME:{format_iso8601_ms(seg.program_date_time_unix_s)}")
    return lines


# EXT-X-PART DURATION is written with this many decimals, strictly above the media duration.
PART_DURATION_DECIMALS = 5
_PART_DURATION_SCALE = 100_000  # 10 ** PART_DURATION_DECIMALS


def listed_part_duration_s(media_duration_s: float) -> float:
    """The part DURATION we list: the smallest 5-decimal value strictly above the media's.

    Why not the media duration itself: Shaka (5.2, HLS, segments mode) recomputes the
    SourceBuffer's timestampOffset before every append as ``part start in the playlist − tfdt``
    and calls ``abort()`` when it moved by ≥ 1 ms; but when the offset is negative (always, once
    the playlist window no longer starts at media time 0) it stores it plus a 1 ms fudge, so the
    next part's offset differs by exactly 1 ms ± float noise and about half the appends abort.
    An ``abort()`` makes the browser drop frames until the next keyframe: every part after it in
    that segment was thrown away, and the picture froze until the next segment while audio kept
    ``currentTime`` moving. Listed a few µs longer than its media, each part's playlist start
    runs ahead of its tfdt by that much, the offset grows by it per part, the difference stays
    under 1 ms and Shaka never aborts mid-segment (it re-syncs on PDT at each segment, whose
    first part is independent). Players are off by < 10 µs per part, reset at every segment.
    """
    scale = _PART_DURATION_SCALE
    return (math.floor(media_duration_s * scale + 1e-6) + 1) / scale


def _part_lines(number: int, parts: Sequence[PartRecord]) -> list[str]:
    lines = []
    for part in parts:
        uri = _quoted(part_file_name(number, part.index))
        duration = format_decimal(
            listed_part_duration_s(part.duration_s), max_decimals=PART_DURATION_DECIMALS
        )
        attrs = f"DURATION={duration},URI={uri}"
        if part.independent:
            attrs += ",INDEPENDENT=YES"
        lines.append(f"#EXT-X-PART:{attrs}")
    return lines


def render_media_playlist(p: MediaPlaylistInput) -> str:
    """Render one rendition's media playlist (full, or a delta update when skip applies)."""
    ll = p.low_latency
    # After ENDLIST there is no live edge: no growing segment, no hint, and `_HLS_*` is ignored.
    partial = p.partial_segment if ll is not None and not p.ended else None
    _validate(p, partial)
    segments = p.segments

    # Segment end times relative to the first listed segment, and the live edge (end of the last
    # listed media, parts included) that the part window and the skip boundary are measured from.
    ends_s: list[float] = []
    elapsed_s = 0.0
    for seg in segments:
        elapsed_s += seg.duration_s
        ends_s.append(elapsed_s)
    edge_s = elapsed_s + (sum(pt.duration_s for pt in partial.parts) if partial else 0.0)

    skipped = 0
    can_skip = ll is not None and ll.can_skip_until_s > 0
    if p.skip_requested and can_skip and not p.ended and ll is not None:
        boundary_s = edge_s - ll.can_skip_until_s
        while skipped < len(segments) and ends_s[skipped] < boundary_s:
            skipped += 1

    first_number = segments[0].number if segments else partial.number if partial else 0
    lines = [
        "#EXTM3U",
        f"#EXT-X-VERSION:{_VERSION_WITH_SKIP if skipped else _VERSION_BASE}",
        f"#EXT-X-TARGETDURATION:{p.target_duration_s}",
        f"#EXT-X-MEDIA-SEQUENCE:{first_number}",
        f"#EXT-X-DISCONTINUITY-SEQUENCE:{p.discontinuity_sequence}",
    ]
    if p.independent_segments:
        lines.append("#EXT-X-INDEPENDENT-SEGMENTS")
    if ll is not None:
        control = f"CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK={format_decimal(ll.part_hold_back_s)}"
        if can_skip:
            control += f",CAN-SKIP-UNTIL={format_decimal(ll.can_skip_until_s)}"
        lines.append(f"#EXT-X-SERVER-CONTROL:{control}")
        lines.append(f"#EXT-X-PART-INF:PART-TARGET={format_decimal(ll.part_target_s)}")
    if skipped:
        # Header tags stay above the SKIP (hls.js #7554); the discontinuity sequence above is that
        # of the full playlist, so a client's merge keeps its numbering.
        lines.append(f"#EXT-X-SKIP:SKIPPED-SEGMENTS={skipped}")

    part_cutoff_s = edge_s - _PART_WINDOW_TARGET_DURATIONS * p.target_duration_s
    for i in range(skipped, len(segments)):
        seg = segments[i]
        previous = segments[i - 1] if i > 0 else None
        # The first segment after a SKIP repeats its MAP: the tag that set it may have been skipped.
        lines += _segment_lead_tags(seg, previous, force_map=(i == skipped))
        if ll is not None and ends_s[i] >= part_cutoff_s - PART_WINDOW_TOLERANCE_S:
            lines += _part_lines(seg.number, seg.parts)
        lines.append(f"#EXTINF:{format_decimal(seg.duration_s)},")
        lines.append(segment_file_name(seg.number))

    if partial is not None:
        previous = segments[-1] if segments else None
        if partial.parts:
            lines += _segment_lead_tags(partial, previous, force_map=False)
            lines += _part_lines(partial.number, partial.parts)
    if ll is not None and not p.ended:
        if partial is not None and partial.parts and p.partial_complete:
            next_number, next_index = partial.number + 1, 0
        elif partial is not None:
            next_number = partial.number
            next_index = partial.parts[-1].index + 1 if partial.parts else 0
        else:
            next_number, next_index = segments[-1].number + 1, 0
        hint_uri = _quoted(part_file_name(next_number, next_index))
        lines.append(f"#EXT-X-PRELOAD-HINT:TYPE=PART,URI={hint_uri}")
    if ll is not None:
        for report in p.rendition_reports:
            lines.append(
                f"#EXT-X-RENDITION-REPORT:URI={_quoted(report.uri)},"
                f"LAST-MSN={report.last_msn},LAST-PART={report.last_part}"
            )
    if p.ended:
        lines.append("#EXT-X-ENDLIST")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# Multivariant playlist


@dataclass(frozen=True, slots=True, kw_only=True)
class VariantStream:
    """One video rung. ``bandwidth_bps`` is the peak including the audio it plays with (Apple)."""

    uri: str  # layout.media_playlist_uri(rendition_id)
    bandwidth_bps: int
    average_bandwidth_bps: int
    codecs: str  # the video codec only; the audio group's codec is appended here
    width: int
    height: int
    frame_rate: float
    # CLOSED-CAPTIONS=NONE: the video carries no CEA-608/708 captions. Players that are not told
    # probe media segments for them (Shaka 5.2 does, and on an LL playlist with two segments it
    # picked the growing one, which has no URI of its own, and failed to load)
    no_closed_captions: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class AudioRendition:
    """The audio rendition group. Bandwidths are only read for an audio-only stream."""

    uri: str
    group_id: str
    name: str
    language: str
    codecs: str
    channels: int
    bandwidth_bps: int | None = None
    average_bandwidth_bps: int | None = None


def render_multivariant_playlist(
    variants: Sequence[VariantStream],
    audio: AudioRendition | None,
    *,
    independent_segments: bool = True,
) -> str:
    """Render the multivariant playlist: the audio group, then the variants, highest first.

    rfc8216 §4.3.4.2: if one EXT-X-STREAM-INF says CLOSED-CAPTIONS=NONE, all must.
    """
    if len({v.no_closed_captions for v in variants}) > 1:
        raise ValueError("CLOSED-CAPTIONS=NONE must be on every variant or on none")
    lines = ["#EXTM3U", "#EXT-X-VERSION:6"]
    if independent_segments:
        lines.append("#EXT-X-INDEPENDENT-SEGMENTS")
    if not variants:
        if audio is None:
            raise ValueError("a multivariant playlist needs at least one variant or audio")
        if audio.bandwidth_bps is None:
            raise ValueError("an audio-only stream needs AudioRendition.bandwidth_bps")
        # Audio only: the audio playlist is itself the one variant (no group to point to).
        attrs = f"BANDWIDTH={audio.bandwidth_bps}"
        if audio.average_bandwidth_bps is not None:
            attrs += f",AVERAGE-BANDWIDTH={audio.average_bandwidth_bps}"
        attrs += f",CODECS={_quoted(audio.codecs)}"
        lines += [f"#EXT-X-STREAM-INF:{attrs}", audio.uri]
        return "\n".join(lines) + "\n"

    if audio is not None:
        lines.append(
            "#EXT-X-MEDIA:TYPE=AUDIO,"
            f"GROUP-ID={_quoted(audio.group_id)},NAME={_quoted(audio.name)},"
            f"LANGUAGE={_quoted(audio.language)},DEFAULT=YES,AUTOSELECT=YES,"
            f"CHANNELS={_quoted(str(audio.channels))},URI={_quoted(audio.uri)}"
        )
    # Highest first: players that ignore BANDWIDTH start with the first listed variant, and the
    # sort is stable so equal bandwidths keep the caller's order.
    for v in sorted(variants, key=lambda v: v.bandwidth_bps, reverse=True):
        codecs = f"{v.codecs},{audio.codecs}" if audio is not None else v.codecs
        attrs = (
            f"BANDWIDTH={v.bandwidth_bps},AVERAGE-BANDWIDTH={v.average_bandwidth_bps},"
            f"CODECS={_quoted(codecs)},RESOLUTION={v.width}x{v.height},"
            f"FRAME-RATE={v.frame_rate:.3f}"
        )
        if audio is not None:
            attrs += f",AUDIO={_quoted(audio.group_id)}"
        if v.no_closed_captions:
            attrs += ",CLOSED-CAPTIONS=NONE"
        lines += [f"#EXT-X-STREAM-INF:{attrs}", v.uri]
    return "\n".join(lines) + "\n"
