"""ISO-BMFF reader: real FFmpeg fixtures (fixtures/bmff/make_fixtures.sh) and hand-built boxes."""

from __future__ import annotations

import contextlib
import itertools
import struct
import subprocess
from pathlib import Path

import imageio_ffmpeg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from actors.packager.bmff import (
    MAX_BOX_SIZE_BYTES,
    BmffError,
    FragmentedMp4Reader,
    InitDetails,
    TrackDefaults,
    fragment_info,
    hevc_codec_string,
    mp4a_codec_string,
    parse_init,
    parse_init_segment,
    rebase_fragment,
    split_stream,
)
from actors.packager.model import Fragment, InitSegment

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "bmff"
VIDEO = (FIXTURES / "video.mp4").read_bytes()
AUDIO = (FIXTURES / "audio.mp4").read_bytes()
HEVC = (FIXTURES / "hevc.mp4").read_bytes()

Record = InitSegment | Fragment


# ---------------------------------------------------------------- helpers (independent of bmff.py)


def boxes(data: bytes, start: int = 0, end: int | None = None) -> list[tuple[str, int, int]]:
    """(type, start, end) of the boxes in data[start:end]; 32-bit sizes only (all FFmpeg writes)."""
    end = len(data) if end is None else end
    out = []
    pos = start
    while pos < end:
        size, kind = struct.unpack_from(">I4s", data, pos)
        out.append((kind.decode(), pos, pos + size))
        pos += size
    return out


def child(data: bytes, parent: tuple[str, int, int], kind: str) -> tuple[str, int, int]:
    return next(b for b in boxes(data, parent[1] + 8, parent[2]) if b[0] == kind)


def box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", 8 + len(payload)) + kind + payload


def full_box(kind: bytes, version: int, flags: int, payload: bytes) -> bytes:
    return box(kind, bytes([version]) + flags.to_bytes(3, "big") + payload)


def feed_all(data: bytes, chunks: list[bytes] | None = None) -> list[Record]:
    reader = FragmentedMp4Reader()
    records: list[Record] = []
    for chunk in chunks if chunks is not None else [data]:
        records += reader.feed(chunk)
    reader.close()
    return records


def split_records(data: bytes) -> tuple[InitSegment, list[Fragment]]:
    records = feed_all(data)
    init, *frags = records
    assert isinstance(init, InitSegment)
    assert all(isinstance(f, Fragment) for f in frags)
    return init, [f for f in frags if isinstance(f, Fragment)]


def mdat_bytes(fragment: bytes) -> bytes:
    (_kind, start, end) = next(b for b in boxes(fragment) if b[0] == "mdat")
    return fragment[start:end]


def make_fragment(
    *,
    base_time: int,
    tfdt_version: int = 0,
    durations: tuple[int, ...] = (100, 100, 100),
    first_sample_flags: int | None = None,
    sample_flags: tuple[int, ...] | None = None,
    tfhd_default_flags: int | None = 0x0101_0000,
    tfhd_default_duration: int | None = None,
    per_sample_durations: bool = True,
    track_id: int = 1,
) -> bytes:
    """A hand-built single-traf moof+mdat with moof-relative offsets (like FFmpeg's CMAF output)."""
    sizes = tuple(10 + i for i in range(len(durations)))
    payload = b"".join(bytes([i]) * size for i, size in enumerate(sizes))
    tfhd_flags = 0x02_0000
    tfhd_payload = struct.pack(">I", track_id)
    if tfhd_default_duration is not None:
        tfhd_flags |= 0x08
        tfhd_payload += struct.pack(">I", tfhd_default_duration)
    if tfhd_default_flags is not None:
        tfhd_flags |= 0x20
        tfhd_payload += struct.pack(">I", tfhd_default_flags)
    tfhd = full_box(b"tfhd", 0, tfhd_flags, tfhd_payload)
    tfdt = full_box(b"tfdt", tfdt_version, 0, base_time.to_bytes(8 if tfdt_version else 4, "big"))

    def trun(data_offset: int) -> bytes:
        flags = 0x001 | 0x200
        head = struct.pack(">Ii", len(durations), data_offset)
        if first_sample_flags is not None:
            flags |= 0x004
            head += struct.pack(">I", first_sample_flags)
        if per_sample_durations:
            flags |= 0x100
        if sample_flags is not None:
            flags |= 0x400
        rows = b""
        for i, (duration, size) in enumerate(zip(durations, sizes, strict=True)):
            rows += struct.pack(">I", duration) if per_sample_durations else b""
            rows += struct.pack(">I", size)
            rows += struct.pack(">I", sample_flags[i]) if sample_flags is not None else b""
        return full_box(b"trun", 0, flags, head + rows)

    def moof(data_offset: int) -> bytes:
        mfhd = full_box(b"mfhd", 0, 0, struct.pack(">I", 1))
        return box(b"moof", mfhd + box(b"traf", tfhd + tfdt + trun(data_offset)))

    moof_size = len(moof(0))
    return moof(moof_size + 8) + box(b"mdat", payload)


