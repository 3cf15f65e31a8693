from __future__ import annotations

import itertools
import json
import os
import struct
import subprocess
import threading
from pathlib import Path

import imageio_ffmpeg
import pytest
from hypothesis import given
from hypothesis import strategies as st

from actors.ffmpeg.command import (
    LADDER,
    SOURCE_RUNG,
    EncodeSpec,
    Rung,
    build_ffmpeg_argv,
    halving_parents,
    hub_kernel,
    hub_parents,
    select_rungs,
)
from actors.ffmpeg.sources import DEFAULT_ALLOWED_PROTOCOLS, validate_source_url

GOLDEN_DIR = Path(__file__).parent.parent / "fixtures" / "golden"
FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()


# ---------------------------------------------------------------- ladder and rung selection


def test_ladder_values() -> None:
    assert LADDER["720p"] == Rung("720p", 1280, 720, 2800, 2996, 4200)
    scaled = [r for n, r in LADDER.items() if n != "source"]
    assert [(r.width, r.height, r.video_bitrate_kbps) for r in scaled] == [
        (1920, 1080, 5000), (1280, 720, 2800), (854, 480, 1400), (640, 360, 800), (426, 240, 400),
    ]  # fmt: skip
    for rung in LADDER.values():
        assert rung.width % 2 == 0  # 4:2:0 needs even dimensions
        assert rung.height % 2 == 0
        assert rung.maxrate_kbps >= rung.video_bitrate_kbps
        assert rung.bufsize_kbps >= rung.maxrate_kbps


def test_select_never_upscales() -> None:
    kept, dropped = select_rungs(["240p", "1080p", "720p", "480p"], 720)
    assert [r.name for r in kept] == ["720p", "480p", "240p"]
    assert dropped == ("1080p",)


def test_select_unknown_height_keeps_all_sorted() -> None:
    kept, dropped = select_rungs(["360p", "720p", "source", "360p"], None)
    assert [r.name for r in kept] == ["source", "720p", "360p"]
    assert dropped == ()


def test_select_all_above_source_keeps_lowest_requested() -> None:
    kept, dropped = select_rungs(["720p", "480p"], 200)
    assert [r.name for r in kept] == ["480p"]
    assert dropped == ("720p",)


def test_select_source_alone_and_unknown_names() -> None:
    assert select_rungs(["source"], 144) == ((SOURCE_RUNG,), ())
    with pytest.raises(ValueError, match="unknown renditions: 4k"):
        select_rungs(["4k", "720p"], 1080)
    with pytest.raises(ValueError, match="no renditions"):
        select_rungs([], 1080)


@given(
    requested=st.lists(st.sampled_from(sorted(LADDER)), min_size=1, max_size=8),
    height=st.one_of(st.none(), st.integers(min_value=16, max_value=4320)),
)
def test_select_properties(requested: list[str], height: int | None) -> None:
    kept, dropped = select_rungs(requested, height)
    names = [r.name for r in kept]
    assert set(names) | set(dropped) == set(requested)
    assert not set(names) & set(dropped)
    assert kept  # never an empty ladder
    heights = [r.height for r in kept if not r.is_passthrough]
    assert heights == sorted(heights, reverse=True)
    if height is not None and len(heights) > 1:
        assert all(h <= height for h in heights)


# ---------------------------------------------------------------- argv shape and golden files


def spec(**overrides: object) -> EncodeSpec:
    src = validate_source_url(
        "rtmp://ingest.example.com/live/key", frozenset(DEFAULT_ALLOWED_PROTOCOLS)
    )
    fields: dict[str, object] = {
        "ffmpeg_path": "ffmpeg",
        "source_url": src.url,
        "input_args": src.input_args,
        "rungs": (LADDER["720p"], LADDER["360p"]),
        "include_audio": True,
        "segment_duration_s": 2.0,
        "fragment_duration_s": 0.5,
        "video_fds": (3, 4),
        "audio_fd": 5,
        "frame_rate": 30,
    }
    fields.update(overrides)
    return EncodeSpec(**fields)  # type: ignore[arg-type]


