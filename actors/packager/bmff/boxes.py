"""ISO-BMFF low level: box headers, bounds-checked cursors, constants, the one error type.

Every malformed input ends in :class:`BmffError` (a ``ValueError``), never in ``struct.error`` or
``IndexError``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

from actors.packager.model import TrackInfo, TrackKind

# A single box bigger than this is a corrupt size field, not media: a 1080p60 fragment of 1 s is
# a few MB. Refusing early keeps a garbage header from making us buffer the pipe forever.
MAX_BOX_SIZE_BYTES: Final = 256 * 1024 * 1024

U32_MAX: Final = 0xFFFF_FFFF
U64_MAX: Final = 0xFFFF_FFFF_FFFF_FFFF
I64_SIGN: Final = 1 << 63

I32_MIN: Final = -(2**31)
I32_MAX: Final = 2**31 - 1

# sample_flags bit "sample_is_non_sync_sample" (14496-12 §8.8.3.1).
NON_SYNC_FLAG: Final = 0x0001_0000

# tfhd flags
TFHD_BASE_DATA_OFFSET: Final = 0x00_0001
TFHD_SAMPLE_DESCRIPTION_INDEX: Final = 0x00_0002
TFHD_DEFAULT_DURATION: Final = 0x00_0008
TFHD_DEFAULT_SIZE: Final = 0x00_0010
TFHD_DEFAULT_FLAGS: Final = 0x00_0020
TFHD_DEFAULT_BASE_IS_MOOF: Final = 0x02_0000

# trun flags
TRUN_DATA_OFFSET: Final = 0x000_001
TRUN_FIRST_SAMPLE_FLAGS: Final = 0x000_004
TRUN_SAMPLE_DURATION: Final = 0x000_100
TRUN_SAMPLE_SIZE: Final = 0x000_200
TRUN_SAMPLE_FLAGS: Final = 0x000_400
TRUN_SAMPLE_CTO: Final = 0x000_800
TRUN_PER_SAMPLE_FIELDS: Final = (
    TRUN_SAMPLE_DURATION,
    TRUN_SAMPLE_SIZE,
    TRUN_SAMPLE_FLAGS,
    TRUN_SAMPLE_CTO,
)

# Boxes that, seen before a moof, are part of that fragment's bytes (CMAF chunk header boxes).
FRAGMENT_PREFIX_TYPES: Final = frozenset({"styp", "prft", "emsg"})

# Sample entries whose RFC 6381 string is a fixed lowercase name rather than the fourcc.
FIXED_CODEC_NAMES: Final = {"Opus": "opus", "fLaC": "flac"}

HANDLER_KINDS: Final[dict[str, TrackKind]] = {"vide": "video", "soun": "audio"}

# VisualSampleEntry / AudioSampleEntry fixed fields before their child boxes (14496-12 §12.1/12.2).
VISUAL_ENTRY_FIXED_BYTES: Final = 78
AUDIO_ENTRY_FIXED_BYTES: Final = 28
# QuickTime sound description versions 1 and 2 append extra fields before the children.
QT_AUDIO_EXTRA_BYTES: Final = {0: 0, 1: 16, 2: 36}


def signed_decode_time(raw: int, version: int) -> int:
    """A tfdt baseMediaDecodeTime as FFmpeg meant it.

    With ``frag_discont`` and no edit list FFmpeg writes the encoder's own timestamps, and AAC's
    first frame (the encoder's priming) is stamped -1024 samples: a v1 tfdt in two's complement.
    No real decode time comes near 2**63 ticks (millions of years at 90 kHz), so a v1 value with
    the top bit set is that negative time. v0 (32-bit) values are always unsigned.
    """
    return raw - (1 << 64) if version == 1 and raw & I64_SIGN else raw


class BmffError(ValueError):
    """The byte stream is not the single-track fragmented MP4 we expect (or is cut short)."""


@dataclass(frozen=True, slots=True)
class TrackDefaults:
    """The trex defaults of the track: the last fallback when tfhd/trun leave a field out."""

    sample_description_index: int
    sample_duration_ticks: int
    sample_size_bytes: int
    sample_flags: int


@dataclass(frozen=True, slots=True)
class InitDetails:
    """Everything the reader keeps from ftyp+moov; ``track`` is the shared record."""

    track: TrackInfo
    sample_entry: str  # stsd fourcc as written: "avc1" vs "avc3", "hvc1" vs "hev1", "mp4a"
    defaults: TrackDefaults | None  # None when the moov has no mvex/trex


# --------------------------------------------------------------------------------------------
# Low-level readers. Every read is bounds-checked against the enclosing box, not just the
# buffer, so a lying child size cannot make us read a neighbour's bytes.


@dataclass(slots=True)
class Cursor:
    data: bytes
    pos: int
    end: int
    what: str

    def _take(self, n: int) -> int:
        start = self.pos
        if n < 0 or start + n > self.end:
            raise BmffError(
                f"{self.what}: truncated (need {n} bytes at {start}, box ends at {self.end})"
            )
        self.pos = start + n
        return start

    def u8(self) -> int:
        return self.data[self._take(1)]

    def u16(self) -> int:
        return int.from_bytes(self.data[(p := self._take(2)) : p + 2], "big")

    def u24(self) -> int:
        return int.from_bytes(self.data[(p := self._take(3)) : p + 3], "big")

    def u32(self) -> int:
        return int.from_bytes(self.data[(p := self._take(4)) : p + 4], "big")

    def i32(self) -> int:
        return int.from_bytes(self.data[(p := self._take(4)) : p + 4], "big", signed=True)

    def u64(self) -> int:
        return int.from_bytes(self.data[(p := self._take(8)) : p + 8], "big")

    def raw(self, n: int) -> bytes:
        p = self._take(n)
        return self.data[p : p + n]

    def skip(self, n: int) -> None:
        self._take(n)

    def full_box_header(self) -> tuple[int, int]:
        """(version, flags) of a FullBox."""
        return self.u8(), self.u24()


@dataclass(frozen=True, slots=True)
class Box:
    type: str
    start: int  # first byte of the size field
    payload: int  # first byte after the header (after largesize / uuid usertype)
    end: int  # one past the last byte
    largesize: bool  # size field is the 64-bit form (matters when patching sizes)

    def cursor(self, data: bytes) -> Cursor:
        return Cursor(data, self.payload, self.end, self.type)


def _fourcc(raw: bytes) -> str:
    # Real box types are printable ASCII; anything else means we lost sync with the stream (or are
    # reading garbage), and continuing would only produce nonsense sizes.
    if any(b < 0x20 or b > 0x7E for b in raw):
        raise BmffError(f"invalid box type {raw!r}: stream is corrupt or not ISO-BMFF")
    return raw.decode("ascii")


def parse_header(
    data: bytes | bytearray, start: int, limit: int, *, open_end: int | None
) -> tuple[str, int, int, bool] | None:
    """Parse a box header at ``start``; ``limit`` is how far bytes are available.

    Returns (type, header_size, box_size, largesize), or None when more bytes are needed.
    ``open_end`` is where a size-0 box ("extends to the end") ends; None means size 0 is refused.
    """
    if limit - start < 8:
        return None
    size = int.from_bytes(data[start : start + 4], "big")
    box_type = _fourcc(bytes(data[start + 4 : start + 8]))
    header = 8
    largesize = False
    if size == 1:
        if limit - start < 16:
            return None
        size = int.from_bytes(data[start + 8 : start + 16], "big")
        header = 16
        largesize = True
    elif size == 0:
        if open_end is None:
            raise BmffError(
                f"box {box_type!r} has size 0 (extends to end of stream), which cannot be "
                "delimited on a live pipe"
            )
        size = open_end - start
    if box_type == "uuid":
        header += 16  # extended type; only its header length matters to us
    if size < header:
        raise BmffError(f"box {box_type!r} declares size {size}, smaller than its header")
    if size > MAX_BOX_SIZE_BYTES:
        raise BmffError(
            f"box {box_type!r} declares size {size} bytes, above the {MAX_BOX_SIZE_BYTES} limit"
        )
    return box_type, header, size, largesize


def iter_boxes(data: bytes, start: int, end: int) -> Iterator[Box]:
    """Children between ``start`` and ``end`` of a complete buffer; size 0 runs to ``end``."""
    pos = start
    while pos < end:
        parsed = parse_header(data, pos, end, open_end=end)
        if parsed is None:
            raise BmffError(f"{end - pos} stray bytes where a box header was expected at {pos}")
        box_type, header, size, largesize = parsed
        if pos + size > end:
            raise BmffError(
                f"box {box_type!r} at {pos} (size {size}) overruns its parent ending at {end}"
            )
        yield Box(box_type, pos, pos + header, pos + size, largesize)
        pos += size


def children(data: bytes, box: Box, skip: int = 0) -> Iterator[Box]:
    return iter_boxes(data, box.payload + skip, box.end)


def find(data: bytes, parent: Box, box_type: str, *, skip: int = 0) -> Box | None:
    for child in children(data, parent, skip):
        if child.type == box_type:
            return child
    return None


def require(data: bytes, parent: Box, box_type: str) -> Box:
    found = find(data, parent, box_type)
    if found is None:
        raise BmffError(f"{parent.type!r} has no {box_type!r} box")
    return found


def top_level(data: bytes) -> list[Box]:
    return list(iter_boxes(data, 0, len(data)))
