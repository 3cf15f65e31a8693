"""Pure FFmpeg argv builder: one process decodes once, scales N rungs, writes CMAF to pipes.

Every flag here was checked against the bundled FFmpeg 9.0.2 (``ffmpeg -h muxer=mp4``,
``-h encoder=libx264`` …) and the x264 path is exercised end to end in the unit tests.
No trio, no HTTP, never a shell string.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

HwEncoder = Literal["none", "nvenc", "vaapi", "qsv"]

# maxrate 1.07× the average: the usual CBR-ish cap for live ABR; it keeps each segment's measured
# peak well inside Apple's "peak ≤ 110 % of declared" authoring rule for the BANDWIDTH we declare.
MAXRATE_FACTOR = 1.07
# bufsize 1.5× the average: a 1.5 s VBV lets x264 spend bits on the IDR that opens each segment
# without letting any one second overshoot much, which matters with 0.3–1 s LL-HLS parts.
BUFSIZE_FACTOR = 1.5
# At or below this height we ask for Main profile: older phones / smart TVs only decode Main on
# their low rungs, and with -tune zerolatency (no B-frames) High buys little at these sizes.
MAIN_PROFILE_MAX_HEIGHT = 480
# When the frame rate is unknown, a GOP cap high enough that x264 never inserts its own keyframe
# before the forced one (covers up to 120 fps); segment boundaries stay on the forced IDRs.
_UNKNOWN_FPS_GOP_FPS = 120

VAAPI_DEVICE = "/dev/dri/renderD128"

# x264 preset → NVENC p1 (fastest) … p7 (best).
_NVENC_PRESETS: dict[str, str] = {
    "ultrafast": "p1",
    "superfast": "p2",
    "veryfast": "p3",
    "faster": "p4",
    "fast": "p4",
    "medium": "p5",
    "slow": "p6",
    "slower": "p7",
    "veryslow": "p7",
}
# QSV knows veryfast…veryslow; the two x264 presets faster than veryfast map onto veryfast.
_QSV_PRESETS: dict[str, str] = {
    "ultrafast": "veryfast",
    "superfast": "veryfast",
    "veryfast": "veryfast",
    "faster": "faster",
    "fast": "fast",
    "medium": "medium",
    "slow": "slow",
    "slower": "slower",
    "veryslow": "veryslow",
}
X264_PRESETS = frozenset(_NVENC_PRESETS)

SOURCE_RUNG_NAME = "source"
# x264 presets whose motion search we replace with diamond (see _video_encoder_args)
DIAMOND_SEARCH_PRESETS = frozenset({"veryfast"})

# zimg (zscale) kernels for hub_scaling. B=0, C=0.6 is swscale's own bicubic (scale=flags=bicubic),
# so rungs scaled from the source match the naive ladder; zimg does it for ~60 % of the CPU.
ZSCALE_BICUBIC = "bicubic:param_a=0:param_b=0.6"
# Keys' a=-0.75 cubic (B=0, C=0.75), a touch sharper: it offsets the extra blur of resampling twice
# when a rung is scaled from the hub at less than 2:1 (480p from 720p: -0.04 dB vs the naive
# ladder, where C=0.6 loses 0.37 dB; ops/bench/ladder.py).
ZSCALE_SHARP_BICUBIC = "bicubic:param_a=0:param_b=0.75"
# Rungs at most 1/HUB_MIN_RATIO of the hub's height are scaled from it; closer ones (one rung
# resampled twice at a small ratio) from the source.
HUB_MIN_RATIO = 1.5
# Transcoded rungs never carry the source's A/53 (CEA-608/708) captions, so the multivariant
# playlist can say CLOSED-CAPTIONS=NONE: x264 and NVENC copy them by default (-a53cc 0 stops it),
# h264_vaapi's -sei default includes a53_cc (this is the default minus it); h264_qsv copies none.
VAAPI_SEI_WITHOUT_CAPTIONS = "identifier+timing+recovery_point"


@dataclass(frozen=True, slots=True)
class Rung:
    """One video rendition. The "source" rung (width == height == 0) is a passthrough copy."""

    name: str
    width: int
    height: int
    video_bitrate_kbps: int
    maxrate_kbps: int
    bufsize_kbps: int

    @property
    def is_passthrough(self) -> bool:
        return self.name == SOURCE_RUNG_NAME


def _rung(name: str, width: int, height: int, video_bitrate_kbps: int) -> Rung:
    return Rung(
        name=name,
        width=width,
        height=height,
        video_bitrate_kbps=video_bitrate_kbps,
        maxrate_kbps=round(video_bitrate_kbps * MAXRATE_FACTOR),
        bufsize_kbps=round(video_bitrate_kbps * BUFSIZE_FACTOR),
    )


SOURCE_RUNG = Rung(SOURCE_RUNG_NAME, 0, 0, 0, 0, 0)

LADDER: dict[str, Rung] = {
    SOURCE_RUNG_NAME: SOURCE_RUNG,
    "1080p": _rung("1080p", 1920, 1080, 5000),
    "720p": _rung("720p", 1280, 720, 2800),
    "480p": _rung("480p", 854, 480, 1400),
    "360p": _rung("360p", 640, 360, 800),
    "240p": _rung("240p", 426, 240, 400),
}


def _rank(rung: Rung) -> int:
    # The passthrough rung sorts first: it is by definition the source's own quality.
    return 1_000_000 if rung.is_passthrough else rung.height


def select_rungs(
    requested: Sequence[str], source_height: int | None
) -> tuple[tuple[Rung, ...], tuple[str, ...]]:
    """Pick the requested rungs that do not upscale; return (kept high→low, dropped names).

    Unknown source height keeps everything. If *every* requested scaled rung is taller than the
    source, the lowest requested one is kept anyway (a stream with no video is worse than a small
    upscale); the passthrough rung is never dropped. Duplicates are ignored.

    Raises:
        ValueError: for an empty request or an unknown rung name.
    """
    if not requested:
        raise ValueError("no renditions requested")
    unknown = [name for name in requested if name not in LADDER]
    if unknown:
        raise ValueError(f"unknown renditions: {', '.join(sorted(set(unknown)))}")
    rungs = sorted({LADDER[name] for name in requested}, key=_rank, reverse=True)
    if source_height is None:
        return tuple(rungs), ()
    kept = [r for r in rungs if r.is_passthrough or r.height <= source_height]
    scaled = [r for r in rungs if not r.is_passthrough]
    if scaled and not any(not r.is_passthrough for r in kept):
        kept.append(scaled[-1])
    dropped = tuple(r.name for r in rungs if r not in kept)
    return tuple(kept), dropped


@dataclass(frozen=True, slots=True, kw_only=True)
class EncodeSpec:
    """Everything one FFmpeg run needs. fds are the *child's* write ends, one per rung, in order."""

    ffmpeg_path: str
    source_url: str  # already validated by sources.validate_source_url (never starts with "-")
    input_args: tuple[str, ...]
    rungs: tuple[Rung, ...]
    include_audio: bool
    segment_duration_s: float
    fragment_duration_s: float
    video_fds: tuple[int, ...]
    audio_fd: int | None
    audio_bitrate_kbps: int = 128
    preset: str = "veryfast"
    hw_encoder: HwEncoder = "none"
    progress_url: str = "pipe:1"
    scaler: str = "bicubic"
    cascade_scaling: bool = False
    # rungs exactly half another rung's size are scaled from it (see halving_parents)
    halving_scaling: bool = False
    # zscale (zimg: swscale's bicubic at ~60 % of the CPU) with the rungs below the second one
    # scaled from it (see hub_parents): ~0.86x the naive ladder's CPU at <= 0.1 dB, halving ~0.92x
    # (ops/bench/ladder.py). Ignores ``scaler``; VAAPI/QSV (frames zscale can't take) get halving.
    hub_scaling: bool = False
    # diamond motion search for the presets in DIAMOND_SEARCH_PRESETS (see _video_encoder_args)
    diamond_search: bool = False
    frame_rate: int | None = None

    def __post_init__(self) -> None:
        if not self.rungs:
            raise ValueError("at least one rung is required")
        if len(self.video_fds) != len(self.rungs):
            raise ValueError("one video fd per rung is required")
        if self.include_audio != (self.audio_fd is not None):
            raise ValueError("audio_fd must be set exactly when include_audio is")
        if self.source_url.startswith("-"):
            raise ValueError("source URL must not start with '-'")
        if not 0 < self.fragment_duration_s <= self.segment_duration_s:
            raise ValueError("need 0 < fragment_duration_s <= segment_duration_s")
        if self.preset not in X264_PRESETS:
            raise ValueError(f"unknown preset {self.preset!r}")
        if self.frame_rate is not None and self.frame_rate <= 0:
            raise ValueError("frame_rate must be positive")
        if sum((self.cascade_scaling, self.halving_scaling, self.hub_scaling)) > 1:
            raise ValueError("choose one of cascade_scaling, halving_scaling and hub_scaling")


