"""The packager's pure core: one timeline and one numbering for every rendition of a stream.

Fragments (moof+mdat) come in per rendition from the box reader; this module

* rebases their decode times onto a wall-clock-anchored timeline (media time ``t`` is shown at
  ``availability_start + t``), so numbering and time survive encoder restarts: each encoder run
  is an *epoch* that starts where the previous one ended, never earlier;
* groups fragments into segments cut at the segment grid (``k × segment_duration_s`` in the epoch's
  own time; video only at a sync sample), each fragment staying a first-class part;
* commits segment ``n`` only when *every* rendition has completed it (a barrier), so all media
  playlists list the same numbers and the DASH timeline lines up across representations. When an
  epoch ends, a segment some rendition never started is discarded everywhere, so numbers stay
  contiguous (HLS needs that: the media sequence number is implicit).

It holds the live edge in memory (growing segment, its parts, the last few segments); disk writes
are returned as ``FileWrite`` records for the async shell to perform. No I/O, no clock reads, no
trio.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from actors.packager.bmff import rebase_fragment
from actors.packager.layout import init_file_name, segment_file_name
from actors.packager.model import (
    Fragment,
    InitSegment,
    PartRecord,
    SegmentRecord,
    TrackInfo,
    TrackKind,
)


@dataclass(frozen=True, slots=True)
class FileWrite:
    """A file the shell must write atomically under the stream folder."""

    rendition_id: str
    name: str
    data: bytes


@dataclass(slots=True)
class Changes:
    """What one input changed: files to write and which renditions' playlists moved."""

    writes: list[FileWrite] = field(default_factory=list)
    parts_published: set[str] = field(default_factory=set)  # renditions with a new part
    segments_committed: list[int] = field(default_factory=list)

    def merge(self, other: Changes) -> None:
        self.writes.extend(other.writes)
        self.parts_published |= other.parts_published
        self.segments_committed.extend(other.segments_committed)

    @property
    def anything(self) -> bool:
        return bool(self.writes or self.parts_published or self.segments_committed)


@dataclass(slots=True)
class _Growing:
    number: int
    grid_index: int  # k: which slot of the epoch's segment grid this segment fills
    start_ticks: int
    chunks: list[bytes] = field(default_factory=list)
    parts: list[PartRecord] = field(default_factory=list)
    duration_ticks: int = 0
    byte_length: int = 0


@dataclass(frozen=True, slots=True)
class Period:
    """A run of segments decodable with one set of init segments (DASH Period)."""

    period_id: str
    first_number: int
    start_s: float  # media time of its first segment (earliest rendition), seconds since AST
    init_names: tuple[tuple[str, str], ...]  # (rendition_id, init name)


@dataclass(frozen=True, slots=True)
class RenditionEdge:
    """A consistent read-only view of one rendition's live edge for playlists and the origin."""

    rendition_id: str
    kind: TrackKind
    track: TrackInfo | None
    init_name: str | None
    committed: tuple[SegmentRecord, ...]  # oldest first, contiguous numbers
    partial: SegmentRecord | None  # the growing segment with its parts so far (LL), or None


class _Rendition:
    __slots__ = (
        "completed",
        "growing",
        "init_data",
        "init_version",
        "kind",
        "last_number_in_epoch",
        "offset_ticks",
        "rendition_id",
        "track",
    )

    def __init__(self, rendition_id: str, kind: TrackKind) -> None:
        self.rendition_id = rendition_id
        self.kind = kind
        self.track: TrackInfo | None = None
        self.init_data: bytes | None = None
        self.init_version = 0
        self.offset_ticks: int | None = None
        self.growing: _Growing | None = None
        # complete segments waiting at the commit barrier: (record, bytes)
        self.completed: deque[tuple[SegmentRecord, bytes]] = deque()
        self.last_number_in_epoch: int | None = None

    @property
    def init_name(self) -> str | None:
        return init_file_name(self.init_version) if self.init_version else None


