"""A live source joined mid-GOP: audio and video keep the source's offset, and the video's PDT
is its capture time (issue 10).

FFmpeg joining a live MPEG-TS source decodes audio from its first packet and video only from the
next keyframe. Before the fix every output's ``tfdt`` started at 0, so the video was placed up to
a source GOP early against its audio and against the clock it was captured by (PDT − capture
-0.4 … -0.9 s, different on every start). The source here is the glass-to-glass benchmark's
clocked source (frame counter in the pixels, capture time recorded) with a 2 s GOP.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest
import trio

from actors.ffmpeg.command import LADDER, EncodeSpec, build_ffmpeg_argv
from actors.ffmpeg.process import die_with_this_thread
from actors.packager.bmff import split_stream
from actors.packager.model import Fragment, InitSegment
from ops.bench.clockcode import read_png_counter
from ops.bench.clocked_source import ClockedSource, clocked_source
from ops.bench.common import FFMPEG
from tests.integration.live import (
    ffmpeg_decode_errors,
    read_media,
    running_service,
    start_stream,
    wait_segments,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

FPS = 30
GOP_S = 2
AUDIO_FRAGMENT_S = 23 * 1024 / 48_000  # the audio fragment for 0.5 s parts
# The first audio packet FFmpeg gets after joining: the source's TS muxer packs up to ~0.25 s
# of AAC in one PES and a client that joins mid-PES starts at the next one.
JOIN_TOLERANCE_S = 0.35
# PDT is anchored to the moment the first fragment of the run reached the packager, so it trails
# capture by the pipeline's delay up to then (source encoder and relay, our decode and encode, a
# fragment flushed): positive, and well under this on a loaded 2-core machine.
PIPELINE_DELAY_MAX_S = 0.75


def first_frame_counter(*files: Path) -> int | None:
    """The clock counter in the first decoded video frame of these files, concatenated."""
    result = subprocess.run(
        [
            *(FFMPEG, "-hide_banner", "-loglevel", "error", "-i", "pipe:0"),
            *("-frames:v", "1", "-f", "image2pipe", "-c:v", "png", "pipe:1"),
        ],
        input=b"".join(f.read_bytes() for f in files),
        capture_output=True,
        timeout=60,
        check=True,
    )
    return read_png_counter(result.stdout)


def wait_mid_gop(source: ClockedSource) -> None:
    """Until the source is a quarter into a GOP (after its first): a join ~1.5 s before the
    next keyframe."""
    gop_frames = FPS * GOP_S
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        counter = source.newest_counter
        if counter is not None and counter > gop_frames and counter % gop_frames == 15:
            return
        time.sleep(0.005)
    raise AssertionError("the clocked source does not run")


def first_fragment(path: Path) -> tuple[InitSegment, Fragment]:
    records = split_stream(path.read_bytes())
    init, fragment = records[0], records[1]
    assert isinstance(init, InitSegment)
    assert isinstance(fragment, Fragment)
    return init, fragment


def test_the_encoder_keeps_the_join_offset_between_its_audio_and_video(tmp_path: Path) -> None:
    video_path, audio_path = tmp_path / "video.mp4", tmp_path / "audio.mp4"
    with clocked_source(width=640, height=360, fps=FPS, gop_s=GOP_S) as source:
        wait_mid_gop(source)
        video_fd = os.open(video_path, os.O_WRONLY | os.O_CREAT)
        audio_fd = os.open(audio_path, os.O_WRONLY | os.O_CREAT)
        spec = EncodeSpec(
            ffmpeg_path=FFMPEG,
            source_url=source.url,
            input_args=(),
            rungs=(LADDER["360p"],),
            include_audio=True,
            segment_duration_s=2.0,
            fragment_duration_s=0.5,
            video_fds=(video_fd,),
            audio_fd=audio_fd,
            preset="ultrafast",
            frame_rate=FPS,
        )
        process = subprocess.Popen(
            build_ffmpeg_argv(spec),
            pass_fds=(video_fd, audio_fd),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=die_with_this_thread(),  # noqa: PLW1509 - prctl only
        )
        try:
            deadline = time.monotonic() + 30
            while video_path.stat().st_size < 20_000 and time.monotonic() < deadline:
                time.sleep(0.1)
        finally:
            process.terminate()
            process.wait(timeout=10)
            os.close(video_fd)
            os.close(audio_fd)
        join_counter = source.join_counters[-1]
    assert join_counter is not None
    video_init, video = first_fragment(video_path)
    audio_init, audio = first_fragment(audio_path)
    counter = first_frame_counter(video_path)
    assert counter is not None
    join_offset_s = (counter - join_counter) / FPS
    assert join_offset_s > 1.0  # joined mid-GOP: the first picture is the next keyframe
    offset_s = (
        video.decode_time_ticks / video_init.track.timescale
        - audio.decode_time_ticks / audio_init.track.timescale
    )
    print(f"join offset {join_offset_s:.3f} s, video tfdt - audio tfdt {offset_s:.3f} s")
    assert offset_s == pytest.approx(join_offset_s, abs=JOIN_TOLERANCE_S)


async def test_the_first_video_frame_is_published_at_its_capture_time(tmp_path: Path) -> None:
    with clocked_source(width=640, height=360, fps=FPS, gop_s=GOP_S) as source:
        await trio.to_thread.run_sync(wait_mid_gop, source)
        async with running_service(tmp_path, SEGMENT_DURATION="2", PART_TARGET="0.5") as service:
            actor = await start_stream(service, "avsync", source.url, qualities=["360p"])
            await wait_segments(actor, 2, timeout_s=60.0)
            timeline = actor.timeline
            assert timeline is not None
            video = timeline.edge("360p").committed[0]
            audio = timeline.edge("audio").committed[0]
            # read while the stream runs: stopping it removes its folder
            folder = tmp_path / "avsync"
            files = {
                rid: (folder / rid / "init_1.mp4", folder / rid / f"seg_{video.number}.m4s")
                for rid in ("360p", "audio")
            }
            for rid, (init, segment) in files.items():
                assert ffmpeg_decode_errors(init, segment) == "", rid
            # what is published is what the timeline says
            _, video_fragments = read_media(*files["360p"])
            assert video_fragments[0].decode_time_ticks == video.start_ticks
            counter = first_frame_counter(*files["360p"])
        assert counter is not None
        captured_unix_s = source.captured_at(counter)
        assert captured_unix_s is not None
    pdt_minus_capture_s = video.program_date_time_unix_s - captured_unix_s
    print(
        f"PDT - capture {pdt_minus_capture_s:+.3f} s; "
        f"video starts {video.start_s - audio.start_s:.3f} s after audio"
    )
    assert -2 / FPS <= pdt_minus_capture_s <= PIPELINE_DELAY_MAX_S
    # the audio from before the first picture is not published: the renditions' first segments
    # start together, the audio at most one fragment earlier (it cannot cut mid-fragment)
    assert 0 <= video.start_s - audio.start_s < AUDIO_FRAGMENT_S