def _fmt_seconds(value: float) -> str:
    # "2" rather than "2.0" keeps the expression (and golden files) tidy; repr keeps precision.
    return str(int(value)) if float(value).is_integer() else repr(float(value))


AAC_FRAME_S = 1024 / 48_000  # audio is always resampled to 48 kHz (-ar 48000)


def audio_fragment_duration_s(part_target_s: float) -> float:
    """Whole AAC frames, strictly inside the part target.

    The muxer closes a fragment once it reaches ``-frag_duration``, so asking for the target itself
    gives 24 frames = 0.512 s for 0.5 s — longer than PART-TARGET, which LL-HLS forbids. The
    largest whole number of frames below it (23 = 0.491 s) stays within [0.85, 1] × target.
    """
    frames = max(1, math.floor(part_target_s / AAC_FRAME_S + 1e-9))
    return frames * AAC_FRAME_S


def cmaf_output_args(fragment_duration_s: float, *, video: bool, fd: int) -> list[str]:
    # frag_keyframe starts a fragment at each IDR (so segments can be cut on fragment
    # boundaries); frag_duration cuts the LL parts in between. empty_moov makes the init segment
    # (ftyp+moov) come out first on its own; default_base_moof + cmaf give CMAF-conformant
    # fragments; skip_trailer avoids a useless mfra at exit. flush_packets pushes every finished
    # fragment into the pipe at once instead of waiting for AVIO's 32 KiB buffer.
    # frag_discont with no edit list keeps the encoder's timestamps in tfdt instead of starting
    # every output at 0: joining a live source mid-GOP, audio starts at its first packet and video
    # at the next keyframe, and only their own timestamps say how far apart those are (lip sync,
    # and the video's PDT against its capture time; the timeline keeps that offset).
    flags = "+empty_moov+default_base_moof+cmaf+skip_trailer+frag_discont"
    if video:
        flags = "+frag_keyframe" + flags
    return [
        "-f",
        "mp4",
        "-movflags",
        flags,
        "-use_editlist",
        "0",
        "-frag_duration",
        # audio: one microsecond below the whole-frame duration, so the Nth frame closes it
        str(round(fragment_duration_s * 1_000_000) - (0 if video else 1)),
        "-flush_packets",
        "1",
        f"pipe:{fd}",
    ]