class StreamTimeline:
    """Numbering, timeline and live edge of one stream; see the module docstring."""

    def __init__(
        self,
        *,
        renditions: Sequence[tuple[str, TrackKind]],
        segment_duration_s: float,
        availability_start_unix_s: float,
        retained_segments: int,
        memory_segments: int = 4,
    ) -> None:
        if not renditions:
            raise ValueError("a stream needs at least one rendition")
        self.segment_duration_s = segment_duration_s
        self.availability_start_unix_s = availability_start_unix_s
        self._renditions = {rid: _Rendition(rid, kind) for rid, kind in renditions}
        self._retained = max(retained_segments, 1)
        self._memory_segments = max(memory_segments, 1)
        self._committed: dict[str, deque[SegmentRecord]] = {
            rid: deque() for rid in self._renditions
        }
        self._segment_bytes: dict[tuple[str, int], bytes] = {}
        self.epoch = 0
        self.next_number = 0
        self._epoch_first_number = 0
        self._epoch_base_s: float | None = None
        self._timeline_end_s = 0.0  # end of the latest committed media, seconds since AST
        self._periods: list[Period] = []
        self._init_changed = True
        # first committed number of every epoch after the first: HLS discontinuity points
        self._discontinuity_numbers: list[int] = []
        self._last_committed_epoch: int | None = None
        self.segments_committed_total = 0
        self.last_commit_unix_s: float | None = None
        # Longest first part seen per rendition. A full part's length depends on the frame rate
        # (0.5 s is 15 frames at 30 fps but 13 frames = 0.52 s at 25 fps), so the PART-TARGET we
        # advertise is taken from the media, once, before any part is listed.
        self._first_part_s: dict[str, float] = {}
        # edge() views, built once per input: the HTTP layer reads them per request (blocking
        # reloads, rendition reports) far more often than fragments arrive. Every input clears it.
        self._edges: dict[str, RenditionEdge] = {}

    # ------------------------------------------------------------------ inputs

    @property
    def rendition_ids(self) -> tuple[str, ...]:
        return tuple(self._renditions)

    def begin_epoch(self) -> int:
        """Start a new encoder run; returns its epoch number (1, 2, …)."""
        self._edges.clear()
        self.epoch += 1
        self._epoch_first_number = self.next_number
        self._epoch_base_s = None
        for rendition in self._renditions.values():
            rendition.offset_ticks = None
            rendition.growing = None
            rendition.completed.clear()
            rendition.last_number_in_epoch = None
        return self.epoch

    def on_init(self, rendition_id: str, init: InitSegment) -> Changes:
        rendition = self._renditions[rendition_id]
        changes = Changes()
        if init.data != rendition.init_data:
            self._edges.clear()
            rendition.init_data = init.data
            rendition.track = init.track
            rendition.init_version += 1
            self._init_changed = True
            name = init_file_name(rendition.init_version)
            changes.writes.append(FileWrite(rendition_id, name, init.data))
        return changes

    def on_fragment(self, rendition_id: str, fragment: Fragment, *, now_unix_s: float) -> Changes:
        rendition = self._renditions[rendition_id]
        track = rendition.track
        if track is None:
            raise ValueError(f"fragment for {rendition_id} before its init segment")
        self._edges.clear()
        timescale = track.timescale
        if self._epoch_base_s is None:
            self._epoch_base_s = self._choose_epoch_base_s(fragment, timescale, now_unix_s)
        if rendition.offset_ticks is None:
            # ceil: a rebased epoch must never start before where the previous one ended
            rendition.offset_ticks = math.ceil(self._epoch_base_s * timescale)
        local_start_s = fragment.decode_time_ticks / timescale
        fragment_duration_s = fragment.duration_ticks / timescale
        tolerance_s = min(fragment_duration_s / 2, self.segment_duration_s / 4)
        grid_index = math.floor((local_start_s + tolerance_s) / self.segment_duration_s)

        changes = Changes()
        growing = rendition.growing
        starts_segment = growing is None or (
            grid_index > growing.grid_index
            and (rendition.kind == "audio" or fragment.starts_with_sync)
        )
        if growing is not None and starts_segment:
            self._complete(rendition, growing)
            growing = None
        if growing is None:
            number = (
                self._epoch_first_number
                if rendition.last_number_in_epoch is None
                else rendition.last_number_in_epoch + 1
            )
            rendition.last_number_in_epoch = number
            growing = _Growing(
                number=number,
                grid_index=grid_index,
                start_ticks=fragment.decode_time_ticks + rendition.offset_ticks,
            )
            rendition.growing = growing
        self._first_part_s.setdefault(rendition_id, fragment_duration_s)
        data = rebase_fragment(fragment.data, rendition.offset_ticks)
        growing.parts.append(
            PartRecord(
                index=len(growing.parts),
                duration_s=fragment_duration_s,
                independent=fragment.starts_with_sync,
                byte_offset=growing.byte_length,
                byte_length=len(data),
            )
        )
        growing.chunks.append(data)
        growing.duration_ticks += fragment.duration_ticks
        growing.byte_length += len(data)
        changes.parts_published.add(rendition_id)
        changes.merge(self._commit_ready(now_unix_s))
        return changes

    def end_epoch(self, *, now_unix_s: float) -> Changes:
        """The encoder run is over: finish what every rendition has, discard the rest."""
        self._edges.clear()
        for rendition in self._renditions.values():
            if rendition.growing is not None and rendition.growing.parts:
                self._complete(rendition, rendition.growing)
            rendition.growing = None
        changes = self._commit_ready(now_unix_s)
        for rendition in self._renditions.values():
            rendition.completed.clear()
            rendition.last_number_in_epoch = None
        return changes

    # ------------------------------------------------------------------ views

    def edge(self, rendition_id: str) -> RenditionEdge:
        edge = self._edges.get(rendition_id)
        if edge is None:
            rendition = self._renditions[rendition_id]
            edge = self._edges[rendition_id] = RenditionEdge(
                rendition_id=rendition_id,
                kind=rendition.kind,
                track=rendition.track,
                init_name=rendition.init_name,
                committed=tuple(self._committed[rendition_id]),
                partial=self._visible_partial(rendition),
            )
        return edge

    def periods(self) -> tuple[Period, ...]:
        return tuple(self._periods)

    def segment_bytes(self, rendition_id: str, number: int) -> bytes | None:
        """A committed segment held in memory (the newest few), else None (→ disk)."""
        return self._segment_bytes.get((rendition_id, number))

    def growing_bytes(self, rendition_id: str, number: int) -> tuple[bytes, bool] | None:
        """Bytes so far of a not-yet-committed segment, and whether it is complete."""
        rendition = self._renditions.get(rendition_id)
        if rendition is None:
            return None
        for record, data in rendition.completed:
            if record.number == number:
                return data, True
        growing = rendition.growing
        if growing is not None and growing.number == number:
            return b"".join(growing.chunks), False
        return None

    def awaits_commit(self, rendition_id: str, number: int) -> bool:
        """Has the rendition finished segment ``number``, which now waits at the commit barrier?"""
        rendition = self._renditions.get(rendition_id)
        return rendition is not None and any(r.number == number for r, _ in rendition.completed)

    def next_part_opens_segment(self, rendition_id: str) -> bool:
        """Will the rendition's next fragment open a new segment rather than extend the growing one?

        Exact once the rendition has finished the visible segment (it waits at the commit
        barrier); otherwise the cut rule of :meth:`on_fragment` applied to the next fragment,
        assumed as long as the last part, in the rendition's *own* encoder time. (Predicting from
        another rendition's grid was wrong whenever audio and video start apart: the preload hint
        then named a part that never came, and Shaka waited on it for 3 × TD.) Video cuts need a
        keyframe too, and the encoder forces one on every grid line.
        """
        rendition = self._renditions[rendition_id]
        if any(record.number == self.next_number for record, _ in rendition.completed):
            return True
        growing = rendition.growing
        track = rendition.track
        if growing is None or not growing.parts or track is None or rendition.offset_ticks is None:
            return False
        next_local_s = (growing.start_ticks + growing.duration_ticks - rendition.offset_ticks) / (
            track.timescale
        )
        last_part_s = growing.parts[-1].duration_s
        tolerance_s = min(last_part_s / 2, self.segment_duration_s / 4)
        return (
            math.floor((next_local_s + tolerance_s) / self.segment_duration_s) > growing.grid_index
        )

    def part_bytes(self, rendition_id: str, number: int, part_index: int) -> bytes | None:
        rendition = self._renditions.get(rendition_id)
        if rendition is None:
            return None
        growing = rendition.growing
        if growing is not None and growing.number == number:
            if 0 <= part_index < len(growing.chunks):
                return growing.chunks[part_index]
            return None
        for record, pending in rendition.completed:
            if record.number == number:
                return _slice_part(record, pending, part_index)
        held = self._segment_bytes.get((rendition_id, number))
        if held is None:
            return None
        for record in reversed(self._committed[rendition_id]):
            if record.number == number:
                return _slice_part(record, held, part_index)
        return None

    def oldest_retained_number(self) -> int | None:
        firsts = [c[0].number for c in self._committed.values() if c]
        return min(firsts) if firsts else None

    def observed_part_s(self) -> float:
        """The longest first part any rendition produced (0 before any)."""
        return max(self._first_part_s.values(), default=0.0)

    def discontinuity_sequence(self, first_listed_number: int) -> int:
        """How many discontinuities precede the segment ``first_listed_number`` (HLS)."""
        return sum(1 for n in self._discontinuity_numbers if n <= first_listed_number)

    @property
    def timeline_end_s(self) -> float:
        return self._timeline_end_s

    # ------------------------------------------------------------------ internals

    def _choose_epoch_base_s(self, fragment: Fragment, timescale: int, now_unix_s: float) -> float:
        # Anchor media time to the wall clock at the moment the first fragment of the run is
        # complete, so that DASH availability (AST + media end) and HLS PDT say "now" for it…
        fragment_end_s = fragment.end_time_ticks / timescale
        anchored = now_unix_s - self.availability_start_unix_s - fragment_end_s
        # …but never earlier than where the previous run ended: the timeline only moves forward.
        return max(anchored, self._timeline_end_s, 0.0)

    def _record(self, rendition: _Rendition, growing: _Growing) -> SegmentRecord:
        """The segment record of a growing segment as it stands now."""
        track = rendition.track
        assert track is not None
        return SegmentRecord(
            number=growing.number,
            start_ticks=growing.start_ticks,
            duration_ticks=growing.duration_ticks,
            timescale=track.timescale,
            program_date_time_unix_s=self.availability_start_unix_s
            + growing.start_ticks / track.timescale,
            byte_length=growing.byte_length,
            epoch=self.epoch,
            init_name=rendition.init_name or "",
            parts=tuple(growing.parts),
        )

    def _complete(self, rendition: _Rendition, growing: _Growing) -> None:
        record = self._record(rendition, growing)
        rendition.completed.append((record, b"".join(growing.chunks)))

    def _commit_ready(self, now_unix_s: float) -> Changes:
        changes = Changes()
        renditions = list(self._renditions.values())
        while all(r.completed and r.completed[0][0].number == self.next_number for r in renditions):
            number = self.next_number
            if self._init_changed:
                self._start_period(number, min(r.completed[0][0].start_s for r in renditions))
            if self._last_committed_epoch not in (None, self.epoch):
                self._discontinuity_numbers.append(number)
            self._last_committed_epoch = self.epoch
            for rendition in renditions:
                record, data = rendition.completed.popleft()
                self._retain(rendition.rendition_id, record, data)
                changes.writes.append(
                    FileWrite(rendition.rendition_id, segment_file_name(number), data)
                )
                end_s = (record.start_ticks + record.duration_ticks) / record.timescale
                self._timeline_end_s = max(self._timeline_end_s, end_s)
            changes.segments_committed.append(number)
            self.next_number += 1
            self.segments_committed_total += 1
            self.last_commit_unix_s = now_unix_s
        # a rendition whose head is behind the barrier (should not happen) would block forever:
        for rendition in renditions:
            while rendition.completed and rendition.completed[0][0].number < self.next_number:
                rendition.completed.popleft()
        return changes

    def _start_period(self, first_number: int, start_s: float) -> None:
        self._init_changed = False
        names = tuple((r.rendition_id, r.init_name or "") for r in self._renditions.values())
        self._periods.append(Period(f"p{first_number}", first_number, start_s, names))

    def _retain(self, rendition_id: str, record: SegmentRecord, data: bytes) -> None:
        committed = self._committed[rendition_id]
        committed.append(record)
        self._segment_bytes[(rendition_id, record.number)] = data
        while len(committed) > self._retained:
            committed.popleft()
        stale_in_memory = record.number - self._memory_segments
        self._segment_bytes.pop((rendition_id, stale_in_memory), None)
        oldest = committed[0].number
        # drop periods that no retained segment belongs to any more
        while len(self._periods) > 1 and self._periods[1].first_number <= oldest:
            self._periods.pop(0)

    def _visible_partial(self, rendition: _Rendition) -> SegmentRecord | None:
        """The segment after the last committed one, as far as this rendition has it.

        Parts of a later segment stay hidden until the barrier commits the earlier one, so a
        playlist never lists parts of segment n+1 before segment n is complete everywhere.
        """
        if rendition.track is None:
            return None
        for record, _data in rendition.completed:
            if record.number == self.next_number:
                return record
            return None
        growing = rendition.growing
        if growing is None or growing.number != self.next_number or not growing.parts:
            return None
        return self._record(rendition, growing)


def _slice_part(record: SegmentRecord, data: bytes, part_index: int) -> bytes | None:
    if not 0 <= part_index < len(record.parts):
        return None
    part = record.parts[part_index]
    return data[part.byte_offset : part.byte_offset + part.byte_length]
