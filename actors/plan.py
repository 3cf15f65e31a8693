"""Pure: which renditions one FFmpeg produces for a source, and the encoder spec that makes them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from actors.ffmpeg.command import EncodeSpec, Rung, select_rungs
from actors.ffmpeg.sources import ValidatedSource
from actors.ffmpeg.stderr import SourceInfo
from actors.packager import publish
from actors.settings import StreamSettings

AUDIO_ID = publish.AUDIO_RENDITION_ID
AUDIO_BITRATE_KBPS = 128


@dataclass(frozen=True, slots=True)
class EncodePlan:
    """Which renditions one FFmpeg produces (decided from the source once it is known)."""

    rungs: tuple[Rung, ...]
    dropped: tuple[str, ...]
    include_audio: bool
    source_known: bool

    @property
    def rendition_ids(self) -> tuple[str, ...]:
        ids = tuple(r.name for r in self.rungs)
        return (*ids, AUDIO_ID) if self.include_audio else ids


class Replan(Exception):  # noqa: N818 - internal signal, never escapes the encoder run
    def __init__(self, plan: EncodePlan) -> None:
        super().__init__("replan")
        self.plan = plan


def plan_for(requested: Sequence[str], source: SourceInfo | None) -> EncodePlan:
    """Pure: the ladder for a source (never upscale; audio only if the source has it)."""
    if source is None:
        rungs, dropped = select_rungs(requested, None)
        return EncodePlan(rungs, dropped, include_audio=True, source_known=False)
    rungs, dropped = select_rungs(requested, source.height)
    return EncodePlan(rungs, dropped, include_audio=source.has_audio, source_known=True)


def encode_spec(
    plan: EncodePlan, settings: StreamSettings, source: ValidatedSource, write_fds: Sequence[int]
) -> EncodeSpec:
    """One FFmpeg for the plan: a pipe per video rung, then the audio pipe (if any)."""
    video_count = len(plan.rungs)
    return EncodeSpec(
        ffmpeg_path=settings.ffmpeg_path,
        source_url=source.url,
        input_args=source.input_args,
        rungs=plan.rungs,
        include_audio=plan.include_audio,
        audio_bitrate_kbps=AUDIO_BITRATE_KBPS,
        segment_duration_s=settings.segment_duration_s,
        fragment_duration_s=settings.part_target_s,
        preset=settings.preset,
        hw_encoder=settings.hw_encoder,  # type: ignore[arg-type]
        video_fds=tuple(write_fds[:video_count]),
        # equal PSNR for less CPU than scaling every rung from the source (ops/bench/ladder.py):
        # zscale, the low rungs from the second one, ~0.87x; else 360p from 720p and 240p from
        # 480p with swscale, ~0.93x
        hub_scaling=settings.zscale,
        halving_scaling=not settings.zscale,
        diamond_search=True,  # ~6 % less CPU at equal PSNR for veryfast (the default preset)
        audio_fd=write_fds[video_count] if plan.include_audio else None,
    )
