"""What a stream publishes besides the live edge: its timeline's shape and the plain (non-LL) HLS
playlists and DASH MPD written to disk for any static server. Pure: records in, bytes out."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from actors.ffmpeg.command import Rung
from actors.packager import publish
from actors.packager.layout import DASH_MANIFEST, MEDIA_PLAYLIST, MULTIVARIANT_PLAYLIST
from actors.packager.model import TrackKind
from actors.packager.timeline import StreamTimeline, TimelinePosition
from actors.plan import AUDIO_BITRATE_KBPS, AUDIO_ID
from actors.settings import StreamSettings
from actors.status import StreamSpec


def new_timeline(
    kinds: Sequence[tuple[str, TrackKind]],
    settings: StreamSettings,
    *,
    availability_start_unix_s: float,
    resume_from: TimelinePosition | None = None,
    target_duration_s: float,
) -> StreamTimeline:
    return StreamTimeline(
        renditions=list(kinds),
        segment_duration_s=settings.segment_duration_s,
        availability_start_unix_s=availability_start_unix_s,
        retained_segments=settings.playlist_size + settings.segment_margin,
        resume_from=resume_from,
        target_duration_s=target_duration_s,
    )


def rendition_metas(
    rungs: Sequence[Rung], *, include_audio: bool
) -> tuple[publish.RenditionMeta, ...]:
    """What the multivariant playlist and the MPD say of each rendition."""
    metas = [
        publish.RenditionMeta(
            rendition_id=r.name,
            kind="video",
            nominal_bandwidth_bps=r.video_bitrate_kbps * 1000,
            passthrough=r.is_passthrough,
        )
        for r in rungs
    ]
    if include_audio:
        metas.append(
            publish.RenditionMeta(
                rendition_id=AUDIO_ID, kind="audio", nominal_bandwidth_bps=AUDIO_BITRATE_KBPS * 1000
            )
        )
    return tuple(metas)


def static_files(
    timeline: StreamTimeline,
    metas: Sequence[publish.RenditionMeta],
    settings: publish.PublishSettings,
    spec: StreamSpec,
    *,
    now_unix_s: float,
) -> list[tuple[str, bytes]]:
    """Playlists and MPD on disk: plain (non-LL) HLS/DASH that any static server can serve."""
    plain = dataclasses.replace(settings, low_latency=False)
    out: list[tuple[str, bytes]] = []
    if spec.enable_hls:
        for rid in timeline.rendition_ids:
            text = publish.render_media_playlist(timeline, rid, plain)
            if text is not None:
                out.append((f"{rid}/{MEDIA_PLAYLIST}", text.encode()))
        master = publish.render_multivariant_playlist(timeline, tuple(metas), plain)
        if master is not None:
            out.append((MULTIVARIANT_PLAYLIST, master.encode()))
    if spec.enable_dash:
        mpd = publish.render_manifest(timeline, tuple(metas), plain, now_unix_s=now_unix_s)
        if mpd is not None:
            out.append((DASH_MANIFEST, mpd.encode()))
    return out