def _gop_frames(spec: EncodeSpec) -> int:
    fps = spec.frame_rate if spec.frame_rate is not None else _UNKNOWN_FPS_GOP_FPS
    return max(1, math.ceil(fps * spec.segment_duration_s))


def _filter_complex(spec: EncodeSpec, scaled: Sequence[tuple[int, Rung]]) -> str:
    """decode once → (fps) → pixel format → split → per-rung scale, labelled [v<index>]."""
    head: list[str] = []
    if spec.frame_rate is not None:
        # Constant frame rate makes -g exact and segment durations identical across rungs.
        head.append(f"fps={spec.frame_rate}")
    if spec.hw_encoder == "vaapi":
        head += ["format=nv12", "hwupload"]
    elif spec.hw_encoder == "qsv":
        head.append("format=nv12")  # h264_qsv takes nv12, not yuv420p
    else:
        # 4:2:0 8-bit once, before the split: x264 High/Main reject 4:2:2/4:4:4/10-bit input.
        head.append("format=yuv420p")

    def scale(rung: Rung) -> str:
        if spec.hw_encoder == "vaapi":
            return f"scale_vaapi=w={rung.width}:h={rung.height}"
        return f"scale={rung.width}:{rung.height}:flags={spec.scaler},setsar=1"

    count = len(scaled)
    if count == 1:
        index, rung = scaled[0]
        return f"[0:v:0]{','.join(head)},{scale(rung)}[v{index}]"
    if spec.hub_scaling and spec.hw_encoder in ("none", "nvenc"):
        return _hub_graph(head, scaled)
    if not spec.cascade_scaling:
        # halving (or hub on VAAPI/QSV), else every rung from the (split) source
        rungs = [rung for _, rung in scaled]
        halving = spec.halving_scaling or spec.hub_scaling
        parents = halving_parents(rungs) if halving else [None] * count
        return _tree_graph(head, scaled, parents, lambda position: scale(rungs[position]))
    # Cascade (ops/bench/ladder.py only): each rung scales from the one above (cheaper: the 240p
    # scaler reads 360p, not 1080p), at a small quality cost from repeated resampling.
    chains: list[str] = []
    source = f"[0:v:0]{','.join(head)}"
    for position, (index, rung) in enumerate(scaled):
        last = position == count - 1
        if last:
            chains.append(f"{source},{scale(rung)}[v{index}]")
        else:
            chains.append(f"{source},{scale(rung)},split=2[v{index}][c{index}]")
            source = f"[c{index}]null"
    return ";".join(chains)


