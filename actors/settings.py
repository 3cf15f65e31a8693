"""The slice of the service settings one stream uses (a frozen value the actor is built with)."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from supervisor.otp.backoff import Backoff


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamSettings:
    """The slice of the service settings one stream uses."""

    output_dir: Path
    ffmpeg_path: str
    segment_duration_s: float = 2.0
    playlist_size: int = 10
    part_target_s: float = 0.5
    low_latency_allowed: bool = True  # LOW_LATENCY_HLS; a stream gets LL only if both say yes
    preset: str = "veryfast"
    hw_encoder: str = "none"
    zscale: bool = False  # the FFmpeg build has zscale (zimg): scale the ladder with it
    stale_threshold_s: float = 600.0
    watchdog_segments: float = 2.0
    start_timeout_s: float = 20.0  # no media at all this long after spawn → restart
    segment_margin: int = 3
    restart_max: int = 10
    restart_period_s: float = 60.0
    backoff: Backoff = dataclasses.field(default_factory=Backoff)
    # the source host policy at connect time (host_guard.SourceGuard.watch): given FFmpeg's pid,
    # returns only when FFmpeg connected somewhere refused, with the reason; None: no check
    source_watch: Callable[[int], Awaitable[str]] | None = None
