"""JSON shapes of the control API (pure): a stream's status → dict, URLs, timestamps."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from actors.ffmpeg.sources import redact_url
from actors.status import StreamStatus


def iso(unix_s: float | None) -> str | None:
    if unix_s is None:
        return None
    return (
        datetime.fromtimestamp(unix_s, tz=UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


def playback_urls(stream_id: str, *, api_base: str, cdn_base: str) -> dict[str, str]:
    api = api_base.rstrip("/")
    cdn = cdn_base.rstrip("/")
    return {
        "hls": f"{api}/streams/{stream_id}/playlist.m3u8",
        "dash": f"{api}/streams/{stream_id}/manifest.mpd",
        "cdn_hls": f"{cdn}/{stream_id}/playlist.m3u8",
        "cdn_dash": f"{cdn}/{stream_id}/manifest.mpd",
        "dashboard": f"{api}/#stream={stream_id}",
    }


def bitrate_out_bps(newest_segments: Mapping[str, tuple[int, float]]) -> dict[str, int]:
    """Rendition id → bits per second of its newest committed segment (bytes × 8 / seconds):
    what each rendition really puts out, next to the ladder's nominal figure. A segment of no
    duration (it cannot happen for committed media) gives no figure rather than a division."""
    return {
        rendition_id: round(byte_count * 8 / duration_s)
        for rendition_id, (byte_count, duration_s) in sorted(newest_segments.items())
        if duration_s > 0
    }


def stream_view(
    status: StreamStatus,
    *,
    api_base: str,
    cdn_base: str,
    now_unix_s: float,
    viewers: int,
    newest_segments: Mapping[str, tuple[int, float]] | None = None,
) -> dict[str, Any]:
    """``viewers``: clients that polled a playlist or the MPD in the last
    ``metrics.VIEWER_WINDOW_S`` seconds (behind a CDN, each edge counts as one).
    ``newest_segments``: rendition id → (bytes, seconds) of its newest committed segment."""
    spec = status.spec
    uptime = now_unix_s - status.created_unix_s if not status.state.is_terminal else None
    return {
        "stream_id": spec.stream_id,
        "state": status.state.value,
        "source_url": redact_url(spec.source_url),
        "qualities": list(spec.qualities),
        "qualities_produced": list(status.qualities),
        "qualities_dropped": list(status.dropped_qualities),
        "audio": status.has_audio,
        "enable_hls": spec.enable_hls,
        "enable_dash": spec.enable_dash,
        "low_latency": spec.low_latency,
        "created_at": iso(status.created_unix_s),
        "uptime_s": round(uptime, 3) if uptime is not None else None,
        "last_heartbeat_at": iso(status.last_heartbeat_unix_s),
        "lease_expires_at": iso(status.lease_expires_unix_s),
        "restarts": status.restarts,
        "last_error": status.last_error,
        "source": (
            {
                "width": status.source.width,
                "height": status.source.height,
                "frame_rate": status.source.frame_rate,
                "video_codec": status.source.video_codec,
                "audio": status.source.has_audio,
            }
            if status.source
            else None
        ),
        "encoder": {
            "pid": status.encoder_pid,
            "fps": status.encoder_fps,
            "speed": status.encoder_speed,
            "frames": status.encoder_frames,
            "epoch": status.epoch,
        },
        "segments_produced": status.segments_produced,
        "bitrate_out_bps": bitrate_out_bps(newest_segments or {}),
        "viewers": viewers,
        "last_segment_at": iso(status.last_segment_unix_s),
        "state_changed_at": iso(status.state_changed_unix_s),
        "history": [{"state": s, "at": iso(t)} for s, t in status.history],
        "urls": playback_urls(spec.stream_id, api_base=api_base, cdn_base=cdn_base),
    }