def downgrade_tfdt_to_v0(fragment: bytes) -> bytes:
    """Rewrite an FFmpeg fragment's v1 tfdt as v0 (what an older muxer might write)."""
    moof = next(b for b in boxes(fragment) if b[0] == "moof")
    traf = child(fragment, moof, "traf")
    tfdt = child(fragment, traf, "tfdt")
    trun = child(fragment, traf, "trun")
    assert fragment[tfdt[1] + 8] == 1
    assert fragment[tfdt[1] + 12 : tfdt[1] + 16] == b"\0\0\0\0", "value must fit 32 bits"
    out = bytearray(fragment)
    for start in (moof[1], traf[1], tfdt[1]):
        struct.pack_into(">I", out, start, struct.unpack_from(">I", out, start)[0] - 4)
    out[tfdt[1] + 8] = 0
    offset_pos = trun[1] + 16  # header(8) + version/flags(4) + sample_count(4)
    struct.pack_into(">i", out, offset_pos, struct.unpack_from(">i", out, offset_pos)[0] - 4)
    del out[tfdt[1] + 12 : tfdt[1] + 16]
    return bytes(out)


def ffmpeg_decodes(tmp_path: Path, name: str, data: bytes) -> subprocess.CompletedProcess[str]:
    path = tmp_path / name
    path.write_bytes(data)
    return subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i", str(path), "-f", "null", "-"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


# ---------------------------------------------------------------- init segment


def test_video_init_is_parsed() -> None:
    init, _ = split_records(VIDEO)
    track = init.track
    assert (track.kind, track.track_id, track.timescale) == ("video", 1, 15360)
    assert (track.width, track.height) == (320, 180)
    assert track.codec.startswith("avc1.64")  # High profile
    assert len(track.codec) == len("avc1.64001f")
    assert track.codec == track.codec.lower()
    assert parse_init_segment(init.data) == track
    details = parse_init(init.data)
    assert details.sample_entry == "avc1"
    assert details.defaults is not None
    assert details.defaults.sample_description_index == 1
    # bytes are ftyp+moov exactly
    assert [b[0] for b in boxes(init.data)] == ["ftyp", "moov"]
    assert VIDEO.startswith(init.data)


def test_audio_init_is_parsed() -> None:
    init, _ = split_records(AUDIO)
    track = init.track
    assert (track.kind, track.codec, track.timescale) == ("audio", "mp4a.40.2", 48000)
    assert (track.sample_rate, track.channels) == (48000, 2)
    assert track.width is None
    assert parse_init(init.data).sample_entry == "mp4a"


def test_hevc_init_codec_string() -> None:
    details = parse_init(HEVC)
    assert details.sample_entry == "hvc1"
    # x265 Main, compat flags 0x60000000 bit-reversed = 6, level 2 (60), progressive+frame-only
    assert details.track.codec == "hvc1.1.6.L60.90"
    assert (details.track.width, details.track.height) == (320, 180)