def halving_parents(rungs: Sequence[Rung]) -> list[int | None]:
    """For each rung (high → low), the index of a rung exactly twice its size, or None.

    Halving is the one downscale that costs little and loses nothing measurable: each output
    pixel averages a clean 2×2 block of the parent, so 360p from 720p and 240p from 480p match
    360p/240p from 1080p within 0.05 dB PSNR (ops/bench/ladder.py) while the scalers read a
    quarter as many source pixels. Other ratios (480p from 720p, …) alias, so those rungs still
    scale from the source.
    """
    parents: list[int | None] = []
    for rung in rungs:
        parent = next(
            (
                i
                for i, above in enumerate(rungs)
                if above.height == 2 * rung.height and abs(above.width - 2 * rung.width) <= 2
            ),
            None,
        )
        parents.append(parent)
    return parents


def hub_parents(rungs: Sequence[Rung]) -> list[int | None]:
    """For each rung (high → low), the index of the rung it is scaled from, or None (the source).

    The two highest rungs come from the source; the second one is the hub, and every rung at least
    HUB_MIN_RATIO times smaller than it is scaled from it. On the 1080p ladder: 720p from the
    source, 480p/360p/240p from 720p, so only one scaler reads full-size frames; each output pixel
    is still one resampling away from the source except for the hub's children, whose kernels
    (hub_kernel) keep PSNR within 0.1 dB of the naive ladder (ops/bench/ladder.py).
    """
    hub = 1 if len(rungs) > 2 else None
    return [
        hub
        if hub is not None and position > hub and rungs[hub].height >= HUB_MIN_RATIO * rung.height
        else None
        for position, rung in enumerate(rungs)
    ]