GOLDEN_SPECS: dict[str, EncodeSpec] = {
    "x264_two_rungs_audio": spec(),
    "x264_cascade_no_fps": spec(
        rungs=(LADDER["1080p"], LADDER["720p"], LADDER["240p"]),
        video_fds=(3, 4, 6),
        cascade_scaling=True,
        frame_rate=None,
        scaler="fast_bilinear",
        segment_duration_s=1.0,
        fragment_duration_s=1 / 3,
        preset="superfast",
    ),
    "source_passthrough_only": spec(
        rungs=(SOURCE_RUNG,), video_fds=(3,), include_audio=False, audio_fd=None
    ),
    "source_plus_one_rung": spec(rungs=(SOURCE_RUNG, LADDER["480p"])),
    "nvenc": spec(hw_encoder="nvenc"),
    "vaapi": spec(hw_encoder="vaapi", include_audio=False, audio_fd=None),
    "qsv": spec(hw_encoder="qsv", rungs=(LADDER["720p"],), video_fds=(3,)),
    "x264_hub_ladder": spec(
        rungs=tuple(LADDER[n] for n in ("1080p", "720p", "480p", "360p", "240p")),
        video_fds=(3, 4, 5, 6, 7),
        audio_fd=8,
        hub_scaling=True,
    ),
}


@pytest.mark.parametrize("name", sorted(GOLDEN_SPECS))
def test_golden_argv(name: str) -> None:
    argv = build_ffmpeg_argv(GOLDEN_SPECS[name])
    path = GOLDEN_DIR / f"ffmpeg_{name}.json"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        path.write_text(json.dumps(argv, indent=1) + "\n")
    assert argv == json.loads(path.read_text())


def test_argv_invariants() -> None:
    argv = build_ffmpeg_argv(spec())
    assert argv[:8] == ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "info",
                        "-progress", "pipe:1", "-nostats"]  # fmt: skip
    assert argv[argv.index("-i") + 1] == "rtmp://ingest.example.com/live/key"
    assert argv.count("-filter_complex") == 1
    assert [a for a in argv if a.startswith("pipe:")] == ["pipe:1", "pipe:3", "pipe:4", "pipe:5"]
    graph = argv[argv.index("-filter_complex") + 1]
    assert graph == (
        "[0:v:0]fps=30,format=yuv420p,split=2[s0][s1];"
        "[s0]scale=1280:720:flags=bicubic,setsar=1[v0];"
        "[s1]scale=640:360:flags=bicubic,setsar=1[v1]"
    )
    assert argv.count("expr:gte(t,n_forced*2)") == 2
    assert argv.count("-g") == 2
    assert argv[argv.index("-g") + 1] == "60"
    assert "2000000" not in argv  # fragment, not segment, sets -frag_duration
    assert argv.count("500000") == 2  # the two video outputs
    # audio: 23 whole AAC frames (0.4907 s), just inside the 0.5 s part target
    assert argv.count(str(round(23 * 1024 / 48000 * 1_000_000) - 1)) == 1
    # 720p High, 360p Main
    profiles = [argv[i + 1] for i, a in enumerate(argv) if a == "-profile:v"]
    assert profiles == ["high", "main"]


def test_spec_validation() -> None:
    with pytest.raises(ValueError, match="one video fd per rung"):
        spec(video_fds=(3,))
    with pytest.raises(ValueError, match="audio_fd"):
        spec(audio_fd=None)
    with pytest.raises(ValueError, match="must not start"):
        spec(source_url="-i")
    with pytest.raises(ValueError, match="fragment_duration_s"):
        spec(fragment_duration_s=3.0)
    with pytest.raises(ValueError, match="preset"):
        spec(preset="placebo-ish")
    with pytest.raises(ValueError, match="choose one"):
        spec(halving_scaling=True, hub_scaling=True)
    with pytest.raises(ValueError, match="choose one"):
        spec(cascade_scaling=True, hub_scaling=True)


# ---------------------------------------------------------------- real run on testsrc2


def _boxes(data: bytes, start: int = 0, end: int | None = None) -> list[tuple[bytes, int, int]]:
    """(type, payload_start, box_end) of the complete boxes in data[start:end]."""
    end = len(data) if end is None else end
    out = []
    while start + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, start)
        header = 8
        if size == 1:
            size = struct.unpack_from(">Q", data, start + 8)[0]
            header = 16
        if size < header or start + size > end:
            break
        out.append((kind, start + header, start + size))
        start += size
    return out