def test_hevc_codec_string_vectors() -> None:
    # Apple's HLS authoring spec example for Main 10: hvc1.2.4.L123.B0
    main10 = bytes([1, 0x02, 0x20, 0, 0, 0, 0xB0, 0, 0, 0, 0, 0, 123])
    assert hevc_codec_string("hvc1", main10) == "hvc1.2.4.L123.B0"
    # profile space 1 → "A", high tier → "H", a middle zero constraint byte is kept
    spaced = bytes([1, 0x62, 0x20, 0, 0, 0, 0xB0, 0x00, 0x01, 0, 0, 0, 150])
    assert hevc_codec_string("hev1", spaced) == "hev1.A2.4.H150.B0.0.1"
    with pytest.raises(BmffError):
        hevc_codec_string("hvc1", main10[:5])


def _esds(asc: bytes, object_type: int = 0x40) -> bytes:
    dsi = bytes([0x05, len(asc)]) + asc
    dcd_body = bytes([object_type, 0x15]) + bytes(11) + dsi
    dcd = bytes([0x04, 0x80, 0x80, 0x80, len(dcd_body)]) + dcd_body  # 4-byte expandable length
    es_body = struct.pack(">HB", 1, 0) + dcd
    return bytes(4) + bytes([0x03, len(es_body)]) + es_body


@pytest.mark.parametrize(
    ("asc", "object_type", "expected"),
    [
        (bytes([0x11, 0x90]), 0x40, "mp4a.40.2"),  # AAC-LC 48 kHz stereo
        (bytes([0x2B, 0x10]), 0x40, "mp4a.40.5"),  # HE-AAC (SBR)
        (bytes([0xF9, 0x40]), 0x40, "mp4a.40.42"),  # escape 31 → 32 + 0b001010 (USAC)
        (b"", 0x69, "mp4a.69"),  # MP3 in MP4: the OTI alone
    ],
)
def test_mp4a_codec_string(asc: bytes, object_type: int, expected: str) -> None:
    assert mp4a_codec_string(_esds(asc, object_type)) == expected


def test_init_with_two_traks_is_rejected() -> None:
    init, _ = split_records(AUDIO)
    moov = next(b for b in boxes(init.data) if b[0] == "moov")
    trak = child(init.data, moov, "trak")
    trak_bytes = init.data[trak[1] : trak[2]]
    moov_body = init.data[moov[1] + 8 : moov[2]] + trak_bytes
    doubled = init.data[: moov[1]] + box(b"moov", moov_body)
    with pytest.raises(BmffError, match="exactly one 'trak'"):
        parse_init(doubled)


def test_init_without_moov_is_rejected() -> None:
    with pytest.raises(BmffError, match="moov"):
        parse_init(VIDEO[:28])  # ftyp only


# ---------------------------------------------------------------- fragments from FFmpeg


def test_video_fragments_timing_and_sync() -> None:
    _, frags = split_records(VIDEO)
    assert len(frags) == 6  # 2 s at 30 fps, 10-frame (333 ms) fragments
    assert sum(f.sample_count for f in frags) == 60
    assert frags[0].decode_time_ticks == 0
    for this, nxt in itertools.pairwise(frags):
        assert nxt.decode_time_ticks == this.end_time_ticks
    # 1 s GOP over 2 s: exactly one sync fragment per GOP, at the GOP starts
    assert [i for i, f in enumerate(frags) if f.starts_with_sync] == [0, 3]
    assert all(f.duration_ticks == 10 * 512 for f in frags)


def test_audio_fragments_timing() -> None:
    _, frags = split_records(AUDIO)
    assert len(frags) >= 6  # FFmpeg cuts AAC at every ~16 frames, finer than video
    assert frags[0].decode_time_ticks == 0
    for this, nxt in itertools.pairwise(frags):
        assert nxt.decode_time_ticks == this.end_time_ticks
    assert all(f.starts_with_sync for f in frags)
    total_s = frags[-1].end_time_ticks / 48000
    assert 1.9 < total_s < 2.1