def hub_kernel(parent: Rung | None, rung: Rung) -> str:
    """zscale kernel for one rung: swscale's bicubic, sharper for a small second downscale."""
    if parent is not None and parent.height < 2 * rung.height:
        return ZSCALE_SHARP_BICUBIC
    return ZSCALE_BICUBIC


def _hub_graph(head: list[str], scaled: Sequence[tuple[int, Rung]]) -> str:
    rungs = [rung for _, rung in scaled]
    parents = hub_parents(rungs)

    def scale(position: int) -> str:
        rung = rungs[position]
        parent = parents[position]
        kernel = hub_kernel(None if parent is None else rungs[parent], rung)
        # swscale treats 4:2:0 chroma as centred whatever the frame is tagged with (checked on
        # this build: left/center/topleft tags give identical output); pinning zimg's input and
        # output siting to the same keeps the chroma where the naive ladder puts it (zimg's
        # untagged default, left, costs ~4 dB of chroma PSNR against it on testsrc2).
        return (
            f"zscale=w={rung.width}:h={rung.height}:filter={kernel}"
            ":chromalin=center:chromal=center,setsar=1"
        )

    return _tree_graph(head, scaled, parents, scale)


def _tree_graph(
    head: list[str],
    scaled: Sequence[tuple[int, Rung]],
    parents: Sequence[int | None],
    scale: Callable[[int], str],
) -> str:
    """Rungs whose parent is None read the (split) source, the others a copy of their parent."""
    children: dict[int, list[int]] = {}
    for position, parent in enumerate(parents):
        if parent is not None:
            children.setdefault(parent, []).append(position)
    roots = [position for position, parent in enumerate(parents) if parent is None]
    chains = []
    source_labels = "".join(f"[s{scaled[p][0]}]" for p in roots)
    if len(roots) == 1:
        chains.append(f"[0:v:0]{','.join(head)},null{source_labels}")
    else:
        chains.append(f"[0:v:0]{','.join(head)},split={len(roots)}{source_labels}")
    for position, (index, _) in enumerate(scaled):
        parent = parents[position]
        source = f"[s{index}]" if parent is None else f"[h{scaled[parent][0]}_{index}]"
        kids = children.get(position, [])
        if not kids:
            chains.append(f"{source}{scale(position)}[v{index}]")
            continue
        copies = "".join(f"[h{index}_{scaled[k][0]}]" for k in kids)
        chains.append(f"{source}{scale(position)},split={len(kids) + 1}[v{index}]{copies}")
    return ";".join(chains)


