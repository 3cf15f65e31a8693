"""Init segments (``ftyp`` + ``moov``): track id, timescale, kind, size, codec, trex defaults."""

from __future__ import annotations

from actors.packager.bmff.boxes import (
    AUDIO_ENTRY_FIXED_BYTES,
    FIXED_CODEC_NAMES,
    HANDLER_KINDS,
    QT_AUDIO_EXTRA_BYTES,
    VISUAL_ENTRY_FIXED_BYTES,
    BmffError,
    Box,
    InitDetails,
    TrackDefaults,
    children,
    find,
    iter_boxes,
    require,
    top_level,
)
from actors.packager.bmff.codecs import mp4a_codec_string, video_codec
from actors.packager.model import TrackInfo, TrackKind


def parse_init_segment(data: bytes) -> TrackInfo:
    """The single track described by an init segment (ftyp+moov, or a stream that starts so)."""
    return parse_init(data).track


def parse_init(data: bytes) -> InitDetails:
    """Like :func:`parse_init_segment` but also returns the stsd fourcc and the trex defaults."""
    data = bytes(data)
    moov = next((b for b in top_level(data) if b.type == "moov"), None)
    if moov is None:
        raise BmffError("no 'moov' box: not an init segment")
    traks = [b for b in children(data, moov) if b.type == "trak"]
    if len(traks) != 1:
        # A muxed moov would need demuxing into single-track CMAF first; the ladder never makes one.
        raise BmffError(f"expected exactly one 'trak' in 'moov', found {len(traks)}")
    trak = traks[0]

    track_id, tkhd_width, tkhd_height = _parse_tkhd(data, require(data, trak, "tkhd"))
    mdia = require(data, trak, "mdia")
    timescale = _parse_mdhd(data, require(data, mdia, "mdhd"))
    kind = _parse_hdlr(data, require(data, mdia, "hdlr"))
    stbl = require(data, require(data, mdia, "minf"), "stbl")
    sample_entry, codec, entry_fields = _parse_stsd(data, require(data, stbl, "stsd"), kind)

    defaults: TrackDefaults | None = None
    mvex = find(data, moov, "mvex")
    if mvex is not None:
        for trex in (b for b in children(data, mvex) if b.type == "trex"):
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


def _parse_tkhd(data: bytes, tkhd: Box) -> tuple[int, int, int]:
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


def _parse_mdhd(data: bytes, mdhd: Box) -> int:
    cur = mdhd.cursor(data)
    version, _flags = cur.full_box_header()
    cur.skip(16 if version == 1 else 8)
    timescale = cur.u32()
    if timescale == 0:
        raise BmffError("mdhd timescale is 0")
    return timescale


def _parse_hdlr(data: bytes, hdlr: Box) -> TrackKind:
    cur = hdlr.cursor(data)
    cur.full_box_header()
    cur.skip(4)  # pre_defined
    handler = cur.raw(4).decode("latin-1")
    kind = HANDLER_KINDS.get(handler)
    if kind is None:
        raise BmffError(f"unsupported handler type {handler!r} (want 'vide' or 'soun')")
    return kind


def _parse_trex(data: bytes, trex: Box) -> tuple[int, TrackDefaults]:
    cur = trex.cursor(data)
    cur.full_box_header()
    track_id = cur.u32()
    return track_id, TrackDefaults(
        sample_description_index=cur.u32(),
        sample_duration_ticks=cur.u32(),
        sample_size_bytes=cur.u32(),
        sample_flags=cur.u32(),
    )


def _parse_stsd(data: bytes, stsd: Box, kind: TrackKind) -> tuple[str, str, dict[str, int]]:
    cur = stsd.cursor(data)
    cur.full_box_header()
    entry_count = cur.u32()
    if entry_count < 1:
        raise BmffError("stsd has no sample entry")
    # CMAF allows only one entry per track; the first one is what fragments reference.
    entry = next(iter_boxes(data, cur.pos, stsd.end), None)
    if entry is None:
        raise BmffError("stsd has no sample entry")
    fourcc = entry.type
    fields: dict[str, int] = {}
    codec = FIXED_CODEC_NAMES.get(fourcc, fourcc)
    if kind == "video":
        ecur = entry.cursor(data)
        ecur.skip(24)  # reserved(6), data_reference_index(2), pre_defined/reserved(16)
        fields["width"] = ecur.u16()
        fields["height"] = ecur.u16()
        if entry.end - entry.payload >= VISUAL_ENTRY_FIXED_BYTES:
            codec = video_codec(data, entry, fourcc)
    else:
        ecur = entry.cursor(data)
        ecur.skip(8)  # reserved(6), data_reference_index(2)
        qt_version = ecur.u16()
        ecur.skip(6)  # revision level, vendor
        fields["channels"] = ecur.u16()
        ecur.skip(6)  # samplesize, pre_defined, reserved
        fields["sample_rate"] = ecur.u32() >> 16
        extra = QT_AUDIO_EXTRA_BYTES.get(qt_version, 0)
        if fourcc == "mp4a":
            esds = find(data, entry, "esds", skip=AUDIO_ENTRY_FIXED_BYTES + extra)
            if esds is not None:
                codec = mp4a_codec_string(data[esds.payload : esds.end])
    return fourcc, codec, fields