@pytest.mark.parametrize("data", [VIDEO, AUDIO, HEVC], ids=["video", "audio", "hevc"])
def test_records_concatenate_to_input_minus_skipped_boxes(data: bytes) -> None:
    reader = FragmentedMp4Reader()
    records = reader.feed(data)
    reader.close()
    kept = b"".join(r.data for r in records)
    expected = b"".join(data[s:e] for kind, s, e in boxes(data) if kind != "mfra")
    assert kept == expected
    mfra_size = sum(e - s for kind, s, e in boxes(data) if kind == "mfra")
    assert mfra_size > 0
    assert reader.skipped_bytes == mfra_size
    assert split_stream(data) == records


@pytest.mark.parametrize("data", [VIDEO, AUDIO], ids=["video", "audio"])
def test_one_byte_at_a_time_matches_one_feed(data: bytes) -> None:
    one_shot = feed_all(data)
    reader = FragmentedMp4Reader()
    trickled: list[Record] = []
    for i in range(len(data)):
        trickled += reader.feed(data[i : i + 1])
    reader.close()
    assert trickled == one_shot


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    which=st.sampled_from(["video", "audio"]),
    cuts=st.lists(st.integers(min_value=0, max_value=len(VIDEO)), max_size=40),
)
def test_arbitrary_chunking_matches_one_feed(which: str, cuts: list[int]) -> None:
    data = VIDEO if which == "video" else AUDIO
    points = sorted({min(c, len(data)) for c in cuts} | {0, len(data)})
    chunks = [data[a:b] for a, b in itertools.pairwise(points)]
    assert feed_all(data, chunks) == feed_all(data)


def test_prefix_boxes_belong_to_their_fragment() -> None:
    init, frags = split_records(VIDEO)
    styp = box(b"styp", b"msdh\0\0\0\0msdhmsix")
    prft = full_box(b"prft", 1, 0, struct.pack(">IQQ", 1, 123, 0))
    free = box(b"free", b"ignored")
    stream = init.data + free + styp + prft + frags[0].data + frags[1].data
    _, got = split_records(stream)
    assert got[0].data == styp + prft + frags[0].data  # free before styp is skipped
    assert got[0].decode_time_ticks == frags[0].decode_time_ticks
    assert got[1] == frags[1]


def test_largesize_and_unknown_top_level_boxes_are_skipped() -> None:
    init, frags = split_records(VIDEO)
    large_free = struct.pack(">I4sQ", 1, b"free", 16 + 5) + b"12345"
    sidx = full_box(b"sidx", 0, 0, bytes(20))
    stream = init.data + large_free + frags[0].data + sidx + frags[1].data
    reader = FragmentedMp4Reader()
    assert reader.feed(stream) == [init, frags[0], frags[1]]
    reader.close()
    assert reader.skipped_bytes == len(large_free) + len(sidx)


def test_box_between_moof_and_mdat_stays_in_fragment() -> None:
    init, frags = split_records(VIDEO)
    frag = frags[0].data
    moof = next(b for b in boxes(frag) if b[0] == "moof")
    free = box(b"free", b"")
    spliced = frag[: moof[2]] + free + frag[moof[2] :]
    # The trun offset would now point 8 bytes short; the reader must keep the box, and the
    # data-range check must notice the now-wrong offset rather than return silent garbage.
    with pytest.raises(BmffError, match="outside the mdat"):
        feed_all(init.data + spliced)


# ---------------------------------------------------------------- rebasing


@settings(max_examples=30, deadline=None)
@given(offset=st.integers(min_value=0, max_value=2**50))
def test_rebase_round_trip_on_ffmpeg_fragments(offset: int) -> None:
    init, frags = split_records(VIDEO)
    defaults = parse_init(init.data).defaults
    for frag in frags:
        rebased = rebase_fragment(frag.data, offset)
        info = fragment_info(rebased, defaults=defaults, track_id=1)
        assert info.decode_time_ticks == frag.decode_time_ticks + offset
        assert (info.duration_ticks, info.sample_count) == (frag.duration_ticks, frag.sample_count)
        assert info.starts_with_sync == frag.starts_with_sync
        assert mdat_bytes(rebased) == mdat_bytes(frag.data)
        assert len(rebased) == len(frag.data)  # FFmpeg writes tfdt v1: patched in place
        assert fragment_info(rebase_fragment(rebased, -offset)) == fragment_info(frag.data)