def _child(data: bytes, parent: tuple[bytes, int, int], kind: bytes) -> tuple[bytes, int, int]:
    return next(b for b in _boxes(data, parent[1], parent[2]) if b[0] == kind)


def _fragments(data: bytes) -> tuple[int, list[tuple[float, float, bool]]]:
    """(timescale, [(start_s, duration_s, starts_with_sync)]) of a single-track fMP4 stream."""
    top = _boxes(data)
    assert top[0][0] == b"ftyp"
    moov = next(b for b in top if b[0] == b"moov")
    mdhd = _child(data, _child(data, _child(data, moov, b"trak"), b"mdia"), b"mdhd")
    version = data[mdhd[1]]
    timescale = struct.unpack_from(">I", data, mdhd[1] + (20 if version == 1 else 12))[0]
    frags = []
    for moof in (b for b in top if b[0] == b"moof"):
        traf = _child(data, moof, b"traf")
        tfhd = _child(data, traf, b"tfhd")
        tf_flags = struct.unpack_from(">I", data, tfhd[1])[0] & 0xFFFFFF
        pos = tfhd[1] + 8 + (8 if tf_flags & 0x1 else 0) + (4 if tf_flags & 0x2 else 0)
        default_duration = default_flags = None
        if tf_flags & 0x8:
            default_duration = struct.unpack_from(">I", data, pos)[0]
            pos += 4
        if tf_flags & 0x10:
            pos += 4
        if tf_flags & 0x20:
            default_flags = struct.unpack_from(">I", data, pos)[0]
        tfdt = _child(data, traf, b"tfdt")
        if data[tfdt[1]] == 1:
            decode_time = struct.unpack_from(">Q", data, tfdt[1] + 4)[0]
        else:
            decode_time = struct.unpack_from(">I", data, tfdt[1] + 4)[0]
        trun = _child(data, traf, b"trun")
        tr_flags, count = struct.unpack_from(">II", data, trun[1])
        tr_flags &= 0xFFFFFF
        pos = trun[1] + 8 + (4 if tr_flags & 0x1 else 0)
        first_flags = None
        if tr_flags & 0x4:
            first_flags = struct.unpack_from(">I", data, pos)[0]
            pos += 4
        duration = 0
        for i in range(count):
            if tr_flags & 0x100:
                duration += struct.unpack_from(">I", data, pos)[0]
                pos += 4
            else:
                assert default_duration is not None
                duration += default_duration
            if tr_flags & 0x200:
                pos += 4
            if tr_flags & 0x400:
                if i == 0 and first_flags is None:
                    first_flags = struct.unpack_from(">I", data, pos)[0]
                pos += 4
            if tr_flags & 0x800:
                pos += 4
        flags = first_flags if first_flags is not None else default_flags
        sync = flags is not None and not flags & 0x10000
        frags.append((decode_time / timescale, duration / timescale, sync))
    return timescale, frags