def _video_encoder_args(spec: EncodeSpec, rung: Rung) -> list[str]:
    profile = "main" if rung.height <= MAIN_PROFILE_MAX_HEIGHT else "high"
    rate = [
        "-b:v",
        f"{rung.video_bitrate_kbps}k",
        "-maxrate",
        f"{rung.maxrate_kbps}k",
        "-bufsize",
        f"{rung.bufsize_kbps}k",
    ]
    gop = _gop_frames(spec)
    gop_args = ["-g", str(gop)]
    if spec.frame_rate is not None:
        gop_args += ["-keyint_min", str(gop)]
    # Every rung gets an IDR at exactly n × segment_duration_s of media time, so segments of all
    # renditions line up (a player can switch at any boundary).
    keyframes = [
        "-force_key_frames",
        f"expr:gte(t,n_forced*{_fmt_seconds(spec.segment_duration_s)})",
    ]
    if spec.hw_encoder == "nvenc":
        return [
            "-c:v", "h264_nvenc",
            "-preset", _NVENC_PRESETS[spec.preset],
            "-tune", "ll",
            "-zerolatency", "1",
            "-forced-idr", "1",
            "-a53cc", "0",
            "-bf", "0",
            "-profile:v", profile,
            *rate, *gop_args, *keyframes,
        ]  # fmt: skip
    if spec.hw_encoder == "vaapi":
        # h264_vaapi turns forced I frames into IDRs by itself; it has no forced_idr option.
        return [
            "-c:v", "h264_vaapi",
            "-sei", VAAPI_SEI_WITHOUT_CAPTIONS,
            "-bf", "0",
            "-profile:v", profile,
            *rate, *gop_args, *keyframes,
        ]  # fmt: skip
    if spec.hw_encoder == "qsv":
        return [
            "-c:v", "h264_qsv",
            "-preset", _QSV_PRESETS[spec.preset],
            "-look_ahead", "0",
            "-forced_idr", "1",
            "-bf", "0",
            "-profile:v", profile,
            *rate, *gop_args, *keyframes,
        ]  # fmt: skip
    # zerolatency already means no B-frames and no lookahead; -forced-idr makes the forced
    # keyframes IDRs (closed GOPs) so every segment decodes on its own. With several rungs, FFmpeg
    # already runs each encoder on its own thread: x264's sliced threads on top only add
    # overhead (-4 % CPU for the 5-rung ladder in ops/bench/ladder.py) and worse compression.
    threads = ["-threads", "1"] if len(spec.rungs) > 1 else []
    # veryfast's hexagon motion search → diamond (what ultrafast/superfast use): ~6 % less ladder
    # CPU at equal PSNR (within 0.08 dB per rung on testsrc2, a textured pan and a rotating noisy
    # pan; ops/bench/ladder.py). Slower presets stay as x264 defines them: they are picked for
    # quality.
    diamond = spec.diamond_search and spec.preset in DIAMOND_SEARCH_PRESETS
    motion = ["-motion-est", "dia"] if diamond else []
    return [
        "-c:v", "libx264",
        *threads,
        "-preset", spec.preset,
        "-tune", "zerolatency",
        *motion,
        "-profile:v", profile,
        *rate, *gop_args,
        "-sc_threshold", "0",
        "-forced-idr", "1",
        "-a53cc", "0",
        *keyframes,
    ]  # fmt: skip


def build_ffmpeg_argv(spec: EncodeSpec) -> list[str]:
    """The full argv (argv[0] is the binary). Outputs are in rung order, then audio."""
    argv = [
        spec.ffmpeg_path,
        "-hide_banner",
        "-nostdin",
        # info keeps the "Input #0" / "Stream #0:…" block that stderr.py parses; -nostats stops
        # the \r status line from flooding stderr (progress comes from -progress instead).
        "-loglevel",
        "info",
        "-progress",
        spec.progress_url,
        "-nostats",
    ]
    if spec.hw_encoder == "vaapi":
        argv += ["-vaapi_device", VAAPI_DEVICE]
    argv += [*spec.input_args, "-i", spec.source_url]

    scaled = [(i, r) for i, r in enumerate(spec.rungs) if not r.is_passthrough]
    if scaled:
        argv += ["-filter_complex", _filter_complex(spec, scaled)]

    for index, (rung, fd) in enumerate(zip(spec.rungs, spec.video_fds, strict=True)):
        if rung.is_passthrough:
            # Keyframes are the source's own: segments of this rung follow the source GOP.
            argv += ["-map", "0:v:0", "-c:v", "copy"]
        else:
            argv += ["-map", f"[v{index}]", *_video_encoder_args(spec, rung)]
        argv += cmaf_output_args(spec.fragment_duration_s, video=True, fd=fd)

    if spec.include_audio:
        assert spec.audio_fd is not None  # checked in EncodeSpec.__post_init__
        argv += [
            "-map", "0:a:0",
            "-c:a", "aac",
            "-b:a", f"{spec.audio_bitrate_kbps}k",
            "-ac", "2",
            "-ar", "48000",
        ]  # fmt: skip
        audio_fragment_s = audio_fragment_duration_s(spec.fragment_duration_s)
        argv += cmaf_output_args(audio_fragment_s, video=False, fd=spec.audio_fd)
    return argv