def test_rebase_by_zero_returns_same_bytes() -> None:
    _, frags = split_records(AUDIO)
    assert rebase_fragment(frags[1].data, 0) is frags[1].data


def test_rebase_below_zero_is_rejected() -> None:
    _, frags = split_records(AUDIO)
    with pytest.raises(BmffError, match="negative"):
        rebase_fragment(frags[1].data, -frags[1].decode_time_ticks - 1)
    to_zero = rebase_fragment(frags[1].data, -frags[1].decode_time_ticks)
    assert fragment_info(to_zero).decode_time_ticks == 0


def test_rebase_v0_that_still_fits_stays_v0() -> None:
    frag = make_fragment(base_time=1000, tfdt_version=0)
    rebased = rebase_fragment(frag, 2**32 - 1001)
    assert len(rebased) == len(frag)
    assert fragment_info(rebased).decode_time_ticks == 2**32 - 1


def test_rebase_upgrades_overflowing_v0_tfdt_to_v1() -> None:
    frag = make_fragment(base_time=2**32 - 10, tfdt_version=0)
    before = fragment_info(frag)
    rebased = rebase_fragment(frag, 100)
    assert len(rebased) == len(frag) + 4
    moof = next(b for b in boxes(rebased) if b[0] == "moof")
    traf = child(rebased, moof, "traf")
    tfdt = child(rebased, traf, "tfdt")
    trun = child(rebased, traf, "trun")
    old_moof = next(b for b in boxes(frag) if b[0] == "moof")
    assert moof[2] - moof[1] == old_moof[2] - old_moof[1] + 4
    assert (tfdt[2] - tfdt[1], rebased[tfdt[1] + 8]) == (20, 1)
    assert struct.unpack_from(">Q", rebased, tfdt[1] + 12)[0] == 2**32 + 90
    old_trun = child(frag, child(frag, old_moof, "traf"), "trun")
    old_offset = struct.unpack_from(">i", frag, old_trun[1] + 16)[0]
    assert struct.unpack_from(">i", rebased, trun[1] + 16)[0] == old_offset + 4
    # the offset still lands on the first sample's bytes, right after the mdat header
    assert (
        rebased[moof[1] + old_offset + 4 - 8 : moof[1] + old_offset + 4]
        == frag[old_offset - 8 : old_offset]
    )
    assert mdat_bytes(rebased) == mdat_bytes(frag)
    after = fragment_info(rebased)
    assert after.decode_time_ticks == 2**32 + 90
    assert (after.duration_ticks, after.sample_count) == (before.duration_ticks, 3)


def test_rebase_upgrade_of_real_fragment_matches_v1_rebase() -> None:
    _, frags = split_records(VIDEO)
    offset = 2**33 + 7
    for frag in frags:
        v0 = downgrade_tfdt_to_v0(frag.data)
        assert len(v0) == len(frag.data) - 4
        parsed = fragment_info(v0)
        assert parsed.decode_time_ticks == frag.decode_time_ticks
        assert (parsed.duration_ticks, parsed.starts_with_sync) == (
            frag.duration_ticks,
            frag.starts_with_sync,
        )
        # Upgrading restores FFmpeg's own v1 layout exactly.
        assert rebase_fragment(v0, offset) == rebase_fragment(frag.data, offset)


def test_ffmpeg_decodes_rebased_fragments(tmp_path: Path) -> None:
    for name, data in (("video", VIDEO), ("audio", AUDIO)):
        init, frags = split_records(data)
        offset = 2**33 + 3 * init.track.timescale  # forces 64-bit times
        rebased = b"".join(rebase_fragment(f.data, offset) for f in frags)
        upgraded = b"".join(rebase_fragment(downgrade_tfdt_to_v0(f.data), offset) for f in frags)
        for label, body in (("v1", rebased), ("v0-upgraded", upgraded)):
            result = ffmpeg_decodes(tmp_path, f"{name}-{label}.mp4", init.data + body)
            assert (result.returncode, result.stderr) == (0, ""), (name, label)


