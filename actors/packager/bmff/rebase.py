"""Rebasing: shift a fragment's decode times (``tfdt``), e.g. to keep the timeline continuous
across encoder restarts."""

from __future__ import annotations

import struct

from actors.packager.bmff.boxes import (
    I32_MAX,
    I32_MIN,
    TFHD_BASE_DATA_OFFSET,
    TFHD_DEFAULT_BASE_IS_MOOF,
    TRUN_DATA_OFFSET,
    U32_MAX,
    U64_MAX,
    BmffError,
    Box,
    children,
    require,
    signed_decode_time,
    top_level,
)


def rebase_fragment(data: bytes, offset_ticks: int) -> bytes:
    """Return ``data`` with every traf's tfdt baseMediaDecodeTime increased by ``offset_ticks``.

    A negative v1 tfdt (see ``signed_decode_time``) is shifted the same way and must come out
    non-negative.

    A v0 (32-bit) tfdt whose new value no longer fits becomes v1: tfdt, traf and moof grow by
    4 bytes each and every moof-relative trun data_offset moves by 4 per upgraded tfdt so it
    still points at the same mdat bytes. The mdat payload is never touched.
    """
    if offset_ticks == 0:
        return data
    data = bytes(data)
    out = bytearray(data)
    insertions: list[tuple[int, bytes]] = []  # (position of the old 32-bit value, new 64-bit)
    moofs = [b for b in top_level(data) if b.type == "moof"]
    if not moofs:
        raise BmffError("no 'moof' box to rebase")
    for moof in moofs:
        upgraded = 0
        base_is_moof_trafs: list[tuple[Box, list[Box]]] = []
        for traf_index, traf in enumerate(b for b in children(data, moof) if b.type == "traf"):
            tfdts = [b for b in children(data, traf) if b.type == "tfdt"]
            if len(tfdts) != 1:
                raise BmffError(f"traf must have exactly one 'tfdt' to rebase, has {len(tfdts)}")
            tfdt = tfdts[0]
            cur = tfdt.cursor(data)
            version, _flags = cur.full_box_header()
            value_pos = cur.pos
            old = signed_decode_time(cur.u64() if version == 1 else cur.u32(), version)
            new = old + offset_ticks
            if new < 0:
                raise BmffError(f"rebasing tfdt {old} by {offset_ticks} would go negative")
            if new > U64_MAX:
                raise BmffError(f"rebasing tfdt {old} by {offset_ticks} overflows 64 bits")
            if version == 1:
                out[value_pos : value_pos + 8] = new.to_bytes(8, "big")
            elif new <= U32_MAX:
                out[value_pos : value_pos + 4] = new.to_bytes(4, "big")
            else:
                out[tfdt.payload] = 1  # version byte
                insertions.append((value_pos, new.to_bytes(8, "big")))
                _add_to_size(out, tfdt, 4)
                _add_to_size(out, traf, 4)
                upgraded += 1
            tfhd = require(data, traf, "tfhd")
            tf_flags = int.from_bytes(data[tfhd.payload + 1 : tfhd.payload + 4], "big")
            # Runs are relative to the moof start for default-base-is-moof trafs and for the
            # first traf without an explicit base; later implicit bases follow the previous
            # traf's data, which moves with the mdat and so needs no change.
            if tf_flags & TFHD_BASE_DATA_OFFSET:
                raise BmffError("tfhd uses an explicit base_data_offset; cannot rebase safely")
            if tf_flags & TFHD_DEFAULT_BASE_IS_MOOF or traf_index == 0:
                base_is_moof_trafs.append(
                    (traf, [b for b in children(data, traf) if b.type == "trun"])
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


def _add_to_size(out: bytearray, box: Box, delta: int) -> None:
    if box.largesize:
        size = int.from_bytes(out[box.start + 8 : box.start + 16], "big") + delta
        out[box.start + 8 : box.start + 16] = size.to_bytes(8, "big")
        return
    size = int.from_bytes(out[box.start : box.start + 4], "big")
    if size == 0:  # "to end of data" stays correct after growing
        return
    if size + delta > U32_MAX:
        raise BmffError(f"box {box.type!r} would outgrow its 32-bit size field")
    out[box.start : box.start + 4] = (size + delta).to_bytes(4, "big")


def _shift_data_offset(data: bytes, out: bytearray, trun: Box, delta: int) -> None:
    cur = trun.cursor(data)
    _version, flags = cur.full_box_header()
    cur.skip(4)  # sample_count
    if not flags & TRUN_DATA_OFFSET:
        return
    pos = cur.pos
    new = cur.i32() + delta
    if not I32_MIN <= new <= I32_MAX:
        raise BmffError("trun data_offset overflows 32 bits after rebasing")
    out[pos : pos + 4] = struct.pack(">i", new)
