"""The one read-only window the HTTP layer has onto a stream's live edge.

Playlists and the MPD are rendered on demand from the timeline (and cached per live-edge
version); the growing segment, parts and the newest segments come from memory; older segments
and init files are read from the stream folder by the caller (``disk_path``). Nothing here
touches the actor's process or mutates its state. Callers parse URLs; this takes parsed names.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from actors.packager import publish
from actors.packager.layout import resolve_inside
from actors.stream import AUDIO_ID, StreamActor


@dataclass(frozen=True, slots=True)
class MediaBytes:
    data: bytes
    immutable: bool  # the bytes at this name will never change
    audio: bool


class EdgeReader:
    """Read-only access to one stream actor's live edge."""

    def __init__(self, actor: StreamActor) -> None:
        self._actor = actor

    @property
    def actor(self) -> StreamActor:
        return self._actor

    @property
    def version(self) -> int:
        """Changes whenever anything at the live edge changes (part, segment, init, end)."""
        return self._actor.version

    @property
    def target_duration_s(self) -> int:
        timeline = self._actor.timeline
        longest_s = timeline.longest_segment_s if timeline is not None else 0.0
        return publish.target_duration_s(self._actor.publish_settings, longest_s)

    @staticmethod
    def _encoded(text: str | None) -> bytes | None:
        # no cache here: the HTTP layer caches the built object per live-edge version
        return text.encode() if text is not None else None

    def multivariant_playlist(self) -> bytes | None:
        actor = self._actor
        timeline = actor.timeline
        if timeline is None or not actor.spec.enable_hls:
            return None
        return self._encoded(publish.render_multivariant_playlist(timeline, actor.metas))

    def manifest(self) -> bytes | None:
        actor = self._actor
        timeline = actor.timeline
        if timeline is None or not actor.spec.enable_dash:
            return None
        return self._encoded(
            publish.render_manifest(
                timeline, actor.metas, actor.publish_settings, now_unix_s=actor.wall_now()
            )
        )

    def media_playlist(self, rendition_id: str, *, skip: bool = False) -> bytes | None:
        actor = self._actor
        timeline = actor.timeline
        if timeline is None or not actor.spec.enable_hls:
            return None
        if rendition_id not in timeline.rendition_ids:
            return None
        return self._encoded(
            publish.render_media_playlist(
                timeline, rendition_id, actor.publish_settings, skip_requested=skip
            )
        )

    def has_rendition(self, rendition_id: str) -> bool:
        timeline = self._actor.timeline
        return timeline is not None and rendition_id in timeline.rendition_ids

    def segment(self, rendition_id: str, number: int) -> MediaBytes | None:
        """A committed segment held in memory (None → try disk, unless it is not complete)."""
        timeline = self._actor.timeline
        if timeline is None:
            return None
        data = timeline.segment_bytes(rendition_id, number)
        if data is None:
            return None
        return MediaBytes(data, immutable=True, audio=rendition_id == AUDIO_ID)

    def is_committed(self, number: int) -> bool:
        timeline = self._actor.timeline
        return timeline is not None and number < timeline.next_number

    def part(self, rendition_id: str, number: int, part_index: int) -> MediaBytes | None:
        timeline = self._actor.timeline
        if timeline is None:
            return None
        data = timeline.part_bytes(rendition_id, number, part_index)
        if data is None:
            return None
        return MediaBytes(
            data, immutable=number < timeline.next_number, audio=rendition_id == AUDIO_ID
        )

    def disk_path(self, rendition_id: str, name: str) -> Path | None:
        """Where a finished file of this stream lives on disk (None if the name is unsafe)."""
        return resolve_inside(self._actor.folder, f"{rendition_id}/{name}")
