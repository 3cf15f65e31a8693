"""Glue from the timeline's live edge to the pure HLS and DASH writers (still pure)."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from actors.packager import dash, hls
from actors.packager.layout import media_playlist_uri, rendition_report_uri
from actors.packager.model import SegmentRecord, TrackKind
from actors.packager.timeline import RenditionEdge, StreamTimeline

AUDIO_RENDITION_ID = "audio"
# LL-DASH catch-up (ServiceDescription PlaybackRate, used by dash.js and Shaka): slow down a
# little when too close to the edge, speed up by up to 10 % when behind (a 1 s lag is gone in
# 10 s; browsers keep the audio pitch).
DASH_MIN_PLAYBACK_RATE = 0.96
DASH_MAX_PLAYBACK_RATE = 1.1


@dataclass(frozen=True, slots=True, kw_only=True)
class PublishSettings:
    segment_duration_s: float
    playlist_size: int
    part_target_s: float
    low_latency: bool
    # absolute path: resolves to the serving host's /time on the API and the origin alike
    utc_timing_url: str = "/time"
    # the video is the source's, copied: its keyframes, not ours, decide where segments can start
    passthrough_video: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class RenditionMeta:
    """What the ladder promised for a rendition (before any segment is measured)."""

    rendition_id: str
    kind: TrackKind
    nominal_bandwidth_bps: int
    frame_rate: float | None = None
    # the source's own video, copied: it keeps whatever captions the source carries (transcoded
    # rungs are encoded without them)
    passthrough: bool = False


# the encoder's nominal rate plus container (CMAF box) overhead, before anything is measured
NOMINAL_OVERHEAD = 1.1

# LL-DASH players fetch a whole growing segment by chunked transfer and steer by playback rate.
# A floor for tiny parts: at 1 s (3 parts of 1/3 s, LL-HLS's PART-HOLD-BACK) dash.js holds its
# target with 0.8-1.2 s buffered now that the MPD's timeline is open-ended (dash.py); before that
# it heard of each segment up to 1.3 s late and stalled below 1.5 s (glass bench).
DASH_MIN_TARGET_LATENCY_S = 1.0
# Latency@max − Latency@target: dash.js jumps back to its target past this + 0.5 s of drift
# (Shaka ignores Latency@max when a target is given: it uses target ± its own tolerance)
DASH_MAX_LATENCY_OVER_TARGET_S = 1.0


# MPD@timeShiftBufferDepth while the media is interrupted (a publisher away, an encoder
# restarting): see ``time_shift_buffer_depth_s``. The longest outage dash.js rides out.
DASH_INTERRUPTED_TIME_SHIFT_BUFFER_S = 3600.0


# A copied video's keyframe interval is the source's, unknown before it runs: the target duration
# is planned at this many segment durations, so common GOPs (up to twice the segment duration)
# fit, and a longer gap between keyframes is cut without one (``StreamTimeline.leader_cap_s``).
PASSTHROUGH_TARGET_FACTOR = 2


def target_duration_s(settings: PublishSettings) -> int:
    """EXT-X-TARGETDURATION, decided up front from the plan, never changed during the stream.

    RFC 8216bis §4.4.3.1: every EXTINF, rounded to the nearest integer, MUST be ≤ the target
    duration, and §6.2.1: the target duration MUST NOT change. Transcoded video has a keyframe
    forced at each grid line (on the first frame at or after it: up to a frame late), so its
    segments are about one segment duration (AAC segments end up to half a fragment past the
    grid: 2.45 s on a 2 s grid still rounds to 2). A copied (passthrough) video gets
    ``PASSTHROUGH_TARGET_FACTOR`` times that. The timeline cuts any segment before it would
    round above this (``StreamTimeline.leader_cap_s``), keyframe or not. (Before, the target
    grew to the longest segment seen: once, mid-stream, which the RFC forbids.)
    """
    configured = max(1, math.ceil(settings.segment_duration_s - 1e-9))
    return configured * (PASSTHROUGH_TARGET_FACTOR if settings.passthrough_video else 1)


def max_segment_duration_s(settings: PublishSettings, longest_segment_s: float = 0.0) -> float:
    """DASH MPD@maxSegmentDuration: the real longest segment, never below the target duration."""
    return max(float(target_duration_s(settings)), math.ceil(longest_segment_s * 1000) / 1000)


def time_shift_buffer_depth_s(settings: PublishSettings, *, media_interrupted: bool) -> float:
    """MPD@timeShiftBufferDepth: the listed window; while the media is interrupted, an hour.

    dash.js (5.2.1 TimelineConverter, ``fallbackToSegmentTimeline``) takes a SegmentTimeline
    that ends more than timeShiftBufferDepth before now for a broken clock: it shifts its own
    "now" back by the difference and keeps that shift once the media is back, so every new
    segment looks that much too young to fetch and the player never plays again (a publisher
    away 9 s with a 10 s window was enough). While no encoder run is publishing, nothing is
    committed, so the janitor deletes nothing and every listed segment stays available for as
    long as the outage lasts: a depth of an hour is true, and the next run's first segment
    brings the window back.
    """
    window_s = settings.segment_duration_s * settings.playlist_size
    if media_interrupted:
        return max(window_s, DASH_INTERRUPTED_TIME_SHIFT_BUFFER_S)
    return window_s


def part_target_s(settings: PublishSettings, observed_part_s: float = 0.0) -> float:
    """PART-TARGET: the configured value, or the part length we list if that is longer.

    Rounded up to the millisecond so every listed part DURATION (a few µs above the media's, see
    ``hls.listed_part_duration_s``) is ≤ PART-TARGET (rfc8216bis MUST).
    """
    if observed_part_s <= 0:
        return settings.part_target_s
    listed_s = hls.listed_part_duration_s(observed_part_s)
    return max(settings.part_target_s, math.ceil(listed_s * 1000 - 1e-6) / 1000)


def low_latency_hls(settings: PublishSettings, observed_part_s: float = 0.0) -> hls.LowLatencyHls:
    td = target_duration_s(settings)
    target = part_target_s(settings, observed_part_s)
    return hls.LowLatencyHls(
        part_target_s=target,
        # Apple requires ≥ 3 × PART-TARGET; hls.js aims exactly at it, so this is our latency floor.
        part_hold_back_s=round(3 * target, 5),
        can_skip_until_s=6 * td,
    )


def _window(edge: RenditionEdge, size: int) -> tuple[SegmentRecord, ...]:
    return edge.committed[-size:]


def last_part_position(edge: RenditionEdge) -> tuple[int, int] | None:
    """(LAST-MSN, LAST-PART) of a rendition, for rendition reports and blocking reload."""
    partial = edge.partial
    if partial is not None and partial.parts:
        return partial.number, partial.parts[-1].index
    if edge.committed:
        last = edge.committed[-1]
        return last.number, len(last.parts) - 1
    return None


def partial_is_complete(
    timeline: StreamTimeline, rendition_id: str, partial: SegmentRecord
) -> bool:
    """Will the next part of ``rendition_id`` open the next segment (not extend ``partial``)?

    The timeline answers with its own cut rule (``StreamTimeline.next_part_opens_segment``).
    """
    if not partial.parts:
        return False
    return timeline.next_part_opens_segment(rendition_id)


def render_media_playlist(
    timeline: StreamTimeline,
    rendition_id: str,
    settings: PublishSettings,
    *,
    skip_requested: bool = False,
    ended: bool = False,
) -> str | None:
    """The media playlist text, or None while there is nothing to list yet."""
    edge = timeline.edge(rendition_id)
    segments = _window(edge, settings.playlist_size)
    ll = settings.low_latency and not ended
    partial = edge.partial if ll else None
    if not segments and (partial is None or timeline.awaiting_first_segment_after_resume):
        return None
    reports: list[hls.RenditionReport] = []
    if ll:
        for sibling in timeline.rendition_ids:
            if sibling == rendition_id:
                continue
            position = last_part_position(timeline.edge(sibling))
            if position is not None:
                reports.append(hls.RenditionReport(rendition_report_uri(sibling), *position))
    first_number = segments[0].number if segments else (partial.number if partial else 0)
    return hls.render_media_playlist(
        hls.MediaPlaylistInput(
            target_duration_s=target_duration_s(settings),
            independent_segments=not settings.passthrough_video,
            segments=segments,
            discontinuity_sequence=timeline.discontinuity_sequence(first_number),
            ended=ended,
            low_latency=low_latency_hls(settings, timeline.observed_part_s()) if ll else None,
            partial_segment=partial,
            rendition_reports=tuple(reports),
            skip_requested=skip_requested and ll,
            partial_complete=partial is not None
            and partial_is_complete(timeline, rendition_id, partial),
        )
    )


def measured_bandwidth_bps(segments: tuple[SegmentRecord, ...]) -> tuple[int, int] | None:
    """(peak, average) bits per second over complete segments, or None without any."""
    timed = [s for s in segments if s.duration_ticks > 0]
    if not timed:
        return None
    peak = max(s.byte_length * 8 / s.duration_s for s in timed)
    total_bits = sum(s.byte_length * 8 for s in timed)
    total_s = sum(s.duration_s for s in timed)
    return math.ceil(peak), math.ceil(total_bits / total_s)


def _bandwidths(edge: RenditionEdge, meta: RenditionMeta) -> tuple[int, int]:
    measured = measured_bandwidth_bps(edge.committed)
    if measured is None:
        # before anything is measured: the encoder's nominal rate plus container overhead
        nominal = int(meta.nominal_bandwidth_bps * NOMINAL_OVERHEAD)
        return nominal, meta.nominal_bandwidth_bps
    peak, average = measured
    return max(peak, average), average


def dash_bandwidth_bps(edge: RenditionEdge, meta: RenditionMeta) -> int:
    """Representation@bandwidth: the ladder's promise, the same in every MPD of the stream.

    Not the measured peak (HLS's BANDWIDTH): measured, two rungs of similar rates (360p and 240p
    of a simple picture) swapped places from one MPD to the next, and dash.js 5.2.1 re-ranks its
    Representations by bandwidth on every MPD update (AbrController absoluteIndex): the first ABR
    switch after such a swap left it on a Representation it never found another segment in ("No
    segment found at index N", no video request again, audio playing over a still picture).
    A copied (passthrough) rung has no ladder rate: it keeps the measured one.
    """
    if meta.nominal_bandwidth_bps > 0 and not meta.passthrough:
        return int(meta.nominal_bandwidth_bps * NOMINAL_OVERHEAD)
    return _bandwidths(edge, meta)[0]


def render_multivariant_playlist(
    timeline: StreamTimeline,
    metas: tuple[RenditionMeta, ...],
    settings: PublishSettings,
) -> str | None:
    """Multivariant playlist, or None until every rendition has its init segment."""
    edges = {m.rendition_id: timeline.edge(m.rendition_id) for m in metas}
    if any(e.track is None for e in edges.values()):
        return None
    audio_meta = next((m for m in metas if m.kind == "audio"), None)
    audio: hls.AudioRendition | None = None
    audio_peak = 0
    audio_average = 0
    if audio_meta is not None:
        track = edges[audio_meta.rendition_id].track
        assert track is not None
        audio = hls.AudioRendition(
            uri=media_playlist_uri(audio_meta.rendition_id),
            group_id="audio",
            name="main",
            language="und",
            codecs=track.codec,
            channels=track.channels or 2,
        )
        audio_peak, audio_average = _bandwidths(edges[audio_meta.rendition_id], audio_meta)
    # no rung carries the source's captions: say so, and players need not probe segments for them
    no_closed_captions = not any(m.passthrough for m in metas if m.kind == "video")
    variants = []
    for meta in metas:
        if meta.kind != "video":
            continue
        track = edges[meta.rendition_id].track
        assert track is not None
        peak, average = _bandwidths(edges[meta.rendition_id], meta)
        variants.append(
            hls.VariantStream(
                uri=media_playlist_uri(meta.rendition_id),
                bandwidth_bps=peak + audio_peak,
                average_bandwidth_bps=average + audio_average,
                codecs=track.codec,
                width=track.width or 0,
                height=track.height or 0,
                frame_rate=meta.frame_rate or 30.0,
                no_closed_captions=no_closed_captions,
            )
        )
    return hls.render_multivariant_playlist(
        tuple(variants), audio, independent_segments=not settings.passthrough_video
    )


def render_manifest(
    timeline: StreamTimeline,
    metas: tuple[RenditionMeta, ...],
    settings: PublishSettings,
    *,
    now_unix_s: float,
    ended: bool = False,
) -> str | None:
    """The DASH MPD, or None until the first segment is committed."""
    edges = {m.rendition_id: timeline.edge(m.rendition_id) for m in metas}
    periods_out: list[dash.DashPeriod] = []
    timeline_periods = timeline.periods()
    if not timeline_periods or any(not e.committed for e in edges.values()):
        return None
    ll = settings.low_latency and not ended
    for index, period in enumerate(timeline_periods):
        next_first = (
            timeline_periods[index + 1].first_number if index + 1 < len(timeline_periods) else None
        )
        representations = []
        for meta in metas:
            edge = edges[meta.rendition_id]
            track = edge.track
            assert track is not None
            segments = tuple(
                s
                for s in _window(edge, settings.playlist_size)
                if s.number >= period.first_number and (next_first is None or s.number < next_first)
            )
            if not segments:
                continue
            partial = None
            if ll and next_first is None and edge.partial is not None:
                # LL-DASH announces the growing segment with its expected duration
                partial = replace(
                    edge.partial,
                    duration_ticks=round(settings.segment_duration_s * track.timescale),
                )
            representations.append(
                dash.DashRepresentation(
                    rep_id=meta.rendition_id,
                    bandwidth_bps=dash_bandwidth_bps(edge, meta),
                    codecs=track.codec,
                    kind=meta.kind,
                    width=track.width,
                    height=track.height,
                    frame_rate=meta.frame_rate,
                    sample_rate=track.sample_rate,
                    channels=track.channels,
                    timescale=track.timescale,
                    segments=segments,
                    partial_segment=partial,
                )
            )
        if representations:
            periods_out.append(
                dash.DashPeriod(
                    period_id=period.period_id,
                    start_s=period.start_s,
                    representations=tuple(representations),
                )
            )
    if not periods_out:
        return None
    sd = settings.segment_duration_s
    low_latency = None
    if ll:
        # the same target as LL-HLS's PART-HOLD-BACK (3 parts), so every player aims alike
        target_ms = round(max(3 * settings.part_target_s, DASH_MIN_TARGET_LATENCY_S) * 1000)
        low_latency = dash.LowLatencyDash(
            # One segment duration: a segment may be requested from its (nominal) start, and the
            # origin streams it chunk by chunk as it is made (DASH-IF: ATO ≤ the segment
            # duration). Shaka puts its live edge at now − maxSegmentDuration + ATO and steers
            # Latency@target behind *that*: with ATO = duration − one part its edge was 0.57 s
            # behind now (AAC segments run to 2.24 s), so Shaka sat 0.57 s above the target the
            # MPD names; now 0.24 s. dash.js fetches each next segment as soon as the one before
            # is complete either way (the open-ended timeline, dash.py).
            availability_time_offset_s=sd,
            target_latency_ms=target_ms,
            min_latency_ms=round(2 * settings.part_target_s * 1000),
            # dash.js seeks back to its target once it is more than max − target + 0.5 s behind
            # it (ServiceDescriptionController: maxDrift); below that it only speeds up, by ≤ 10 %
            # (PlaybackRate), so a 2 s stall cost ~20 s at up to 2 s too late (glass bench).
            max_latency_ms=target_ms + round(DASH_MAX_LATENCY_OVER_TARGET_S * 1000),
            min_playback_rate=DASH_MIN_PLAYBACK_RATE,
            max_playback_rate=DASH_MAX_PLAYBACK_RATE,
        )
    return dash.render_mpd(
        dash.DashManifestInput(
            availability_start_unix_s=timeline.availability_start_unix_s,
            publish_time_unix_s=now_unix_s,
            min_buffer_time_s=sd,
            time_shift_buffer_depth_s=time_shift_buffer_depth_s(
                settings, media_interrupted=timeline.media_interrupted and not ended
            ),
            max_segment_duration_s=max_segment_duration_s(settings, timeline.longest_segment_s),
            # LL: a player learns of the next segment only from a new MPD (the timeline lists
            # segments once they begin), so it must look about once per part. At one segment,
            # dash.js asked for each segment 0-2 s after it began, depending on when it loaded
            # (its refresh timer drifts against the segment clock); past ~1 s its 1.5 s target's
            # buffer ran dry at every boundary (glass bench: stalls, 1 s run-to-run swings).
            # dash.js refreshes at most once a second whatever this says; Shaka follows it.
            minimum_update_period_s=settings.part_target_s if ll else sd,
            # LL: 0. dash.js takes its delay from Latency@target and ignores this; Shaka keeps
            # this much behind its live edge (the start of the growing chunk) and then aims
            # Latency@target behind *that*, so anything here was counted twice (Shaka DASH sat at
            # ~2.7 s with 0.5 s parts and 1.5 s here).
            suggested_presentation_delay_s=0.0 if ll else 3 * sd,
            utc_timing_url=settings.utc_timing_url,
            periods=tuple(periods_out),
            low_latency=low_latency,
            ended=ended,
        )
    )
