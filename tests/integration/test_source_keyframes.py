"""Passthrough sources whose keyframes are off the segment grid: numbering by media time.

The published segments follow the source's own GOP (``"qualities": ["source"]`` copies the
video). Before the fix the renditions were numbered by how many segments each had cut: audio (cut
on the 2 s grid) ran ahead of video (cut at 2.5 s keyframes), segment n was different media in
each playlist, the commit barrier's backlog grew without end, and the playlists said
``EXTINF:2.500`` under ``EXT-X-TARGETDURATION:2``.
"""

from __future__ import annotations

import contextlib
import math
import re
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio

from actors.stream import StreamActor
from tests.integration.live import (
    ffmpeg_decode_errors,
    read_media,
    running_publisher,
    running_service,
    stable_documents,
    start_stream,
    wait_segments,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def media_playlist(text: str) -> tuple[int, list[tuple[int, float]]]:
    """(TARGETDURATION, [(number, EXTINF)]) of a plain media playlist."""
    target = int(re.search(r"#EXT-X-TARGETDURATION:(\d+)", text).group(1))  # type: ignore[union-attr]
    sequence = int(re.search(r"#EXT-X-MEDIA-SEQUENCE:(\d+)", text).group(1))  # type: ignore[union-attr]
    durations = [float(d) for d in re.findall(r"#EXTINF:([\d.]+),", text)]
    numbers = [int(n) for n in re.findall(r"^seg_(\d+)\.m4s$", text, re.MULTILINE)]
    assert numbers == list(range(sequence, sequence + len(numbers)))  # contiguous
    return target, list(zip(numbers, durations, strict=True))


KEYFRAME_DOCUMENTS = ("source/playlist.m3u8", "audio/playlist.m3u8", "manifest.mpd")


def check_playlists(
    folder: Path, documents: dict[str, str], actor: StreamActor
) -> dict[str, list[tuple[int, float]]]:
    by_rendition = {}
    targets = set()
    for rid in ("source", "audio"):
        target, segments = media_playlist(documents[f"{rid}/playlist.m3u8"])
        # RFC 8216 §4.3.3.1: each EXTINF rounded to the nearest integer (half up) ≤ TD
        assert all(math.floor(d + 0.5) <= target for _, d in segments), (rid, target, segments)
        by_rendition[rid] = segments
        targets.add(target)
    assert len(targets) == 1  # one target duration for the whole presentation
    # the same numbers in every rendition, and the same media behind them: the timeline says
    # so (memory) and the files agree (the tfdt of each segment's first fragment)
    assert [n for n, _ in by_rendition["source"]] == [n for n, _ in by_rendition["audio"]]
    timeline = actor.timeline
    assert timeline is not None
    for number, _ in by_rendition["source"]:
        starts = []
        for rid in ("source", "audio"):
            init, fragments = read_media(
                folder / rid / "init_1.mp4", folder / rid / f"seg_{number}.m4s"
            )
            assert init is not None
            starts.append(fragments[0].decode_time_ticks / init.track.timescale)
        # audio is cut at its fragment nearest the video cut: within half an AAC fragment
        # (0.25 s), a whole one (0.49 s) right after a video segment too short to hold an
        # audio fragment's midpoint (irregular keyframes 0.5 s apart across a grid line)
        assert abs(starts[0] - starts[1]) <= 0.5, (number, starts)
    # a segment or so per rendition waits at the barrier (more only while a pipe lags)
    assert timeline.waiting_segments() <= 2 * 4
    assert timeline.segments_abandoned_total == 0
    mpd = ET.fromstring(documents["manifest.mpd"])
    max_segment = float(mpd.get("maxSegmentDuration", "PT0S")[2:-1])
    assert max_segment >= max(d for segs in by_rendition.values() for _, d in segs) - 1e-3
    return by_rendition


@contextlib.asynccontextmanager
async def passthrough(
    tmp_path: Path, stream_id: str, keyframe_args: tuple[str, ...]
) -> AsyncIterator[tuple[Path, dict[str, str], dict[str, list[tuple[int, float]]]]]:
    """A passthrough stream (2 s grid) of a source with these keyframes, checked after 6
    segments; its folder stays until the block ends."""
    with running_publisher("http", width=426, height=240, keyframe_args=keyframe_args) as source:
        async with running_service(tmp_path, SEGMENT_DURATION="2", PLAYLIST_SIZE="5") as service:
            actor = await start_stream(service, stream_id, source.url, qualities=["source"])
            await wait_segments(actor, 6, timeout_s=60.0)
            folder = tmp_path / stream_id
            documents = await stable_documents(folder, list(KEYFRAME_DOCUMENTS))
            yield folder, documents, check_playlists(folder, documents, actor)


async def test_a_2_5_s_gop_on_a_2_s_grid_gives_2_5_s_segments_under_the_planned_target(
    tmp_path: Path,
) -> None:
    gop = ("-g", "75", "-keyint_min", "75", "-sc_threshold", "0")  # 2.5 s at 30 fps
    async with passthrough(tmp_path, "gop25", gop) as (folder, documents, segments):
        target, _ = media_playlist(documents["source/playlist.m3u8"])
        assert target == 4  # planned up front for a copied video: 2 × the segment duration
        video = [d for _, d in segments["source"]]
        assert video[1:] == [2.5] * (len(video) - 1)  # (the first may start mid-GOP)
        number = segments["source"][-1][0]
        for rid in ("source", "audio"):
            init = folder / rid / "init_1.mp4"
            assert ffmpeg_decode_errors(init, folder / rid / f"seg_{number}.m4s") == ""


async def test_irregular_source_keyframes_keep_renditions_in_step(tmp_path: Path) -> None:
    # keyframes 2.3 s, 2.3 s, then 0.5 s apart, again and again: some grid slots get a late
    # keyframe, some none, some two
    irregular = (
        "-g", "600", "-sc_threshold", "0",
        "-force_key_frames", "expr:gte(t,n_forced*1.7+mod(n_forced,3)*0.6)",
    )  # fmt: skip
    async with passthrough(tmp_path, "irregular", irregular) as (folder, _, segments):
        video = [d for _, d in segments["source"]]
        assert len(set(video)) > 1  # the segments really follow the irregular GOP
        _, fragments = read_media(
            folder / "source" / "init_1.mp4",
            folder / "source" / f"seg_{segments['source'][-1][0]}.m4s",
        )
        assert fragments[0].starts_with_sync


async def test_keyframes_6_s_apart_are_cut_at_the_target_and_it_never_changes(
    tmp_path: Path,
) -> None:
    """Review finding: EXT-X-TARGETDURATION grew once mid-stream to the longest segment seen (RFC
    8216bis §6.2.1: it MUST NOT change). It is planned up front (4 for a copied video on a 2 s
    grid); a source whose keyframes are 6 s apart gets a segment cut at 4 s without one, and
    the playlists stop claiming EXT-X-INDEPENDENT-SEGMENTS. Every playlist version on disk is
    read while the stream runs."""
    gop = ("-g", "180", "-keyint_min", "180", "-sc_threshold", "0")  # 6 s at 30 fps
    with running_publisher("http", width=426, height=240, keyframe_args=gop) as source:
        async with running_service(tmp_path, SEGMENT_DURATION="2", PLAYLIST_SIZE="5") as service:
            actor = await start_stream(service, "gop6", source.url, qualities=["source"])
            folder = tmp_path / "gop6"
            targets: set[int] = set()
            with trio.fail_after(90):
                while actor.timeline is None or actor.timeline.segments_committed_total < 7:
                    for rid in ("source", "audio"):
                        with contextlib.suppress(FileNotFoundError, AttributeError):
                            text = (folder / rid / "playlist.m3u8").read_text()
                            targets.add(media_playlist(text)[0])
                    await trio.sleep(0.1)
            documents = await stable_documents(folder, list(KEYFRAME_DOCUMENTS))
            segments = check_playlists(folder, documents, actor)
            assert targets == {4}, targets
            assert "#EXT-X-INDEPENDENT-SEGMENTS" not in documents["source/playlist.m3u8"]
            assert "#EXT-X-INDEPENDENT-SEGMENTS" not in (folder / "playlist.m3u8").read_text()
            video = segments["source"]
            assert max(d for _, d in video) <= 4.0
            starts_with_keyframe = {}
            for number, _ in video:
                _, fragments = read_media(
                    folder / "source" / "init_1.mp4", folder / "source" / f"seg_{number}.m4s"
                )
                starts_with_keyframe[number] = fragments[0].starts_with_sync
            # cut at the target without a keyframe, and at the next keyframe after it
            assert not all(starts_with_keyframe.values()), starts_with_keyframe
            assert any(starts_with_keyframe.values()), starts_with_keyframe
            # a cut without a keyframe still decodes as the sequence it belongs to
            first = next(n for n, key in starts_with_keyframe.items() if key)
            run = [first]
            while run[-1] + 1 in starts_with_keyframe and not starts_with_keyframe[run[-1] + 1]:
                run.append(run[-1] + 1)
            files = [folder / "source" / f"seg_{n}.m4s" for n in run]
            assert ffmpeg_decode_errors(folder / "source" / "init_1.mp4", *files) == ""
