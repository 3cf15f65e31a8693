"""A stream's spec and its immutable status snapshot (what the API and metrics read)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class StreamState(StrEnum):
    STARTING = "starting"
    # a push stream with no publisher (yet, or since it left): nothing is wrong
    WAITING = "waiting"
    LIVE = "live"
    RESTARTING = "restarting"
    # running, but OUTPUT_DIR refuses writes (full, quota, I/O error): served from memory while
    # the files wait and are retried; back to live by itself once the disk takes them
    DEGRADED = "degraded"
    STOPPING = "stopping"
    STOPPED = "stopped"
    FAILED = "failed"
    STALE = "stale"

    @property
    def is_terminal(self) -> bool:
        return self in {StreamState.STOPPED, StreamState.FAILED, StreamState.STALE}


QUALITY_NAMES = ("1080p", "720p", "480p", "360p", "240p")


@dataclass(frozen=True, slots=True)
class StreamSpec:
    """What a client asked for (already validated)."""

    stream_id: str
    source_url: str
    qualities: tuple[str, ...] = QUALITY_NAMES
    enable_hls: bool = True
    enable_dash: bool = True
    low_latency: bool = True
    ingest: str | None = None  # a push stream's protocol ("rtmp", "srt", "whip"); source_url ""
    srt_latency_ms: int | None = None  # SRT push streams: libsrt's receiver latency


@dataclass(frozen=True, slots=True)
class SourceDescription:
    width: int | None = None
    height: int | None = None
    frame_rate: float | None = None
    video_codec: str | None = None
    has_audio: bool = False


@dataclass(frozen=True, slots=True)
class StreamStatus:
    """Immutable snapshot; a new one replaces the old on every change."""

    spec: StreamSpec
    state: StreamState = StreamState.STARTING
    created_unix_s: float = 0.0
    last_heartbeat_unix_s: float = 0.0
    lease_expires_unix_s: float = 0.0
    qualities: tuple[str, ...] = ()  # renditions actually produced
    dropped_qualities: tuple[str, ...] = ()  # requested but above the source height
    has_audio: bool = False
    source: SourceDescription | None = None
    restarts: int = 0
    last_error: str | None = None
    encoder_pid: int | None = None
    encoder_fps: float | None = None
    encoder_speed: float | None = None
    encoder_frames: int = 0
    segments_produced: int = 0
    last_segment_unix_s: float | None = None
    epoch: int = 0
    state_changed_unix_s: float = 0.0
    history: tuple[tuple[str, float], ...] = field(default=())  # (state, unix time), last 20

    @property
    def stream_id(self) -> str:
        return self.spec.stream_id