# ---------------------------------------------------------------- fragment fields, hand-built


@pytest.mark.parametrize(
    ("first_sample_flags", "sample_flags", "tfhd_flags", "trex_flags", "sync"),
    [
        (0x0200_0000, (0x0101_0000,) * 3, 0x0101_0000, 0x0101_0000, True),  # trun first wins
        (0x0101_0000, (0x0200_0000,) * 3, 0x0200_0000, 0x0200_0000, False),
        (None, (0x0200_0000, 0x0101_0000, 0x0101_0000), 0x0101_0000, 0x0101_0000, True),
        (None, (0x0101_0000, 0x0200_0000, 0x0200_0000), 0x0200_0000, 0x0200_0000, False),
        (None, None, 0x0200_0000, 0x0101_0000, True),  # tfhd default over trex
        (None, None, 0x0101_0000, 0x0200_0000, False),
        (None, None, None, 0x0200_0000, True),  # trex as last resort
        (None, None, None, 0x0101_0000, False),
    ],
)
def test_sync_flag_priority(
    first_sample_flags: int | None,
    sample_flags: tuple[int, ...] | None,
    tfhd_flags: int | None,
    trex_flags: int,
    sync: bool,
) -> None:
    frag = make_fragment(
        base_time=0,
        first_sample_flags=first_sample_flags,
        sample_flags=sample_flags,
        tfhd_default_flags=tfhd_flags,
    )
    trex = TrackDefaults(1, 0, 0, trex_flags)
    assert fragment_info(frag, defaults=trex).starts_with_sync is sync


def test_duration_falls_back_to_tfhd_then_trex() -> None:
    trex = TrackDefaults(1, 7, 0, 0)
    per_sample = make_fragment(base_time=5, durations=(1, 2, 3))
    assert fragment_info(per_sample, defaults=trex).duration_ticks == 6
    tfhd = make_fragment(base_time=5, per_sample_durations=False, tfhd_default_duration=40)
    assert fragment_info(tfhd, defaults=trex).duration_ticks == 120
    only_trex = make_fragment(base_time=5, per_sample_durations=False)
    assert fragment_info(only_trex, defaults=trex).duration_ticks == 21
    with pytest.raises(BmffError, match="durations"):
        fragment_info(only_trex)


def test_fragment_shape_errors() -> None:
    frag = make_fragment(base_time=0)
    with pytest.raises(BmffError, match="track"):
        fragment_info(frag, track_id=2)
    with pytest.raises(BmffError, match="one 'moof'"):
        fragment_info(frag + frag)
    moof = next(b for b in boxes(frag) if b[0] == "moof")
    traf = child(frag, moof, "traf")
    traf_bytes = frag[traf[1] : traf[2]]
    two_trafs = box(b"moof", frag[moof[1] + 8 : moof[2]] + traf_bytes) + frag[moof[2] :]
    with pytest.raises(BmffError, match="one 'traf'"):
        fragment_info(two_trafs)


# ---------------------------------------------------------------- stream errors


def _good_cut_points(data: bytes) -> set[int]:
    """Where a stream may end cleanly: nothing yet, after moov, after each mdat, after mfra."""
    return {0} | {end for kind, _, end in boxes(data) if kind in {"moov", "mdat", "mfra"}}


@settings(max_examples=60, deadline=None)
@given(cut=st.integers(min_value=0, max_value=len(AUDIO)))
def test_truncation_is_reported_on_close(cut: int) -> None:
    reader = FragmentedMp4Reader()
    reader.feed(AUDIO[:cut])
    if cut in _good_cut_points(AUDIO):
        reader.close()
    else:
        with pytest.raises(BmffError, match=r"truncated|before its init"):
            reader.close()


