"""The packager's pure core: one timeline and one numbering for every rendition of a stream.

Fragments (moof+mdat) come in per rendition from the box reader; this module

* rebases their decode times onto a wall-clock-anchored timeline (media time ``t`` is shown at
  ``availability_start + t``), so numbering and time survive encoder restarts: each encoder run
  is an *epoch* that starts where the previous one ended, never earlier. Every rendition of an
  epoch is shifted by the same amount (one origin): the encoder's own timestamps say how far
  apart its outputs start (joining a live source mid-GOP, audio starts at its first packet and
  video only at the next keyframe), and that offset is what keeps lip sync and the video's PDT
  true to its capture. Audio from before the leader's first cut is dropped, so the first
  segment of every rendition starts within one audio fragment of the others;
* groups fragments into segments, each fragment staying a first-class part. One rendition, the
  *leader* (the first video rendition), cuts on the segment grid: at its first sync sample in a
  grid slot (``k × segment_duration_s`` of the epoch's own time) later than the slot its current
  segment started in. Every other rendition (the other rungs, audio) follows the leader's cuts *by
  media time*: a fragment belongs to the leader segment its midpoint falls in, and opens it if it
  can (audio always, video at a sync sample). So renditions agree by time, never by how many
  segments each has counted: a passthrough source whose GOP (2.5 s, say) is not a divisor of the
  segment duration gives 2.5 s segments in every rendition, audio included, with equal numbers;
* commits segment ``n`` only when *every* rendition has completed it (a barrier), so all media
  playlists list the same numbers and the DASH timeline lines up across representations.

Numbers are contiguous (HLS needs that: the media sequence number is implicit, and so is DASH's
``$Number$`` in a SegmentTimeline), so a segment is identified inside its epoch by the leader's
segment *index*, and gets its number when it is committed. Numbering by grid slot instead would
leave holes whenever a GOP is longer than a slot (2.5 s GOPs on a 2 s grid skip every fifth slot).
The barrier is bounded: a segment index that some rendition went past without producing, or that
keeps more than ``barrier_limit_segments`` finished segments of other renditions waiting (one
rendition stalled), is given up everywhere, and later segments take the next number; when an epoch
ends, a segment some rendition never started is discarded everywhere the same way. Followers never
wait for a stalled leader with more than that much media held back either.

It holds the live edge in memory (growing segment, its parts, the last few segments); disk writes
are returned as ``FileWrite`` records for the async shell to perform. No I/O, no clock reads, no
trio.
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

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

# A new encoder run's DASH Period starts this much before the end of the media before it
# (``StreamTimeline._previous_media_end_s``): inside what every player has buffered, whatever the
# rounding of the times it seeks to (dash.js rounds a Period's end to 10 µs).
PERIOD_START_BEFORE_MEDIA_END_S = 0.1


@dataclass(frozen=True, slots=True)
class TimelinePosition:
    """Where a stream's timeline stands after its latest commit: what a resumed stream (a restarted
    service, another node) continues from, so players see numbers and media time move on.

    Kept in the stream registry; built by :meth:`StreamTimeline.position`, taken by
    ``StreamTimeline(resume_from=...)``.
    """

    availability_start_unix_s: float  # media time 0 of the stream (DASH AST, HLS PDT base)
    encoder_epoch: int  # the encoder run that committed ``last_number``
    last_number: int  # the newest committed segment number
    media_end_s: float  # end of the newest committed media, seconds since availability start
    discontinuities: int  # discontinuity points up to and including ``last_number``

    def is_newer_than(self, other: TimelinePosition) -> bool:
        """Does this position come after ``other``? (Numbers never go back, so they decide.)"""
        return self.last_number > other.last_number


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
    segments_abandoned: int = 0  # given up at the barrier: a gap in the media, worth a log line
    # the encoder run is over: the MPD now says so (``StreamTimeline.media_interrupted``), even
    # when the run left nothing more to commit
    epoch_ended: bool = False

    def merge(self, other: Changes) -> None:
        self.writes.extend(other.writes)
        self.parts_published |= other.parts_published
        self.segments_committed.extend(other.segments_committed)
        self.segments_abandoned += other.segments_abandoned
        self.epoch_ended |= other.epoch_ended

    @property
    def anything(self) -> bool:
        return bool(
            self.writes
            or self.parts_published
            or self.segments_committed
            or self.segments_abandoned
            or self.epoch_ended
        )


@dataclass(slots=True)
class _Growing:
    index: int  # the leader segment this one matches, within the epoch: its identity
    grid_index: int  # leader only: which slot of the epoch's segment grid it starts in
    start_ticks: int
    chunks: list[bytes] = field(default_factory=list)
    parts: list[PartRecord] = field(default_factory=list)
    duration_ticks: int = 0
    byte_length: int = 0


@dataclass(frozen=True, slots=True)
class _Finished:
    """A complete segment of one rendition, waiting at the commit barrier."""

    index: int
    record: SegmentRecord  # its number is a prediction until the commit assigns the real one
    data: bytes


@dataclass(frozen=True, slots=True)
class Period:
    """A run of segments decodable with one set of init segments (DASH Period)."""

    period_id: str
    first_number: int
    # seconds since AST: where the media before it ended (an epoch's Period), or, for the
    # stream's first, its first segment's start (earliest rendition); never after that start
    start_s: float
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
        "held",
        "init_data",
        "init_version",
        "kind",
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
        # complete segments waiting at the commit barrier, oldest first
        self.completed: deque[_Finished] = deque()
        # a follower's fragments whose segment depends on a leader cut not yet seen
        self.held: deque[Fragment] = deque()

    @property
    def init_name(self) -> str | None:
        return init_file_name(self.init_version) if self.init_version else None

    def passed(self, index: int) -> bool:
        """Has this rendition gone past segment ``index`` without finishing it?"""
        if self.completed:
            return self.completed[0].index > index
        return self.growing is not None and self.growing.index > index


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
        barrier_limit_segments: int = 8,
        resume_from: TimelinePosition | None = None,
        target_duration_s: float = math.inf,
    ) -> None:
        """``resume_from``: continue a stream an earlier process (or node) published, from the
        registry: its availability start replaces ``availability_start_unix_s`` (media time and
        DASH's AST stay those players know), numbers go on above its last one, media time never
        before its end, and the first segment committed here is a discontinuity (HLS) and opens
        a new Period (DASH), as after any encoder restart."""
        if not renditions:
            raise ValueError("a stream needs at least one rendition")
        self.segment_duration_s = segment_duration_s
        # EXT-X-TARGETDURATION, fixed up front (publish.target_duration_s): the leader cuts
        # before a fragment that would make some rendition's EXTINF round above it, even without
        # a sync sample (a copied video's keyframes may be further apart than it allows);
        # see leader_cap_s
        self.target_duration_s = target_duration_s
        self._audio_fragment_s = 0.0  # the longest audio fragment seen (leader_cap_s)
        self._has_audio = any(kind == "audio" for _rid, kind in renditions)
        self.availability_start_unix_s = availability_start_unix_s
        self._renditions = {rid: _Rendition(rid, kind) for rid, kind in renditions}
        # the rendition whose cuts every other one follows: video cuts need a sync sample, and
        # audio (any fragment is a sync point) can cut wherever video did
        self._leader_id = next(
            (rid for rid, kind in renditions if kind == "video"), renditions[0][0]
        )
        self._retained = max(retained_segments, 1)
        self._memory_segments = max(memory_segments, 1)
        self._barrier_limit = max(barrier_limit_segments, 1)
        self._committed: dict[str, deque[SegmentRecord]] = {
            rid: deque() for rid in self._renditions
        }
        self._segment_bytes: dict[tuple[str, int], bytes] = {}
        self.epoch = 0
        self.next_number = 0
        # the epoch's segments: the leader's cut times (epoch time, seconds) by segment index,
        # how far the leader's media reaches (no cut before it is still unknown), and the index
        # the barrier waits for (it gets ``next_number``)
        self._cuts_s: list[float] = []
        # leader segment indexes cut at the cap without a sync sample: followers cut there too
        self._cuts_without_sync: set[int] = set()
        self._leader_end_s: float | None = None
        # the leader's last two sync samples (epoch time): where its next keyframes are expected
        self._leader_syncs_s: deque[float] = deque(maxlen=2)
        self._leader_done = False
        self._next_index = 0
        self._epoch_base_s: float | None = None
        self._epoch_floor_s = 0.0  # where the epoch's media may start: the previous one's end
        self._timeline_end_s = 0.0  # end of the latest committed media, seconds since AST
        self._periods: list[Period] = []
        self._init_changed = True
        # first committed number of every epoch after the first: HLS discontinuity points
        self._discontinuity_numbers: list[int] = []
        self._last_committed_epoch: int | None = None
        # an encoder run ended and the next one has committed nothing yet (media_interrupted)
        self._interrupted = False
        self._discontinuities_before = 0  # in earlier lives of the stream (resume_from)
        self.segments_committed_total = 0
        self.segments_abandoned_total = 0  # given up at the barrier (never numbered)
        self.fragments_dropped_total = 0  # held back too long for a leader that did not come
        self.last_commit_unix_s: float | None = None
        # the longest committed segment of any rendition: EXT-X-TARGETDURATION and DASH
        # maxSegmentDuration must cover it (a passthrough GOP can exceed the configured duration)
        self.longest_segment_s = 0.0
        # Longest first part seen per rendition. A full part's length depends on the frame rate
        # (0.5 s is 15 frames at 30 fps but 13 frames = 0.52 s at 25 fps), so the PART-TARGET we
        # advertise is taken from the media, once, before any part is listed.
        self._first_part_s: dict[str, float] = {}
        # edge() views, built once per input: the HTTP layer reads them per request (blocking
        # reloads, rendition reports) far more often than fragments arrive. Every input clears it.
        self._edges: dict[str, RenditionEdge] = {}
        self.resumed = resume_from is not None
        if resume_from is not None:
            self.availability_start_unix_s = resume_from.availability_start_unix_s
            self.epoch = resume_from.encoder_epoch
            self.next_number = resume_from.last_number + 1
            self._timeline_end_s = resume_from.media_end_s
            self._last_committed_epoch = resume_from.encoder_epoch
            self._discontinuities_before = resume_from.discontinuities

    # ------------------------------------------------------------------ inputs

    @property
    def rendition_ids(self) -> tuple[str, ...]:
        return tuple(self._renditions)

    def begin_epoch(self) -> int:
        """Start a new encoder run; returns its epoch number (1, 2, …)."""
        self._edges.clear()
        self.epoch += 1
        self._epoch_base_s = None
        self._cuts_s = []
        self._cuts_without_sync = set()
        self._leader_end_s = None
        self._leader_syncs_s.clear()
        self._leader_done = False
        self._next_index = 0
        for rendition in self._renditions.values():
            rendition.offset_ticks = None
            rendition.growing = None
            rendition.completed.clear()
            rendition.held.clear()
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
            self._epoch_floor_s = self._timeline_end_s
            self._epoch_base_s = self._choose_epoch_base_s(fragment, timescale, now_unix_s)
        if rendition.offset_ticks is None:
            # The epoch's one origin. ceil, and the floor: a rendition must never start before
            # where the previous epoch ended. Only a rendition whose media starts earlier than
            # the first fragment that arrived, in an epoch that had to be pushed to the floor
            # (an encoder faster than real time), is moved on its own, and loses its offset.
            rendition.offset_ticks = max(
                math.ceil(self._epoch_base_s * timescale),
                math.ceil(self._epoch_floor_s * timescale) - fragment.decode_time_ticks,
            )
        changes = Changes()
        if rendition.kind == "audio":
            self._audio_fragment_s = max(
                self._audio_fragment_s, fragment.duration_ticks / timescale
            )
        if rendition_id == self._leader_id:
            self._place_leader(rendition, fragment, changes)
            # the leader's media reaches further: held fragments of the others may now fit
            for other in self._renditions.values():
                if other.held:
                    self._release_held(other, changes)
        else:
            rendition.held.append(fragment)
            self._release_held(rendition, changes)
        changes.merge(self._commit_ready(now_unix_s))
        return changes

    def end_epoch(self, *, now_unix_s: float) -> Changes:
        """The encoder run is over: finish what every rendition has, discard the rest."""
        self._edges.clear()
        changes = Changes()
        self._leader_done = True  # every cut is known now
        for rendition in self._renditions.values():
            self._release_held(rendition, changes)
        for rendition in self._renditions.values():
            if rendition.growing is not None and rendition.growing.parts:
                self._complete(rendition, rendition.growing)
            rendition.growing = None
        changes.merge(self._commit_ready(now_unix_s))
        for rendition in self._renditions.values():
            rendition.completed.clear()
        self._interrupted = self._last_committed_epoch is not None
        changes.epoch_ended = True
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

    @property
    def media_interrupted(self) -> bool:
        """Has an encoder run ended with no segment of the next one committed yet (a publisher
        gone, an encoder restarting)? The media published so far stays as it is until then."""
        return self._interrupted

    def segment_bytes(self, rendition_id: str, number: int) -> bytes | None:
        """A committed segment held in memory (the newest few), else None (→ disk)."""
        return self._segment_bytes.get((rendition_id, number))

    def growing_bytes(self, rendition_id: str, number: int) -> tuple[bytes, bool] | None:
        """Bytes so far of a not-yet-committed segment, and whether it is complete."""
        rendition = self._renditions.get(rendition_id)
        if rendition is None or number < self.next_number:
            return None
        index = self._index_of(number)
        for finished in rendition.completed:
            if finished.index == index:
                return finished.data, True
        growing = rendition.growing
        if growing is not None and growing.index == index:
            return b"".join(growing.chunks), False
        return None

    def awaits_commit(self, rendition_id: str, number: int) -> bool:
        """Has the rendition finished segment ``number``, which now waits at the commit barrier?"""
        rendition = self._renditions.get(rendition_id)
        if rendition is None or number < self.next_number:
            return False
        index = self._index_of(number)
        return any(finished.index == index for finished in rendition.completed)

    def next_part_opens_segment(self, rendition_id: str) -> bool:
        """Will the rendition's next fragment open a new segment rather than extend the growing one?

        Exact once the rendition has finished the visible segment (it waits at the commit
        barrier) or the leader has cut past it; otherwise predicted in the rendition's *own*
        encoder time, with the next fragment assumed as long as the last part: it opens the next
        segment when its midpoint reaches the leader's next cut (a follower's fragment joins the
        leader segment its midpoint falls in; the leader's own cuts fall on fragment starts), or
        when the leader would pass the length cap. (Predicting from another rendition's rebased
        times was wrong whenever audio and video start apart, and predicting the cut on the
        segment grid of the tfdt times was wrong whenever the encoder's keyframes are not on it:
        the preload hint then named a part that never came, or skipped one that did.)
        """
        rendition = self._renditions[rendition_id]
        if any(finished.index == self._next_index for finished in rendition.completed):
            return True
        growing = rendition.growing
        track = rendition.track
        if growing is None or not growing.parts or track is None or rendition.offset_ticks is None:
            return False
        end_ticks = growing.start_ticks + growing.duration_ticks - rendition.offset_ticks
        next_local_s = end_ticks / track.timescale
        last_part_s = growing.parts[-1].duration_s
        if rendition_id == self._leader_id and self._over_cap(next_local_s + last_part_s):
            return True
        # from ticks in one division, as _release_held places it: a midpoint exactly on a cut
        # must compare equal here and there (float sums differ in the last bit)
        last_part_ticks = round(last_part_s * track.timescale)
        midpoint_s = (end_ticks + last_part_ticks / 2) / track.timescale
        return midpoint_s >= self._next_leader_cut_s(growing.index)

    def _next_leader_cut_s(self, index: int) -> float:
        """Where the leader's segment after ``index`` starts (epoch time): known once it cut
        there, else predicted from where its keyframes come.

        The leader cuts at its first keyframe in a later grid slot than its segment's. Keyframes
        come one keyframe interval after the last (the encoder forces one every segment duration
        of *its own* time, which need not be the tfdt's: frag_discont keeps the source's
        timestamps, so they sit anywhere on the tfdt grid, e.g. at 1.367 s + 2k), so the
        prediction walks from the last keyframe seen, never from the grid lines themselves.
        """
        cuts = self._cuts_s
        if index + 1 < len(cuts):
            return cuts[index + 1]
        leader = self._renditions[self._leader_id]
        growing = leader.growing
        if not cuts or growing is None or not self._leader_syncs_s:
            return math.inf  # the leader has not started: followers hold their fragments
        syncs = self._leader_syncs_s
        interval_s = syncs[-1] - syncs[0] if len(syncs) == 2 else 0.0
        if interval_s <= 0:
            interval_s = self.segment_duration_s
        last_part_s = growing.parts[-1].duration_s if growing.parts else interval_s
        tolerance_s = min(last_part_s / 2, self.segment_duration_s / 4)
        # the cap cuts at the start of the first leader fragment that would end past it
        cap_span_s = self.leader_cap_s
        if math.isfinite(cap_span_s) and last_part_s > 0:
            cap_span_s = max(1, math.floor((cap_span_s + 1e-6) / last_part_s)) * last_part_s
        cut_s, grid_index, keyframe_s = cuts[-1], growing.grid_index, syncs[-1]
        mid_gop = bool(growing.parts) and not growing.parts[0].independent
        for _ in range(len(cuts) - 1, index + 1):
            # the next expected keyframe that cuts (a later slot, or — the segment having been
            # cut at the cap, mid-GOP — half a segment in: _realigns), or the cap before it
            keyframe_s += interval_s
            while not (
                math.floor((keyframe_s + tolerance_s) / self.segment_duration_s) > grid_index
                or (mid_gop and self._half_a_segment_in(keyframe_s, cut_s))
            ):
                keyframe_s += interval_s
            # the cap cuts first only a whole fragment before the keyframe (within half a
            # fragment it is the keyframe's own boundary, off by float sums of part lengths)
            capped_s = cut_s + cap_span_s
            mid_gop = capped_s < keyframe_s - last_part_s / 2
            cut_s = capped_s if mid_gop else keyframe_s
            # a cut at the cap skips its own slot, as _place_leader does
            grid_index = math.floor((cut_s + tolerance_s) / self.segment_duration_s) + mid_gop
        return cut_s

    def part_bytes(self, rendition_id: str, number: int, part_index: int) -> bytes | None:
        rendition = self._renditions.get(rendition_id)
        if rendition is None:
            return None
        if number >= self.next_number:
            index = self._index_of(number)
            growing = rendition.growing
            if growing is not None and growing.index == index:
                if 0 <= part_index < len(growing.chunks):
                    return growing.chunks[part_index]
                return None
            for finished in rendition.completed:
                if finished.index == index:
                    return _slice_part(finished.record, finished.data, part_index)
            return None
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
        return self._discontinuities_before + sum(
            1 for n in self._discontinuity_numbers if n <= first_listed_number
        )

    @property
    def awaiting_first_segment_after_resume(self) -> bool:
        """Resumed, and nothing committed in this life yet: players that were watching know
        only numbers far below, so a playlist of parts alone would leave them no segment to
        continue with (hls.js: a fatal levelEmptyError); better no playlist yet (they retry)."""
        return self.resumed and self.segments_committed_total == 0

    def position(self) -> TimelinePosition | None:
        """Where the timeline stands (for the registry), None before anything was committed."""
        if self._last_committed_epoch is None:
            return None
        return TimelinePosition(
            availability_start_unix_s=self.availability_start_unix_s,
            encoder_epoch=self._last_committed_epoch,
            last_number=self.next_number - 1,
            media_end_s=self._timeline_end_s,
            discontinuities=self._discontinuities_before + len(self._discontinuity_numbers),
        )

    def waiting_segments(self) -> int:
        """Finished segments held at the barrier, all renditions (bounded by the barrier limit)."""
        return sum(len(r.completed) for r in self._renditions.values())

    def held_fragments(self) -> int:
        """Fragments the followers hold back until the leader's cut is known."""
        return sum(len(r.held) for r in self._renditions.values())

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
        # The encoder's times need not start at 0 (nor be positive: AAC's priming frame is
        # stamped before 0), so it is the fragment's start that must not land before that end.
        fragment_start_s = fragment.decode_time_ticks / timescale
        return max(anchored, self._epoch_floor_s - fragment_start_s)

    def _index_of(self, number: int) -> int:
        """The epoch's segment index a not-yet-committed ``number`` would be given to."""
        return self._next_index + number - self.next_number

    def _place_leader(self, rendition: _Rendition, fragment: Fragment, changes: Changes) -> None:
        assert rendition.track is not None
        timescale = rendition.track.timescale
        local_start_s = fragment.decode_time_ticks / timescale
        fragment_duration_s = fragment.duration_ticks / timescale
        tolerance_s = min(fragment_duration_s / 2, self.segment_duration_s / 4)
        grid_index = math.floor((local_start_s + tolerance_s) / self.segment_duration_s)
        growing = rendition.growing
        cuts = (
            growing is None
            or (
                (rendition.kind == "audio" or fragment.starts_with_sync)
                and (
                    grid_index > growing.grid_index
                    or self._realigns(growing, local_start_s)
                )
            )
            or self._over_cap(local_start_s + fragment_duration_s)
        )
        if cuts:
            if growing is not None:
                self._complete(rendition, growing)
            if rendition.kind == "video" and not fragment.starts_with_sync:
                self._cuts_without_sync.add(len(self._cuts_s))
                # cut at the cap, mid-slot: the next keyframe cut waits for the slot after the
                # next grid line, or a keyframe just past it would leave a sliver of a segment
                grid_index += 1
            self._start_segment(rendition, fragment, len(self._cuts_s), grid_index)
            self._cuts_s.append(local_start_s)
        # one division from ticks, never start + duration: a follower's midpoint exactly at
        # this end (the next keyframe's cut) must not compare below it by float noise
        self._leader_end_s = (fragment.decode_time_ticks + fragment.duration_ticks) / timescale
        if fragment.starts_with_sync:
            self._leader_syncs_s.append(local_start_s)
        self._append(rendition, fragment, changes)

    def _realigns(self, growing: _Growing, keyframe_s: float) -> bool:
        """Does a keyframe at ``keyframe_s`` end the leader's segment cut at the cap (mid-GOP)?

        Yes once that segment is half a segment long: the next keyframe ends it however the
        slots fall (before, a keyframe in the cut's own slot was skipped, and with keyframes a
        frame late every later segment was cut at the cap again, mid-GOP), but no sliver.
        """
        return not growing.parts[0].independent and self._half_a_segment_in(
            keyframe_s, self._cuts_s[-1]
        )

    def _half_a_segment_in(self, keyframe_s: float, cut_s: float) -> bool:
        """Is a keyframe at ``keyframe_s`` at least half a segment after the cut at ``cut_s``?"""
        return keyframe_s - cut_s >= self.segment_duration_s / 2 - 1e-6

    @property
    def leader_cap_s(self) -> float:
        """The longest segment the leader makes before it cuts without a keyframe.

        RFC 8216bis §4.4.3.1: every EXTINF, rounded half up, must stay ≤ the target duration,
        i.e. below TD + 0.5 s. The cap was the target duration itself, and that broke every
        source whose keyframes cannot sit exactly on the grid: at 29.97 fps the keyframe forced
        at ``t ≥ n`` s comes up to a frame late (30 frames are 1.001 s), a WebRTC camera's
        (variable rate) up to its frame interval late; the segment reached 1.001 s > 1 s, was
        cut a part early without a keyframe, and from there every segment started mid-GOP
        (0.5 s segments, holes where renditions disagreed — found with the browser's WHIP
        camera, issue 12). The video may take the half second, less what the audio needs: an
        audio segment is the AAC fragments (F ≈ 0.49 s) whose midpoints fall in the video
        segment — and at an epoch's first cut the one straddling it — so it holds at most
        ⌈V/F + ½⌉ of them; with m = ⌊(TD + 0.5)/F⌋ (a µs short), V ≤ (m − ½)·F keeps it to m
        (1.23 s for TD 1, 2.21 s for TD 2 at 48 kHz). Never below the target duration (the
        previous cap), nor before the audio's fragment length is known.
        """
        target_s = self.target_duration_s
        if math.isinf(target_s):
            return target_s
        limit_s = target_s + 0.5 - 1e-3  # EXTINF is written to the ms; 0.5 rounds up
        if not self._has_audio:
            return limit_s
        fragment_s = self._audio_fragment_s
        if fragment_s <= 0:
            return target_s
        fragments = math.floor(limit_s / fragment_s)
        return max(target_s, min((fragments - 0.5) * fragment_s, limit_s))

    def _over_cap(self, leader_end_s: float) -> bool:
        """Would the leader's growing segment, ending at ``leader_end_s``, exceed the cap?"""
        # (a µs of slack: times come from ticks, and a segment exactly at the cap is allowed)
        return bool(self._cuts_s) and leader_end_s - self._cuts_s[-1] > self.leader_cap_s + 1e-6

    def _release_held(self, rendition: _Rendition, changes: Changes) -> None:
        """Place a follower's held fragments whose leader segment is known, oldest first."""
        held = rendition.held
        if not held:
            return
        assert rendition.track is not None
        timescale = rendition.track.timescale
        while held:
            fragment = held[0]
            midpoint_ticks = fragment.decode_time_ticks + fragment.duration_ticks / 2
            index = self._leader_index_at(midpoint_ticks / timescale)
            if index is None:
                break
            held.popleft()
            if rendition.kind == "audio" and self._before_first_picture(fragment, timescale):
                continue
            self._place_follower(rendition, fragment, index, changes)
        # bounded: a leader that stalls must not make the others pile up media without end
        limit_ticks = self._barrier_limit * self.segment_duration_s * timescale
        while held and held[-1].end_time_ticks - held[0].decode_time_ticks > limit_ticks:
            held.popleft()
            self.fragments_dropped_total += 1

    def _before_first_picture(self, fragment: Fragment, timescale: int) -> bool:
        """Audio from before the leader's first cut (joined mid-GOP, audio starts up to a source
        GOP earlier than video) has nothing to be shown with, and keeping it would make the
        first audio segment up to a GOP longer than the video's. A run whose leader never
        produced anything (it ended first) has no first picture: nothing of it is committed."""
        if not self._cuts_s:
            return True
        return fragment.end_time_ticks / timescale <= self._cuts_s[0]

    def _leader_index_at(self, local_s: float) -> int | None:
        """The leader segment (index) that epoch time ``local_s`` falls in, None if not known yet.

        Known once the leader's media reaches past it (the leader cuts only at a fragment's
        start), or when no cut can come before it: the next cut needs a fragment whose start,
        plus a tolerance of at most a quarter slot, reaches the next grid line. So only the
        followers' fragments near a grid line wait for the leader, not every one that arrives
        before the leader's (x264's delay makes video come later than audio).
        """
        if self._leader_done:
            return max(bisect.bisect_right(self._cuts_s, local_s) - 1, 0)
        if self._leader_end_s is None:
            return None
        if local_s < self._leader_end_s:
            return max(bisect.bisect_right(self._cuts_s, local_s) - 1, 0)
        leader = self._renditions[self._leader_id].growing
        assert leader is not None
        earliest_next_cut_s = (leader.grid_index + 1 - 0.25) * self.segment_duration_s
        if not leader.parts[0].independent:  # cut at the cap: a keyframe may realign it sooner
            earliest_next_cut_s = min(
                earliest_next_cut_s, self._cuts_s[-1] + self.segment_duration_s / 2 - 1e-6
            )
        return len(self._cuts_s) - 1 if local_s < earliest_next_cut_s else None

    def _place_follower(
        self, rendition: _Rendition, fragment: Fragment, index: int, changes: Changes
    ) -> None:
        growing = rendition.growing
        if growing is not None and rendition.kind == "audio":
            # Audio can cut anywhere, so it never skips a leader segment: a very short one
            # (a keyframe late in its slot, the next one early in the following slot) may hold
            # no audio fragment's midpoint; the next fragment opens it instead of leaving a hole.
            index = min(index, growing.index + 1)
        if growing is None or (
            index > growing.index
            and (
                rendition.kind == "audio"
                or fragment.starts_with_sync
                or index in self._cuts_without_sync
            )
        ):
            if growing is not None:
                self._complete(rendition, growing)
            # a late sync sample opens the segment it lands in (a follower that misses a whole
            # segment has it given up at the barrier); one in an earlier segment extends this one
            self._start_segment(rendition, fragment, index, grid_index=-1)
        self._append(rendition, fragment, changes)

    def _start_segment(
        self, rendition: _Rendition, fragment: Fragment, index: int, grid_index: int
    ) -> None:
        assert rendition.offset_ticks is not None
        rendition.growing = _Growing(
            index=index,
            grid_index=grid_index,
            start_ticks=fragment.decode_time_ticks + rendition.offset_ticks,
        )

    def _append(self, rendition: _Rendition, fragment: Fragment, changes: Changes) -> None:
        growing = rendition.growing
        assert growing is not None
        assert rendition.track is not None
        assert rendition.offset_ticks is not None
        fragment_duration_s = fragment.duration_ticks / rendition.track.timescale
        self._first_part_s.setdefault(rendition.rendition_id, fragment_duration_s)
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
        changes.parts_published.add(rendition.rendition_id)

    def _record(self, rendition: _Rendition, growing: _Growing) -> SegmentRecord:
        """The segment record of a growing segment as it stands now."""
        track = rendition.track
        assert track is not None
        return SegmentRecord(
            number=self.next_number + growing.index - self._next_index,
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
        rendition.completed.append(_Finished(growing.index, record, b"".join(growing.chunks)))

    def _commit_ready(self, now_unix_s: float) -> Changes:
        changes = Changes()
        renditions = list(self._renditions.values())
        while True:
            for rendition in renditions:  # given up already (a late rendition catching up)
                while rendition.completed and rendition.completed[0].index < self._next_index:
                    rendition.completed.popleft()
            index = self._next_index
            if all(r.completed and r.completed[0].index == index for r in renditions):
                self._commit_heads(renditions, now_unix_s, changes)
            elif any(r.passed(index) or len(r.completed) > self._barrier_limit for r in renditions):
                # Some rendition will never have this segment (it went past it), or stalled
                # while the others finished more than the limit: give it up everywhere; the
                # number is not used, so numbering stays contiguous.
                for rendition in renditions:
                    if rendition.completed and rendition.completed[0].index == index:
                        rendition.completed.popleft()
                self._next_index += 1
                self.segments_abandoned_total += 1
                changes.segments_abandoned += 1
            else:
                return changes

    def _commit_heads(
        self, renditions: list[_Rendition], now_unix_s: float, changes: Changes
    ) -> None:
        number = self.next_number
        heads = [r.completed.popleft() for r in renditions]
        first_start_s = min(h.record.start_s for h in heads)
        new_epoch = self._last_committed_epoch not in (None, self.epoch)
        if new_epoch:
            # Every encoder run after the first opens a Period (DASH) that starts where the media
            # before it ended: the time no publisher or encoder sent anything lies at the start
            # of the new Period, not inside a SegmentTimeline. dash.js never looks past a gap
            # inside a timeline (it asks for the segment at the previous one's end, forever),
            # but it jumps to the first segment of a Period that starts later than the Period.
            self._start_period(number, min(self._previous_media_end_s(), first_start_s))
            self._discontinuity_numbers.append(number)
        elif self._init_changed:
            self._start_period(number, first_start_s)
        self._last_committed_epoch = self.epoch
        self._interrupted = False
        for rendition, head in zip(renditions, heads, strict=True):
            record = head.record
            if record.number != number:
                record = replace(record, number=number)
            self._retain(rendition.rendition_id, record, head.data)
            changes.writes.append(
                FileWrite(rendition.rendition_id, segment_file_name(number), head.data)
            )
            self._timeline_end_s = max(self._timeline_end_s, record.start_s + record.duration_s)
            self.longest_segment_s = max(self.longest_segment_s, record.duration_s)
        changes.segments_committed.append(number)
        self.next_number += 1
        self._next_index += 1
        self.segments_committed_total += 1
        self.last_commit_unix_s = now_unix_s

    def _previous_media_end_s(self) -> float:
        """Where the Period of a new encoder run starts: a hair before the end of the shortest
        rendition of the media before it (the previous run's last segments; after a resume,
        unknown here: the end it left).

        Not the longest one's end (audio ends up to a fragment after video): a player that
        stopped at the end of what it has buffered of every rendition must be at or past the
        old Period's end. dash.js jumps to that end when it is < 1.5 s ahead (GapController);
        a jump past its buffer never completes (the element stays "seeking"), and while it is
        seeking dash.js neither jumps again nor pulls the player into its time-shift window,
        which is how it gets over a pause longer than the 30 s it looks ahead for the next
        Period's first segment (a publisher away 30 s: stuck for good).
        """
        ends = [c[-1].start_s + c[-1].duration_s for c in self._committed.values() if c]
        if not ends:
            return self._epoch_floor_s
        return max(min(ends) - PERIOD_START_BEFORE_MEDIA_END_S, 0.0)

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
        if rendition.completed:
            head = rendition.completed[0]
            if head.index != self._next_index:
                return None
            record = head.record
            return (
                record
                if record.number == self.next_number
                else replace(record, number=self.next_number)
            )
        growing = rendition.growing
        if growing is None or growing.index != self._next_index or not growing.parts:
            return None
        return self._record(rendition, growing)


def _slice_part(record: SegmentRecord, data: bytes, part_index: int) -> bytes | None:
    if not 0 <= part_index < len(record.parts):
        return None
    part = record.parts[part_index]
    return data[part.byte_offset : part.byte_offset + part.byte_length]
