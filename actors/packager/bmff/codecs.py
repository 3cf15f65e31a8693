"""RFC 6381 codec strings from sample entries (avcC, hvcC, esds): ISO/IEC 14496-15 Annex E,
14496-14."""

from __future__ import annotations

from actors.packager.bmff.boxes import VISUAL_ENTRY_FIXED_BYTES, BmffError, Box, Cursor, find


def video_codec(data: bytes, entry: Box, fourcc: str) -> str:
    if fourcc in {"avc1", "avc2", "avc3", "avc4"}:
        avcc = find(data, entry, "avcC", skip=VISUAL_ENTRY_FIXED_BYTES)
        if avcc is None:
            raise BmffError(f"{fourcc!r} sample entry has no 'avcC'")
        cfg = avcc.cursor(data)
        cfg.skip(1)  # configurationVersion
        profile, compat, level = cfg.u8(), cfg.u8(), cfg.u8()
        return f"{fourcc}.{profile:02x}{compat:02x}{level:02x}"
    if fourcc in {"hvc1", "hev1"}:
        hvcc = find(data, entry, "hvcC", skip=VISUAL_ENTRY_FIXED_BYTES)
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
    cur = Cursor(bytes(hvcc_payload), 0, len(hvcc_payload), "hvcC")
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
    cur = Cursor(data, 0, len(data), "esds")
    cur.full_box_header()
    tag, length = _descriptor_header(cur)
    if tag != 0x03:  # ES_DescrTag
        raise BmffError(f"esds: expected ES_Descriptor (tag 3), got tag {tag}")
    es = Cursor(data, cur.pos, min(cur.pos + length, len(data)), "ES_Descriptor")
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
    dc = Cursor(data, es.pos, min(es.pos + length, es.end), "DecoderConfigDescriptor")
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


def _descriptor_header(cur: Cursor) -> tuple[int, int]:
    tag = cur.u8()
    length = 0
    for _ in range(4):  # expandable size: 7 bits per byte, high bit = more follows
        byte = cur.u8()
        length = (length << 7) | (byte & 0x7F)
        if not byte & 0x80:
            break
    return tag, length