def test_oversize_and_undersize_boxes_are_rejected_from_the_header() -> None:
    reader = FragmentedMp4Reader()
    with pytest.raises(BmffError, match="limit"):
        reader.feed(struct.pack(">I4s", MAX_BOX_SIZE_BYTES + 1, b"mdat"))
    with pytest.raises(BmffError, match="limit"):
        FragmentedMp4Reader().feed(struct.pack(">I4sQ", 1, b"mdat", 2**40))
    with pytest.raises(BmffError, match="smaller than its header"):
        FragmentedMp4Reader().feed(struct.pack(">I4s", 7, b"free"))
    with pytest.raises(BmffError, match="invalid box type"):
        FragmentedMp4Reader().feed(b"\0\0\0\x10\x01\x02\x03\x04")


def test_reader_stays_failed_after_an_error() -> None:
    reader = FragmentedMp4Reader()
    with pytest.raises(BmffError):
        reader.feed(struct.pack(">I4s", 3, b"free"))
    with pytest.raises(BmffError, match="already failed"):
        reader.feed(VIDEO)
    reader.close()  # no second report: the caller already logged the first


def test_size_zero_box_is_refused_live_but_fine_at_end_of_file() -> None:
    mfra_start = next(s for kind, s, _ in boxes(VIDEO) if kind == "mfra")
    open_ended = VIDEO[:mfra_start] + b"\0\0\0\0" + VIDEO[mfra_start + 4 :]
    with pytest.raises(BmffError, match="size 0"):
        feed_all(open_ended)
    assert split_stream(open_ended) == feed_all(VIDEO)


@pytest.mark.parametrize(
    ("stream_parts", "message"),
    [
        (("init", "f0", "init", "f1"), "second"),  # encoder restarted on the same pipe
        (("f0",), "before the init"),
        (("init", "mdat"), "without a preceding 'moof'"),
        (("init", "moof", "moof"), "another 'moof'"),
        (("ftyp", "ftyp"), "duplicate 'ftyp'"),
    ],
)
def test_out_of_order_boxes_are_rejected(stream_parts: tuple[str, ...], message: str) -> None:
    init, frags = split_records(VIDEO)
    moof = next(b for b in boxes(frags[0].data) if b[0] == "moof")
    pieces = {
        "init": init.data,
        "ftyp": init.data[:28],
        "f0": frags[0].data,
        "f1": frags[1].data,
        "moof": frags[0].data[: moof[2]],
        "mdat": mdat_bytes(frags[0].data),
    }
    with pytest.raises(BmffError, match=message):
        feed_all(b"".join(pieces[p] for p in stream_parts))


@settings(max_examples=150, deadline=None)
@given(garbage=st.binary(max_size=300), offset=st.integers(min_value=-(2**40), max_value=2**40))
def test_random_bytes_only_ever_raise_bmff_error(garbage: bytes, offset: int) -> None:
    for parse in (split_stream, parse_init, fragment_info, lambda d: rebase_fragment(d, offset)):
        with contextlib.suppress(BmffError):
            parse(garbage)


@settings(max_examples=150, deadline=None)
@given(
    which=st.sampled_from(["video", "audio"]),
    edits=st.lists(
        st.tuples(st.integers(min_value=0, max_value=2000), st.integers(0, 255)),
        min_size=1,
        max_size=4,
    ),
)
def test_corrupted_fixtures_only_ever_raise_bmff_error(
    which: str, edits: list[tuple[int, int]]
) -> None:
    # Byte edits in the first 2 KB hit the headers, moov and first moof, where parsing happens.
    data = bytearray(VIDEO if which == "video" else AUDIO)
    for pos, value in edits:
        data[pos] = value
    corrupted = bytes(data)
    try:
        records = split_stream(corrupted)
    except BmffError:
        return
    for record in records:
        if isinstance(record, Fragment):
            with contextlib.suppress(BmffError):
                rebase_fragment(record.data, 2**32)


def test_init_details_is_exposed_on_the_reader() -> None:
    assert FragmentedMp4Reader().init is None
    reader = FragmentedMp4Reader()
    reader.feed(AUDIO)
    assert isinstance(reader.init, InitDetails)
    assert reader.init.track.codec == "mp4a.40.2"