def test_real_ffmpeg_two_rungs_and_audio_to_pipes() -> None:
    everything = frozenset((*DEFAULT_ALLOWED_PROTOCOLS, "lavfi"))
    src = validate_source_url(
        "lavfi:testsrc2=size=640x360:rate=30:duration=3.2[out0];"
        "sine=frequency=440:sample_rate=48000:duration=3.2[out1]",
        everything,
    )
    pipes = [os.pipe() for _ in range(3)]
    encode = EncodeSpec(
        ffmpeg_path=FFMPEG, source_url=src.url, input_args=src.input_args,
        rungs=(LADDER["360p"], LADDER["240p"]), include_audio=True,
        segment_duration_s=1.0, fragment_duration_s=0.5,
        video_fds=(pipes[0][1], pipes[1][1]), audio_fd=pipes[2][1],
        frame_rate=30, preset="ultrafast",
    )  # fmt: skip
    outputs: list[bytes] = [b"", b"", b""]

    def drain(i: int) -> None:
        with os.fdopen(pipes[i][0], "rb") as reader:
            outputs[i] = reader.read()

    readers = [threading.Thread(target=drain, args=(i,)) for i in range(3)]
    for t in readers:
        t.start()
    try:
        done = subprocess.run(
            build_ffmpeg_argv(encode), pass_fds=[w for _, w in pipes],
            capture_output=True, timeout=20, check=False,
        )  # fmt: skip
    finally:
        for _, w in pipes:
            os.close(w)
        for t in readers:
            t.join(timeout=10)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    assert b"progress=end" in done.stdout

    for video in outputs[:2]:
        timescale, frags = _fragments(video)
        assert timescale > 0
        assert len(frags) >= 6
        # IDRs exactly on every whole second, nowhere else; parts of ≤ 0.5 s in between.
        for start_s, duration_s, sync in frags:
            on_boundary = abs(start_s - round(start_s)) < 1e-6
            assert sync == on_boundary, (start_s, sync)
            assert duration_s <= 0.5 + 1e-6
        assert [round(s) for s, _, sync in frags if sync] == [0, 1, 2, 3]
        # Contiguous timeline: next tfdt == this tfdt + duration.
        for (s0, d0, _), (s1, _, _) in itertools.pairwise(frags):
            assert s1 == pytest.approx(s0 + d0, abs=1e-6)
    timescale, audio = _fragments(outputs[2])
    assert timescale == 48000
    assert all(sync for _, _, sync in audio)
    assert len(audio) >= 5


def test_halving_parents_pair_only_exact_halves() -> None:
    rungs = [LADDER[n] for n in ("1080p", "720p", "480p", "360p", "240p")]
    assert halving_parents(rungs) == [None, None, None, 1, 2]
    assert halving_parents([LADDER["720p"], LADDER["480p"]]) == [None, None]


def test_halving_graph_scales_halves_from_their_parent() -> None:
    rungs = tuple(LADDER[n] for n in ("1080p", "720p", "480p", "360p", "240p"))
    argv = build_ffmpeg_argv(
        spec(rungs=rungs, video_fds=(3, 4, 5, 6, 7), audio_fd=8, halving_scaling=True)
    )
    graph = argv[argv.index("-filter_complex") + 1]
    assert "split=3[s0][s1][s2]" in graph  # 1080p, 720p, 480p from the source
    assert "[s1]scale=1280:720:flags=bicubic,setsar=1,split=2[v1][h1_3]" in graph
    assert "[h1_3]scale=640:360" in graph  # 360p from 720p
    assert "[h2_4]scale=426:240" in graph  # 240p from 480p
    for index in range(5):
        assert graph.count(f"[v{index}]") == 1


FULL_LADDER = tuple(LADDER[n] for n in ("1080p", "720p", "480p", "360p", "240p"))


def test_hub_parents_scale_low_rungs_from_the_second_rung() -> None:
    assert hub_parents(FULL_LADDER) == [None, None, 1, 1, 1]
    # 720p source: 480p is the hub; 360p is too close to it (1.33:1), 240p is a clean half
    assert hub_parents([LADDER[n] for n in ("720p", "480p", "360p", "240p")]) == [
        None, None, None, 1,
    ]  # fmt: skip
    assert hub_parents([LADDER["720p"], LADDER["360p"]]) == [None, None]
    assert hub_parents([LADDER["480p"]]) == [None]


def test_hub_kernel_sharpens_only_small_second_downscales() -> None:
    sharp = "bicubic:param_a=0:param_b=0.75"
    plain = "bicubic:param_a=0:param_b=0.6"  # swscale's own bicubic coefficients
    assert hub_kernel(None, LADDER["720p"]) == plain
    assert hub_kernel(LADDER["720p"], LADDER["480p"]) == sharp
    assert hub_kernel(LADDER["720p"], LADDER["360p"]) == plain
    assert hub_kernel(LADDER["720p"], LADDER["240p"]) == plain


def test_hub_graph_shape() -> None:
    argv = build_ffmpeg_argv(
        spec(rungs=FULL_LADDER, video_fds=(3, 4, 5, 6, 7), audio_fd=8, hub_scaling=True)
    )
    graph = argv[argv.index("-filter_complex") + 1]
    assert "split=2[s0][s1]" in graph  # only 1080p and 720p read the source
    assert "[s1]zscale=w=1280:h=720:filter=bicubic:param_a=0:param_b=0.6" in graph
    assert "split=4[v1][h1_2][h1_3][h1_4]" in graph
    assert "[h1_2]zscale=w=854:h=480:filter=bicubic:param_a=0:param_b=0.75" in graph
    assert graph.count("chromalin=center:chromal=center") == 5
    assert "scale=" not in graph.replace("zscale=", "")
    for index in range(5):
        assert graph.count(f"[v{index}]") == 1


