"""ISO-BMFF (fragmented MP4 / CMAF) box reader: FFmpeg's fMP4 pipe → init segment + fragments.

Pure: no trio, no I/O. The packager feeds whatever the pipe hands it to
:class:`FragmentedMp4Reader` and gets back one :class:`~model.InitSegment` followed by one
:class:`~model.Fragment` per ``moof``+``mdat`` (a CMAF chunk, i.e. an LL-HLS part).

Everything the reader reads comes from another process, so every malformed input ends in
:class:`BmffError` (a ``ValueError``) and never in ``struct.error``/``IndexError``: the caller
catches one exception type, logs it and restarts the encoder.

Box layout reference: ISO/IEC 14496-12 (boxes), 14496-14 (esds), 14496-15 (avcC, hvcC and the
RFC 6381 codec strings in its Annex E).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final, final

from actors.packager.model import Fragment, InitSegment, TrackInfo, TrackKind

__all__ = [
    "MAX_BOX_SIZE_BYTES",
    "BmffError",
    "FragmentedMp4Reader",
    "InitDetails",
    "TrackDefaults",
    "fragment_info",
    "hevc_codec_string",
    "mp4a_codec_string",
    "parse_init",
    "parse_init_segment",
    "rebase_fragment",
    "split_stream",
]

# A single box bigger than this is a corrupt size field, not media: a 1080p60 fragment of 1 s is
# a few MB. Refusing early keeps a garbage header from making us buffer the pipe forever.
MAX_BOX_SIZE_BYTES: Final = 256 * 1024 * 1024

_U32_MAX: Final = 0xFFFF_FFFF
_U64_MAX: Final = 0xFFFF_FFFF_FFFF_FFFF
_I32_MIN: Final = -(2**31)
_I32_MAX: Final = 2**31 - 1

# sample_flags bit "sample_is_non_sync_sample" (14496-12 §8.8.3.1).
_NON_SYNC_FLAG: Final = 0x0001_0000

# tfhd flags
_TFHD_BASE_DATA_OFFSET: Final = 0x00_0001
_TFHD_SAMPLE_DESCRIPTION_INDEX: Final = 0x00_0002
_TFHD_DEFAULT_DURATION: Final = 0x00_0008
_TFHD_DEFAULT_SIZE: Final = 0x00_0010
_TFHD_DEFAULT_FLAGS: Final = 0x00_0020
_TFHD_DEFAULT_BASE_IS_MOOF: Final = 0x02_0000

# trun flags
_TRUN_DATA_OFFSET: Final = 0x000_001
_TRUN_FIRST_SAMPLE_FLAGS: Final = 0x000_004
_TRUN_SAMPLE_DURATION: Final = 0x000_100
_TRUN_SAMPLE_SIZE: Final = 0x000_200
_TRUN_SAMPLE_FLAGS: Final = 0x000_400
_TRUN_SAMPLE_CTO: Final = 0x000_800
_TRUN_PER_SAMPLE_FIELDS: Final = (
    _TRUN_SAMPLE_DURATION,
    _TRUN_SAMPLE_SIZE,
    _TRUN_SAMPLE_FLAGS,
    _TRUN_SAMPLE_CTO,
)

# Boxes that, seen before a moof, are part of that fragment's bytes (CMAF chunk header boxes).
_FRAGMENT_PREFIX_TYPES: Final = frozenset({"styp", "prft", "emsg"})

# Sample entries whose RFC 6381 string is a fixed lowercase name rather than the fourcc.
_FIXED_CODEC_NAMES: Final = {"Opus": "opus", "fLaC": "flac"}

_HANDLER_KINDS: Final[dict[str, TrackKind]] = {"vide": "video", "soun": "audio"}

# VisualSampleEntry / AudioSampleEntry fixed fields before their child boxes (14496-12 §12.1/12.2).
_VISUAL_ENTRY_FIXED_BYTES: Final = 78
_AUDIO_ENTRY_FIXED_BYTES: Final = 28
# QuickTime sound description versions 1 and 2 append extra fields before the children.
_QT_AUDIO_EXTRA_BYTES: Final = {0: 0, 1: 16, 2: 36}


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
class _Cursor:
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
class _Box:
    type: str
    start: int  # first byte of the size field
    payload: int  # first byte after the header (after largesize / uuid usertype)
    end: int  # one past the last byte
    largesize: bool  # size field is the 64-bit form (matters when patching sizes)

    def cursor(self, data: bytes) -> _Cursor:
        return _Cursor(data, self.payload, self.end, self.type)


def _fourcc(raw: bytes) -> str:
    # Real box types are printable ASCII; anything else means we lost sync with the stream (or are
    # reading garbage), and continuing would only produce nonsense sizes.
    if any(b < 0x20 or b > 0x7E for b in raw):
        raise BmffError(f"invalid box type {raw!r}: stream is corrupt or not ISO-BMFF")
    return raw.decode("ascii")


def _parse_header(
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


def _iter_boxes(data: bytes, start: int, end: int) -> Iterator[_Box]:
    """Children between ``start`` and ``end`` of a complete buffer; size 0 runs to ``end``."""
    pos = start
    while pos < end:
        parsed = _parse_header(data, pos, end, open_end=end)
        if parsed is None:
            raise BmffError(f"{end - pos} stray bytes where a box header was expected at {pos}")
        box_type, header, size, largesize = parsed
        if pos + size > end:
            raise BmffError(
                f"box {box_type!r} at {pos} (size {size}) overruns its parent ending at {end}"
            )
        yield _Box(box_type, pos, pos + header, pos + size, largesize)
        pos += size


def _children(data: bytes, box: _Box, skip: int = 0) -> Iterator[_Box]:
    return _iter_boxes(data, box.payload + skip, box.end)


def _find(data: bytes, parent: _Box, box_type: str, *, skip: int = 0) -> _Box | None:
    for child in _children(data, parent, skip):
        if child.type == box_type:
            return child
    return None


def _require(data: bytes, parent: _Box, box_type: str) -> _Box:
    found = _find(data, parent, box_type)
    if found is None:
        raise BmffError(f"{parent.type!r} has no {box_type!r} box")
    return found


def _top_level(data: bytes) -> list[_Box]:
    return list(_iter_boxes(data, 0, len(data)))


# --------------------------------------------------------------------------------------------
# Init segment


def parse_init_segment(data: bytes) -> TrackInfo:
    """The single track described by an init segment (ftyp+moov, or a stream that starts so)."""
    return parse_init(data).track


def parse_init(data: bytes) -> InitDetails:
    """Like :func:`parse_init_segment` but also returns the stsd fourcc and the trex defaults."""
    data = bytes(data)
    moov = next((b for b in _top_level(data) if b.type == "moov"), None)
    if moov is None:
        raise BmffError("no 'moov' box: not an init segment")
    traks = [b for b in _children(data, moov) if b.type == "trak"]
    if len(traks) != 1:
        # A muxed moov would need demuxing into single-track CMAF first; the ladder never makes one.
        raise BmffError(f"expected exactly one 'trak' in 'moov', found {len(traks)}")
    trak = traks[0]

    track_id, tkhd_width, tkhd_height = _parse_tkhd(data, _require(data, trak, "tkhd"))
    mdia = _require(data, trak, "mdia")
    timescale = _parse_mdhd(data, _require(data, mdia, "mdhd"))
    kind = _parse_hdlr(data, _require(data, mdia, "hdlr"))
    stbl = _require(data, _require(data, mdia, "minf"), "stbl")
    sample_entry, codec, entry_fields = _parse_stsd(data, _require(data, stbl, "stsd"), kind)

    defaults: TrackDefaults | None = None
    mvex = _find(data, moov, "mvex")
    if mvex is not None:
        for trex in (b for b in _children(data, mvex) if b.type == "trex"):
            trex_track_id, trex_defaults = _parse_trex(data, trex)
            if trex_track_id == track_id:
                defaults = trex_defaults

    if kind == "video":
        width = entry_fields.get("width") or tkhd_width or None
        height = entry_fields.get("height") or tkhd_height or None
        track = TrackInfo(track_id, kind, timescale, codec, width=width, height=height)
    else:
        # The 16.16 sample-rate field cannot hold rates above 65535; mdhd carries the real one.
        sample_rate = entry_fields.get("sample_rate") or timescale
        channels = entry_fields.get("channels") or None
        track = TrackInfo(
            track_id, kind, timescale, codec, sample_rate=sample_rate, channels=channels
        )
    return InitDetails(track=track, sample_entry=sample_entry, defaults=defaults)


def _parse_tkhd(data: bytes, tkhd: _Box) -> tuple[int, int, int]:
    cur = tkhd.cursor(data)
    version, _flags = cur.full_box_header()
    cur.skip(16 if version == 1 else 8)  # creation + modification time
    track_id = cur.u32()
    if track_id == 0:
        raise BmffError("tkhd track_ID is 0")
    cur.skip(4)  # reserved
    cur.skip(8 if version == 1 else 4)  # duration
    cur.skip(8 + 2 + 2 + 2 + 2 + 36)  # reserved, layer, alternate_group, volume, reserved, matrix
    width = cur.u32() >> 16  # 16.16 fixed point
    height = cur.u32() >> 16
    return track_id, width, height


def _parse_mdhd(data: bytes, mdhd: _Box) -> int:
    cur = mdhd.cursor(data)
    version, _flags = cur.full_box_header()
    cur.skip(16 if version == 1 else 8)
    timescale = cur.u32()
    if timescale == 0:
        raise BmffError("mdhd timescale is 0")
    return timescale


def _parse_hdlr(data: bytes, hdlr: _Box) -> TrackKind:
    cur = hdlr.cursor(data)
    cur.full_box_header()
    cur.skip(4)  # pre_defined
    handler = cur.raw(4).decode("latin-1")
    kind = _HANDLER_KINDS.get(handler)
    if kind is None:
        raise BmffError(f"unsupported handler type {handler!r} (want 'vide' or 'soun')")
    return kind


def _parse_trex(data: bytes, trex: _Box) -> tuple[int, TrackDefaults]:
    cur = trex.cursor(data)
    cur.full_box_header()
    track_id = cur.u32()
    return track_id, TrackDefaults(
        sample_description_index=cur.u32(),
        sample_duration_ticks=cur.u32(),
        sample_size_bytes=cur.u32(),
        sample_flags=cur.u32(),
    )


def _parse_stsd(data: bytes, stsd: _Box, kind: TrackKind) -> tuple[str, str, dict[str, int]]:
    cur = stsd.cursor(data)
    cur.full_box_header()
    entry_count = cur.u32()
    if entry_count < 1:
        raise BmffError("stsd has no sample entry")
    # CMAF allows only one entry per track; the first one is what fragments reference.
    entry = next(_iter_boxes(data, cur.pos, stsd.end), None)
    if entry is None:
        raise BmffError("stsd has no sample entry")
    fourcc = entry.type
    fields: dict[str, int] = {}
    codec = _FIXED_CODEC_NAMES.get(fourcc, fourcc)
    if kind == "video":
        ecur = entry.cursor(data)
        ecur.skip(24)  # reserved(6), data_reference_index(2), pre_defined/reserved(16)
        fields["width"] = ecur.u16()
        fields["height"] = ecur.u16()
        if entry.end - entry.payload >= _VISUAL_ENTRY_FIXED_BYTES:
            codec = _video_codec(data, entry, fourcc)
    else:
        ecur = entry.cursor(data)
        ecur.skip(8)  # reserved(6), data_reference_index(2)
        qt_version = ecur.u16()
        ecur.skip(6)  # revision level, vendor
        fields["channels"] = ecur.u16()
        ecur.skip(6)  # samplesize, pre_defined, reserved
        fields["sample_rate"] = ecur.u32() >> 16
        extra = _QT_AUDIO_EXTRA_BYTES.get(qt_version, 0)
        if fourcc == "mp4a":
            esds = _find(data, entry, "esds", skip=_AUDIO_ENTRY_FIXED_BYTES + extra)
            if esds is not None:
                codec = mp4a_codec_string(data[esds.payload : esds.end])
    return fourcc, codec, fields


def _video_codec(data: bytes, entry: _Box, fourcc: str) -> str:
    if fourcc in {"avc1", "avc2", "avc3", "avc4"}:
        avcc = _find(data, entry, "avcC", skip=_VISUAL_ENTRY_FIXED_BYTES)
        if avcc is None:
            raise BmffError(f"{fourcc!r} sample entry has no 'avcC'")
        cfg = avcc.cursor(data)
        cfg.skip(1)  # configurationVersion
        profile, compat, level = cfg.u8(), cfg.u8(), cfg.u8()
        return f"{fourcc}.{profile:02x}{compat:02x}{level:02x}"
    if fourcc in {"hvc1", "hev1"}:
        hvcc = _find(data, entry, "hvcC", skip=_VISUAL_ENTRY_FIXED_BYTES)
        if hvcc is None:
            raise BmffError(f"{fourcc!r} sample entry has no 'hvcC'")
        return hevc_codec_string(fourcc, data[hvcc.payload : hvcc.end])
    return fourcc


def hevc_codec_string(fourcc: str, hvcc_payload: bytes) -> str:
    """RFC 6381 string for HEVC from an hvcC payload (14496-15 Annex E.3), e.g. hvc1.1.6.L93.B0.

    Fields: profile space letter (none/A/B/C) + profile_idc; the 32 compatibility flags
    bit-reversed, in hex; tier letter L/H + level_idc; then the six constraint bytes in hex,
    trailing zero bytes dropped.
    """
    cur = _Cursor(bytes(hvcc_payload), 0, len(hvcc_payload), "hvcC")
    cur.skip(1)  # configurationVersion
    first = cur.u8()
    profile_space, tier_flag, profile_idc = first >> 6, (first >> 5) & 1, first & 0x1F
    compat = cur.u32()
    constraints = list(cur.raw(6))
    level_idc = cur.u8()
    reversed_compat = int(f"{compat:032b}"[::-1], 2)
    while constraints and constraints[-1] == 0:
        constraints.pop()
    parts = [
        fourcc,
        f"{['', 'A', 'B', 'C'][profile_space]}{profile_idc}",
        f"{reversed_compat:X}",
        f"{'H' if tier_flag else 'L'}{level_idc}",
        *(f"{b:X}" for b in constraints),
    ]
    return ".".join(parts)


def mp4a_codec_string(esds_payload: bytes) -> str:
    """RFC 6381 string from an esds payload: ``mp4a.40.<AOT>`` (MPEG-4 audio), else ``mp4a.<OTI>``.

    AOT is the first 5 bits of the AudioSpecificConfig; 31 escapes to 32 + the next 6 bits.
    """
    data = bytes(esds_payload)
    cur = _Cursor(data, 0, len(data), "esds")
    cur.full_box_header()
    tag, length = _descriptor_header(cur)
    if tag != 0x03:  # ES_DescrTag
        raise BmffError(f"esds: expected ES_Descriptor (tag 3), got tag {tag}")
    es = _Cursor(data, cur.pos, min(cur.pos + length, len(data)), "ES_Descriptor")
    es.skip(2)  # ES_ID
    es_flags = es.u8()
    if es_flags & 0x80:
        es.skip(2)  # dependsOn_ES_ID
    if es_flags & 0x40:
        es.skip(es.u8())  # URL
    if es_flags & 0x20:
        es.skip(2)  # OCR_ES_Id
    tag, length = _descriptor_header(es)
    if tag != 0x04:  # DecoderConfigDescrTag
        raise BmffError(f"esds: expected DecoderConfigDescriptor (tag 4), got tag {tag}")
    dc = _Cursor(data, es.pos, min(es.pos + length, es.end), "DecoderConfigDescriptor")
    object_type = dc.u8()
    if object_type != 0x40:  # not MPEG-4 Audio (e.g. 0x69 MP3): the OTI alone names the codec
        return f"mp4a.{object_type:02x}"
    dc.skip(12)  # streamType/upStream/reserved(1), bufferSizeDB(3), maxBitrate(4), avgBitrate(4)
    tag, length = _descriptor_header(dc)
    if tag != 0x05 or length < 1:  # DecSpecificInfoTag
        raise BmffError("esds: MPEG-4 audio without an AudioSpecificConfig")
    asc = dc.raw(min(length, 2))
    aot = asc[0] >> 3
    if aot == 31:
        if len(asc) < 2:
            raise BmffError("esds: AudioSpecificConfig escape AOT is truncated")
        aot = 32 + (((asc[0] & 0x07) << 3) | (asc[1] >> 5))
    return f"mp4a.40.{aot}"


def _descriptor_header(cur: _Cursor) -> tuple[int, int]:
    tag = cur.u8()
    length = 0
    for _ in range(4):  # expandable size: 7 bits per byte, high bit = more follows
        byte = cur.u8()
        length = (length << 7) | (byte & 0x7F)
        if not byte & 0x80:
            break
    return tag, length


# --------------------------------------------------------------------------------------------
# Fragments


def fragment_info(
    data: bytes, *, defaults: TrackDefaults | None = None, track_id: int | None = None
) -> Fragment:
    """Parse one fragment (optional styp/prft/emsg…, one moof, one mdat) into a :class:`Fragment`.

    ``defaults`` (the init's trex) are needed only when tfhd/trun omit durations or flags;
    FFmpeg always writes them in tfhd. ``track_id``, if given, must match the traf.
    """
    data = bytes(data)
    boxes = _top_level(data)
    moofs = [b for b in boxes if b.type == "moof"]
    mdats = [b for b in boxes if b.type == "mdat"]
    if len(moofs) != 1 or len(mdats) != 1 or mdats[0].start < moofs[0].end:
        raise BmffError(
            f"a fragment needs one 'moof' followed by one 'mdat' (got {len(moofs)} moof, "
            f"{len(mdats)} mdat)"
        )
    moof, mdat = moofs[0], mdats[0]
    trafs = [b for b in _children(data, moof) if b.type == "traf"]
    if len(trafs) != 1:
        raise BmffError(f"expected exactly one 'traf' in a single-track moof, found {len(trafs)}")
    traf = _parse_traf(data, moof, trafs[0], defaults)
    if track_id is not None and traf.track_id != track_id:
        raise BmffError(f"fragment is for track {traf.track_id}, init describes track {track_id}")
    for first_byte, length in traf.data_ranges:
        # Offsets are moof-relative (default-base-is-moof); a run outside the mdat payload means
        # the fragment was cut or rebased wrongly, and a player would decode garbage.
        if first_byte < mdat.payload or first_byte + length > mdat.end:
            raise BmffError(
                f"trun data [{first_byte}, {first_byte + length}) lies outside the mdat payload "
                f"[{mdat.payload}, {mdat.end})"
            )
    return Fragment(
        data=data,
        track_id=traf.track_id,
        decode_time_ticks=traf.decode_time_ticks,
        duration_ticks=traf.duration_ticks,
        sample_count=traf.sample_count,
        starts_with_sync=traf.starts_with_sync,
    )


@dataclass(frozen=True, slots=True)
class _TrafInfo:
    track_id: int
    decode_time_ticks: int
    duration_ticks: int
    sample_count: int
    starts_with_sync: bool
    data_ranges: tuple[tuple[int, int], ...]  # (absolute first byte, length) per trun, if known


def _parse_traf(data: bytes, moof: _Box, traf: _Box, defaults: TrackDefaults | None) -> _TrafInfo:
    tfhd_box: _Box | None = None
    tfdt_box: _Box | None = None
    truns: list[_Box] = []
    for child in _children(data, traf):
        if child.type == "tfhd":
            tfhd_box = child
        elif child.type == "tfdt":
            if tfdt_box is not None:
                raise BmffError("traf has more than one 'tfdt'")
            tfdt_box = child
        elif child.type == "trun":
            truns.append(child)
    if tfhd_box is None:
        raise BmffError("traf has no 'tfhd'")
    if tfdt_box is None:
        # HLS (rfc8216bis §3.1.2) requires it, and without it we cannot place the fragment in time.
        raise BmffError("traf has no 'tfdt'")

    cur = tfhd_box.cursor(data)
    _version, tf_flags = cur.full_box_header()
    track_id = cur.u32()
    if tf_flags & _TFHD_BASE_DATA_OFFSET:
        # An absolute file offset is meaningless once fragments are cut out and served alone.
        raise BmffError("tfhd uses an explicit base_data_offset; CMAF needs moof-relative offsets")
    if tf_flags & _TFHD_SAMPLE_DESCRIPTION_INDEX:
        cur.skip(4)
    default_duration = cur.u32() if tf_flags & _TFHD_DEFAULT_DURATION else None
    default_size = cur.u32() if tf_flags & _TFHD_DEFAULT_SIZE else None
    default_flags = cur.u32() if tf_flags & _TFHD_DEFAULT_FLAGS else None
    if defaults is not None:  # trex: the fallback for whatever tfhd leaves out
        if default_duration is None:
            default_duration = defaults.sample_duration_ticks
        if default_size is None:
            default_size = defaults.sample_size_bytes
        if default_flags is None:
            default_flags = defaults.sample_flags

    tcur = tfdt_box.cursor(data)
    version, _flags = tcur.full_box_header()
    decode_time = tcur.u64() if version == 1 else tcur.u32()

    duration = 0
    count = 0
    first_flags: int | None = None
    ranges: list[tuple[int, int]] = []
    for trun in truns:
        rcur = trun.cursor(data)
        _tr_version, tr_flags = rcur.full_box_header()
        sample_count = rcur.u32()
        data_offset = rcur.i32() if tr_flags & _TRUN_DATA_OFFSET else None
        first_sample_flags = rcur.u32() if tr_flags & _TRUN_FIRST_SAMPLE_FLAGS else None
        stride = 4 * sum(1 for bit in _TRUN_PER_SAMPLE_FIELDS if tr_flags & bit)
        if stride * sample_count > rcur.end - rcur.pos:
            # Checked before looping so a garbage sample_count cannot spin for 2^32 iterations.
            raise BmffError(f"trun declares {sample_count} samples but is too short for them")
        run_duration = 0
        run_size = 0
        for index in range(sample_count if stride else 0):
            sample_duration = rcur.u32() if tr_flags & _TRUN_SAMPLE_DURATION else 0
            sample_size = rcur.u32() if tr_flags & _TRUN_SAMPLE_SIZE else 0
            sample_flags = rcur.u32() if tr_flags & _TRUN_SAMPLE_FLAGS else None
            if tr_flags & _TRUN_SAMPLE_CTO:
                rcur.skip(4)
            run_duration += sample_duration
            run_size += sample_size
            if index == 0 and first_flags is None and first_sample_flags is None:
                first_flags = sample_flags
        if not tr_flags & _TRUN_SAMPLE_DURATION:
            if sample_count and default_duration is None:
                raise BmffError("sample durations are in neither trun, tfhd nor trex")
            run_duration = sample_count * (default_duration or 0)
        if not tr_flags & _TRUN_SAMPLE_SIZE:
            run_size = sample_count * default_size if default_size is not None else -1
        if sample_count and first_flags is None:
            # Priority (14496-12): trun first_sample_flags > per-sample flags > tfhd > trex.
            first_flags = first_sample_flags if first_sample_flags is not None else default_flags
            if first_flags is None:
                raise BmffError("first sample flags are in neither trun, tfhd nor trex")
        if data_offset is not None and run_size >= 0:
            ranges.append((moof.start + data_offset, run_size))
        duration += run_duration
        count += sample_count

    return _TrafInfo(
        track_id=track_id,
        decode_time_ticks=decode_time,
        duration_ticks=duration,
        sample_count=count,
        starts_with_sync=first_flags is not None and not first_flags & _NON_SYNC_FLAG,
        data_ranges=tuple(ranges),
    )


# --------------------------------------------------------------------------------------------
# Rebasing (shift decode times, e.g. to keep the timeline continuous across encoder restarts)


def rebase_fragment(data: bytes, offset_ticks: int) -> bytes:
    """Return ``data`` with every traf's tfdt baseMediaDecodeTime increased by ``offset_ticks``.

    A v0 (32-bit) tfdt whose new value no longer fits becomes v1: tfdt, traf and moof grow by
    4 bytes each and every moof-relative trun data_offset moves by 4 per upgraded tfdt so it
    still points at the same mdat bytes. The mdat payload is never touched.
    """
    if offset_ticks == 0:
        return data
    data = bytes(data)
    out = bytearray(data)
    insertions: list[tuple[int, bytes]] = []  # (position of the old 32-bit value, new 64-bit)
    moofs = [b for b in _top_level(data) if b.type == "moof"]
    if not moofs:
        raise BmffError("no 'moof' box to rebase")
    for moof in moofs:
        upgraded = 0
        base_is_moof_trafs: list[tuple[_Box, list[_Box]]] = []
        for traf_index, traf in enumerate(b for b in _children(data, moof) if b.type == "traf"):
            tfdts = [b for b in _children(data, traf) if b.type == "tfdt"]
            if len(tfdts) != 1:
                raise BmffError(f"traf must have exactly one 'tfdt' to rebase, has {len(tfdts)}")
            tfdt = tfdts[0]
            cur = tfdt.cursor(data)
            version, _flags = cur.full_box_header()
            value_pos = cur.pos
            old = cur.u64() if version == 1 else cur.u32()
            new = old + offset_ticks
            if new < 0:
                raise BmffError(f"rebasing tfdt {old} by {offset_ticks} would go negative")
            if new > _U64_MAX:
                raise BmffError(f"rebasing tfdt {old} by {offset_ticks} overflows 64 bits")
            if version == 1:
                out[value_pos : value_pos + 8] = new.to_bytes(8, "big")
            elif new <= _U32_MAX:
                out[value_pos : value_pos + 4] = new.to_bytes(4, "big")
            else:
                out[tfdt.payload] = 1  # version byte
                insertions.append((value_pos, new.to_bytes(8, "big")))
                _add_to_size(out, tfdt, 4)
                _add_to_size(out, traf, 4)
                upgraded += 1
            tfhd = _require(data, traf, "tfhd")
            tf_flags = int.from_bytes(data[tfhd.payload + 1 : tfhd.payload + 4], "big")
            # Runs are relative to the moof start for default-base-is-moof trafs and for the
            # first traf without an explicit base; later implicit bases follow the previous
            # traf's data, which moves with the mdat and so needs no change.
            if tf_flags & _TFHD_BASE_DATA_OFFSET:
                raise BmffError("tfhd uses an explicit base_data_offset; cannot rebase safely")
            if tf_flags & _TFHD_DEFAULT_BASE_IS_MOOF or traf_index == 0:
                base_is_moof_trafs.append(
                    (traf, [b for b in _children(data, traf) if b.type == "trun"])
                )
        if upgraded:
            grow = 4 * upgraded
            _add_to_size(out, moof, grow)
            for _traf, truns in base_is_moof_trafs:
                for trun in truns:
                    _shift_data_offset(data, out, trun, grow)
    # Insert from the back so earlier positions (all recorded against the original) stay valid.
    for value_pos, value in sorted(insertions, reverse=True):
        out[value_pos : value_pos + 4] = value
    return bytes(out)


def _add_to_size(out: bytearray, box: _Box, delta: int) -> None:
    if box.largesize:
        size = int.from_bytes(out[box.start + 8 : box.start + 16], "big") + delta
        out[box.start + 8 : box.start + 16] = size.to_bytes(8, "big")
        return
    size = int.from_bytes(out[box.start : box.start + 4], "big")
    if size == 0:  # "to end of data" stays correct after growing
        return
    if size + delta > _U32_MAX:
        raise BmffError(f"box {box.type!r} would outgrow its 32-bit size field")
    out[box.start : box.start + 4] = (size + delta).to_bytes(4, "big")


def _shift_data_offset(data: bytes, out: bytearray, trun: _Box, delta: int) -> None:
    cur = trun.cursor(data)
    _version, flags = cur.full_box_header()
    cur.skip(4)  # sample_count
    if not flags & _TRUN_DATA_OFFSET:
        return
    pos = cur.pos
    new = cur.i32() + delta
    if not _I32_MIN <= new <= _I32_MAX:
        raise BmffError("trun data_offset overflows 32 bits after rebasing")
    out[pos : pos + 4] = struct.pack(">i", new)


# --------------------------------------------------------------------------------------------
# Incremental reader


@final
class FragmentedMp4Reader:
    """Splits a live single-track fMP4 byte stream into records, whatever the chunk boundaries.

    Top-level boxes are cut out as soon as they are complete: ftyp+moov become one
    :class:`InitSegment`; styp/prft/emsg + moof (+ anything between it and its mdat) + mdat
    become one :class:`Fragment`. sidx, free, udta, mfra and unknown boxes elsewhere are skipped.

    After a :class:`BmffError` the reader is dead: further ``feed`` calls raise again and
    ``close`` does nothing (the caller has already logged the first error).
    """

    __slots__ = (
        "_buf",
        "_closed",
        "_error",
        "_ftyp",
        "_init",
        "_need",
        "_pending",
        "_pos",
        "_prefix",
        "_saw_any",
        "_skipped_bytes",
    )

    def __init__(self) -> None:
        self._buf = bytearray()
        self._pos = 0  # read offset into _buf; bytes before it are consumed
        self._need = 0  # size of the box at _pos once its header is known, else 0
        self._ftyp: bytes | None = None
        self._init: InitDetails | None = None
        self._prefix: list[bytes] = []  # styp/prft/emsg waiting for their moof
        self._pending: list[bytes] | None = None  # prefix + moof (+ in-between boxes), no mdat yet
        self._skipped_bytes = 0
        self._saw_any = False
        self._closed = False
        self._error: BmffError | None = None

    @property
    def init(self) -> InitDetails | None:
        """The parsed init segment once ftyp+moov have been read."""
        return self._init

    @property
    def skipped_bytes(self) -> int:
        """Bytes of top-level boxes that belong to no record (mfra, sidx, free, unknown…)."""
        return self._skipped_bytes

    def feed(self, data: bytes | bytearray | memoryview) -> list[InitSegment | Fragment]:
        """Take the next bytes of the stream; return the records they complete, in order."""
        return self._feed(data, final=False)

    def close(self) -> None:
        """Declare end of stream; raise :class:`BmffError` if it ended inside a box or fragment."""
        if self._error is not None or self._closed:
            return
        self._closed = True
        left = len(self._buf) - self._pos
        if left:
            what = f"a {self._need}-byte box" if self._need else "a box header"
            raise BmffError(f"stream truncated: {left} bytes of {what} left unfinished")
        if self._pending is not None:
            raise BmffError("stream truncated: a 'moof' was never followed by its 'mdat'")
        if self._prefix:
            raise BmffError("stream truncated: styp/prft/emsg box(es) without a following 'moof'")
        if self._saw_any and self._init is None:
            raise BmffError("stream ended before its init segment (ftyp+moov) was complete")

    def _feed(
        self, data: bytes | bytearray | memoryview, *, final: bool
    ) -> list[InitSegment | Fragment]:
        if self._error is not None:
            raise BmffError(f"reader already failed: {self._error}")
        if self._closed:
            raise BmffError("reader is closed")
        self._buf += data
        try:
            return self._drain(final=final)
        except BmffError as exc:
            self._error = exc
            raise

    def _drain(self, *, final: bool) -> list[InitSegment | Fragment]:
        records: list[InitSegment | Fragment] = []
        buf = self._buf
        end = len(buf)
        while True:
            if not self._need:
                parsed = _parse_header(buf, self._pos, end, open_end=end if final else None)
                if parsed is None:
                    break
                self._need = parsed[2]
                self._saw_any = True
            if end - self._pos < self._need:
                break
            box = bytes(buf[self._pos : self._pos + self._need])
            self._pos += self._need
            self._need = 0
            record = self._on_box(box)
            if record is not None:
                records.append(record)
        # Compact only when the consumed prefix dominates, so each byte moves O(1) times.
        if self._pos and self._pos * 2 >= len(buf):
            del buf[: self._pos]
            self._pos = 0
        return records

    def _on_box(self, box: bytes) -> InitSegment | Fragment | None:
        box_type = box[4:8].decode("ascii")  # validated printable by _parse_header
        if box_type in {"ftyp", "moov"}:
            if self._init is not None:
                raise BmffError(f"second {box_type!r} after the init segment: the stream restarted")
            if box_type == "ftyp":
                if self._ftyp is not None:
                    raise BmffError("duplicate 'ftyp' before 'moov'")
                self._ftyp = box
                return None
            init_bytes = (self._ftyp or b"") + box
            self._init = parse_init(init_bytes)
            return InitSegment(data=init_bytes, track=self._init.track)
        if self._pending is not None:
            if box_type == "moof":
                raise BmffError("'moof' followed by another 'moof' without an 'mdat'")
            self._pending.append(box)
            if box_type != "mdat":
                # Kept, not skipped: trun offsets are relative to the moof, so dropping bytes
                # between moof and mdat would make them point at the wrong samples.
                return None
            data = b"".join(self._pending)
            self._pending = None
            init = self._init
            assert init is not None  # a moof is only accepted after the init
            return fragment_info(data, defaults=init.defaults, track_id=init.track.track_id)
        if box_type in _FRAGMENT_PREFIX_TYPES:
            self._prefix.append(box)
            return None
        if box_type == "moof":
            if self._init is None:
                raise BmffError("'moof' before the init segment (ftyp+moov)")
            self._pending = [*self._prefix, box]
            self._prefix = []
            return None
        if box_type == "mdat":
            raise BmffError("'mdat' without a preceding 'moof' (not a fragmented stream?)")
        self._skipped_bytes += len(box)
        return None


def split_stream(data: bytes) -> list[InitSegment | Fragment]:
    """Read a complete stream (a file): like feeding it all and closing, but a final size-0 box
    ("extends to end of file") is accepted because here the end is known."""
    reader = FragmentedMp4Reader()
    records = reader._feed(data, final=True)  # private on purpose: live callers must not use it
    reader.close()
    return records
