"""Records shared by the packager's pure parts: box reader → segmenter → HLS/DASH writers.

Nothing here imports trio or HTTP. Everything is frozen so a snapshot handed to a writer (or to the
origin) can never change under it.

Units: ``*_ticks`` are in the track's media timescale (``TrackInfo.timescale``); ``*_s`` are
seconds;
``*_unix_s`` are seconds since the Unix epoch (wall clock).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

TrackKind = Literal["video", "audio"]


@dataclass(frozen=True, slots=True)
class TrackInfo:
    """What the init segment (ftyp+moov) says about its single track."""

    track_id: int
    kind: TrackKind
    timescale: int
    codec: str  # RFC 6381 string: "avc1.64001f", "mp4a.40.2"
    width: int | None = None
    height: int | None = None
    sample_rate: int | None = None
    channels: int | None = None


@dataclass(frozen=True, slots=True)
class InitSegment:
    """The ftyp+moov prefix of one CMAF track."""

    data: bytes
    track: TrackInfo


@dataclass(frozen=True, slots=True)
class Fragment:
    """One moof+mdat pair (a CMAF chunk): an LL-HLS part, an LL-DASH chunk.

    ``data`` holds the complete bytes (any styp/prft/emsg before the moof included).
    """

    data: bytes
    track_id: int
    decode_time_ticks: int  # tfdt baseMediaDecodeTime
    duration_ticks: int  # sum of the trun sample durations
    sample_count: int
    starts_with_sync: bool  # first sample is a sync sample (IDR for video; always for AAC)

    @property
    def end_time_ticks(self) -> int:
        return self.decode_time_ticks + self.duration_ticks


@dataclass(frozen=True, slots=True)
class PartRecord:
    """A published part of a segment: one fragment, addressable alone or as a byte range."""

    index: int  # 0-based within its segment
    duration_s: float
    independent: bool
    byte_offset: int  # offset inside the segment file
    byte_length: int


@dataclass(frozen=True, slots=True)
class SegmentRecord:
    """A complete (or, for the live edge, growing) media segment of one rendition."""

    number: int  # media sequence number == DASH $Number$ (same file serves both)
    start_ticks: int  # presentation start in the track timescale (DASH SegmentTimeline @t)
    duration_ticks: int
    timescale: int
    program_date_time_unix_s: float  # wall-clock time of the first sample (EXT-X-PROGRAM-DATE-TIME)
    byte_length: int
    epoch: int  # encoder run that produced it; a change between neighbours is a discontinuity
    init_name: str  # file name of the init segment this segment decodes with
    parts: tuple[PartRecord, ...] = field(default=())

    @property
    def duration_s(self) -> float:
        return self.duration_ticks / self.timescale

    @property
    def start_s(self) -> float:
        return self.start_ticks / self.timescale