@pytest.mark.parametrize("hw", ["vaapi", "qsv"])
def test_hub_falls_back_to_halving_where_zscale_cannot_read_frames(hw: str) -> None:
    hub = build_ffmpeg_argv(
        spec(rungs=FULL_LADDER, video_fds=(3, 4, 5, 6, 7), audio_fd=8, hw_encoder=hw,
             hub_scaling=True)
    )  # fmt: skip
    halving = build_ffmpeg_argv(
        spec(rungs=FULL_LADDER, video_fds=(3, 4, 5, 6, 7), audio_fd=8, hw_encoder=hw,
             halving_scaling=True)
    )  # fmt: skip
    assert hub == halving
    assert "zscale" not in " ".join(hub)


def test_real_ffmpeg_runs_the_hub_graph() -> None:
    everything = frozenset((*DEFAULT_ALLOWED_PROTOCOLS, "lavfi"))
    src = validate_source_url("lavfi:testsrc2=size=1280x720:rate=30:duration=1[out0]", everything)
    rungs = (LADDER["720p"], LADDER["480p"], LADDER["360p"], LADDER["240p"])
    encode = EncodeSpec(
        ffmpeg_path=FFMPEG, source_url=src.url, input_args=src.input_args, rungs=rungs,
        include_audio=False, segment_duration_s=1.0, fragment_duration_s=0.5,
        video_fds=(1, 1, 1, 1), audio_fd=None, frame_rate=30, preset="ultrafast",
        hub_scaling=True,
    )  # fmt: skip
    argv = build_ffmpeg_argv(encode)
    # same graph and encoders, outputs to the null muxer: only checks FFmpeg accepts the graph
    cut = argv.index("-map")
    outs = []
    for index in range(len(rungs)):
        outs += ["-map", f"[v{index}]", "-c:v", "libx264", "-preset", "ultrafast"]
        outs += ["-f", "null", "-"]
    done = subprocess.run(
        argv[:cut] + outs, capture_output=True, timeout=30, check=False, stdin=subprocess.DEVNULL
    )
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    assert "zscale" in argv[argv.index("-filter_complex") + 1]


@pytest.mark.parametrize(
    ("preset", "hw", "enabled", "expected"),
    [
        ("veryfast", "none", True, True),
        ("veryfast", "none", False, False),  # the naive ladder the benchmark compares with
        ("ultrafast", "none", True, False),  # already diamond
        ("medium", "none", True, False),  # picked for quality: left as x264 defines it
        ("veryfast", "nvenc", True, False),
    ],
)
def test_diamond_search_only_for_veryfast_x264(
    preset: str, hw: str, enabled: bool, expected: bool
) -> None:
    argv = build_ffmpeg_argv(spec(preset=preset, hw_encoder=hw, diamond_search=enabled))
    pairs = list(itertools.pairwise(argv))
    video_encoders = argv.count("libx264")
    assert pairs.count(("-motion-est", "dia")) == (video_encoders if expected else 0)


@pytest.mark.parametrize(
    ("hw", "encoder", "no_captions"),
    [
        ("none", "libx264", ("-a53cc", "0")),
        ("nvenc", "h264_nvenc", ("-a53cc", "0")),
        ("vaapi", "h264_vaapi", ("-sei", "identifier+timing+recovery_point")),
    ],
)
def test_transcoded_rungs_drop_the_sources_captions(
    hw: str, encoder: str, no_captions: tuple[str, str]
) -> None:
    """The multivariant playlist says CLOSED-CAPTIONS=NONE, so no rung may copy the source's
    A/53 captions (these encoders do by default; h264_qsv has no such option and copies none)."""
    argv = build_ffmpeg_argv(spec(hw_encoder=hw))
    rungs = argv.count(encoder)
    assert rungs == 2
    assert list(itertools.pairwise(argv)).count(no_captions) == rungs
