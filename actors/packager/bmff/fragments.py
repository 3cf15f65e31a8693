"""Fragments (``moof`` + ``mdat``): decode time, duration, sync flag of each CMAF chunk."""

from __future__ import annotations

from dataclasses import dataclass

from actors.packager.bmff.boxes import (
    NON_SYNC_FLAG,
    TFHD_BASE_DATA_OFFSET,
    TFHD_DEFAULT_DURATION,
    TFHD_DEFAULT_FLAGS,
    TFHD_DEFAULT_SIZE,
    TFHD_SAMPLE_DESCRIPTION_INDEX,
    TRUN_DATA_OFFSET,
    TRUN_FIRST_SAMPLE_FLAGS,
    TRUN_PER_SAMPLE_FIELDS,
    TRUN_SAMPLE_CTO,
    TRUN_SAMPLE_DURATION,
    TRUN_SAMPLE_FLAGS,
    TRUN_SAMPLE_SIZE,
    BmffError,
    Box,
    TrackDefaults,
    children,
    signed_decode_time,
    top_level,
)
from actors.packager.model import Fragment


def fragment_info(
    data: bytes, *, defaults: TrackDefaults | None = None, track_id: int | None = None
) -> Fragment:
    """Parse one fragment (optional styp/prft/emsg…, one moof, one mdat) into a :class:`Fragment`.

    ``defaults`` (the init's trex) are needed only when tfhd/trun omit durations or flags;
    FFmpeg always writes them in tfhd. ``track_id``, if given, must match the traf.
    """
    data = bytes(data)
    boxes = top_level(data)
    moofs = [b for b in boxes if b.type == "moof"]
    mdats = [b for b in boxes if b.type == "mdat"]
    if len(moofs) != 1 or len(mdats) != 1 or mdats[0].start < moofs[0].end:
        raise BmffError(
            f"a fragment needs one 'moof' followed by one 'mdat' (got {len(moofs)} moof, "
            f"{len(mdats)} mdat)"
        )
    moof, mdat = moofs[0], mdats[0]
    trafs = [b for b in children(data, moof) if b.type == "traf"]
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


def _parse_traf(data: bytes, moof: Box, traf: Box, defaults: TrackDefaults | None) -> _TrafInfo:
    tfhd_box: Box | None = None
    tfdt_box: Box | None = None
    truns: list[Box] = []
    for child in children(data, traf):
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
    if tf_flags & TFHD_BASE_DATA_OFFSET:
        # An absolute file offset is meaningless once fragments are cut out and served alone.
        raise BmffError("tfhd uses an explicit base_data_offset; CMAF needs moof-relative offsets")
    if tf_flags & TFHD_SAMPLE_DESCRIPTION_INDEX:
        cur.skip(4)
    default_duration = cur.u32() if tf_flags & TFHD_DEFAULT_DURATION else None
    default_size = cur.u32() if tf_flags & TFHD_DEFAULT_SIZE else None
    default_flags = cur.u32() if tf_flags & TFHD_DEFAULT_FLAGS else None
    if defaults is not None:  # trex: the fallback for whatever tfhd leaves out
        if default_duration is None:
            default_duration = defaults.sample_duration_ticks
        if default_size is None:
            default_size = defaults.sample_size_bytes
        if default_flags is None:
            default_flags = defaults.sample_flags

    tcur = tfdt_box.cursor(data)
    version, _flags = tcur.full_box_header()
    decode_time = signed_decode_time(tcur.u64() if version == 1 else tcur.u32(), version)

    duration = 0
    count = 0
    first_flags: int | None = None
    ranges: list[tuple[int, int]] = []
    for trun in truns:
        rcur = trun.cursor(data)
        _tr_version, tr_flags = rcur.full_box_header()
        sample_count = rcur.u32()
        data_offset = rcur.i32() if tr_flags & TRUN_DATA_OFFSET else None
        first_sample_flags = rcur.u32() if tr_flags & TRUN_FIRST_SAMPLE_FLAGS else None
        stride = 4 * sum(1 for bit in TRUN_PER_SAMPLE_FIELDS if tr_flags & bit)
        if stride * sample_count > rcur.end - rcur.pos:
            # Checked before looping so a garbage sample_count cannot spin for 2^32 iterations.
            raise BmffError(f"trun declares {sample_count} samples but is too short for them")
        run_duration = 0
        run_size = 0
        for index in range(sample_count if stride else 0):
            sample_duration = rcur.u32() if tr_flags & TRUN_SAMPLE_DURATION else 0
            sample_size = rcur.u32() if tr_flags & TRUN_SAMPLE_SIZE else 0
            sample_flags = rcur.u32() if tr_flags & TRUN_SAMPLE_FLAGS else None
            if tr_flags & TRUN_SAMPLE_CTO:
                rcur.skip(4)
            run_duration += sample_duration
            run_size += sample_size
            if index == 0 and first_flags is None and first_sample_flags is None:
                first_flags = sample_flags
        if not tr_flags & TRUN_SAMPLE_DURATION:
            if sample_count and default_duration is None:
                raise BmffError("sample durations are in neither trun, tfhd nor trex")
            run_duration = sample_count * (default_duration or 0)
        if not tr_flags & TRUN_SAMPLE_SIZE:
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
        starts_with_sync=first_flags is not None and not first_flags & NON_SYNC_FLAG,
        data_ranges=tuple(ranges),
    )
