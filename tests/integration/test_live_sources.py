"""Real FFmpeg, real live sources (RTMP, MPEG-TS over HTTP, SRT) → ladder → CMAF → HLS + DASH on disk."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import psutil
import pytest

from actors.status import StreamState
from tests.integration.live import (
    ffmpeg_decode_errors,
    read_media,
    running_publisher,
    running_service,
    stable_documents,
    start_stream,
    wait_for,
    wait_segments,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MPD_NS = {"d": "urn:mpeg:dash:schema:mpd:2011"}
PLAYLIST_SIZE = 4
MARGIN = 1


def parse_media_playlist(text: str) -> dict[str, object]:
    """A strict reader for what we write: header tags first, then segment lines."""
    lines = text.strip().splitlines()
    assert lines[0] == "#EXTM3U"
    sequence = int(re.search(r"#EXT-X-MEDIA-SEQUENCE:(\d+)", text).group(1))  # type: ignore[union-attr]
    target = int(re.search(r"#EXT-X-TARGETDURATION:(\d+)", text).group(1))  # type: ignore[union-attr]
    durations = [float(d) for d in re.findall(r"#EXTINF:([\d.]+),", text)]
    uris = [line for line in lines if not line.startswith("#")]
    assert len(uris) == len(durations)
    numbers = [int(re.fullmatch(r"seg_(\d+)\.m4s", u).group(1)) for u in uris]  # type: ignore[union-attr]
    assert numbers == list(range(sequence, sequence + len(numbers)))
    assert all(round(d) <= target for d in durations)
    return {"sequence": sequence, "target": target, "durations": durations, "numbers": numbers}


async def check_stream_on_disk(folder: Path, video: list[str], audio: bool) -> None:
    renditions = [*video, *(["audio"] if audio else [])]
    master = (folder / "playlist.m3u8").read_text()
    for rid in video:
        assert f"{rid}/playlist.m3u8" in master
    if audio:
        assert 'TYPE=AUDIO,GROUP-ID="audio"' in master
        assert "mp4a.40.2" in master
    assert re.search(r"CODECS=\"avc1\.[0-9a-f]{6}", master)

    documents = await stable_documents(folder, [f"{rid}/playlist.m3u8" for rid in renditions])
    numbers_by_rendition = {}
    for rid in renditions:
        playlist = parse_media_playlist(documents[f"{rid}/playlist.m3u8"])
        numbers = playlist["numbers"]
        assert isinstance(numbers, list)
        assert len(numbers) == PLAYLIST_SIZE, f"{rid}: window {numbers}"
        durations = playlist["durations"]
        assert isinstance(durations, list)
        for duration in durations[:-1]:
            assert duration == pytest.approx(1.0, abs=0.3 if rid == "audio" else 0.05)
        numbers_by_rendition[rid] = numbers
        # init + a segment decode cleanly with FFmpeg
        init = folder / rid / "init_1.mp4"
        last = folder / rid / f"seg_{numbers[-1]}.m4s"
        assert ffmpeg_decode_errors(init, last) == ""
    # every rendition lists the same numbers
    assert len({tuple(n) for n in numbers_by_rendition.values()}) == 1

    # keyframes aligned: each video segment starts with a sync sample at the same media time
    number = numbers_by_rendition[video[0]][1]
    starts = set()
    for rid in video:
        _, fragments = read_media(folder / rid / "init_1.mp4", folder / rid / f"seg_{number}.m4s")
        assert fragments[0].starts_with_sync, rid
        assert sum(f.starts_with_sync for f in fragments) == 1, rid
        starts.add(fragments[0].decode_time_ticks)
    assert len(starts) == 1, f"video renditions not aligned: {starts}"

    # DASH from the same files: Number k in the MPD is seg_k.m4s
    mpd = ET.fromstring((folder / "manifest.mpd").read_text())
    assert mpd.get("type") == "dynamic"
    adaptation_sets = mpd.findall(".//d:AdaptationSet", MPD_NS)
    assert len(adaptation_sets) == (2 if audio else 1)
    reps = [r.get("id") for r in mpd.findall(".//d:Representation", MPD_NS)]
    assert reps == renditions
    template = adaptation_sets[0].find("d:SegmentTemplate", MPD_NS)
    assert template is not None
    assert template.get("media") == "$RepresentationID$/seg_$Number$.m4s"
    start_number = int(template.get("startNumber", "-1"))
    assert start_number == numbers_by_rendition[video[0]][0]
    first = folder / video[0] / f"seg_{start_number}.m4s"
    t = int(template.find("d:SegmentTimeline/d:S", MPD_NS).get("t"))  # type: ignore[union-attr]
    fragments = read_media(folder / video[0] / "init_1.mp4", first)[1]
    assert fragments[0].decode_time_ticks == t


@pytest.mark.parametrize("protocol", ["rtmp", "http", "srt"])
async def test_live_source_to_hls_and_dash(protocol: str, tmp_path: Path) -> None:
    with running_publisher(protocol) as publisher:
        async with running_service(tmp_path) as service:
            actor = await start_stream(
                service, f"it-{protocol}", publisher.url, qualities=["720p", "360p", "240p"]
            )
            needed = PLAYLIST_SIZE + MARGIN + 3
            await wait_segments(actor, needed, timeout_s=60)
            status = actor.status
            assert status.state is StreamState.LIVE
            # the 640x360 source is never upscaled: 720p is dropped and says so
            assert status.qualities == ("360p", "240p")
            assert status.dropped_qualities == ("720p",)
            assert status.has_audio
            assert status.source is not None
            assert (status.source.width, status.source.height) == (640, 360)
            assert status.encoder_fps is not None
            folder = tmp_path / f"it-{protocol}"
            # wait one janitor pass so segments that left the window are gone
            oldest_kept = actor.status.segments_produced - PLAYLIST_SIZE - MARGIN
            await wait_for(
                lambda: not (folder / "240p" / "seg_0.m4s").exists(), 5, "janitor to delete seg_0"
            )
            await check_stream_on_disk(folder, ["360p", "240p"], audio=True)
            on_disk = sorted(int(p.stem[4:]) for p in (folder / "240p").glob("seg_*.m4s"))
            assert on_disk[0] >= oldest_kept - 2
            assert len(on_disk) <= PLAYLIST_SIZE + MARGIN + 2
            pid = status.encoder_pid
            assert pid is not None
            await service.delete(actor.spec.stream_id)
            assert not folder.exists()
            assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == "zombie"


async def test_source_without_audio_still_works(tmp_path: Path) -> None:
    with running_publisher("rtmp", audio=False) as publisher:
        async with running_service(tmp_path) as service:
            actor = await start_stream(service, "silent", publisher.url, qualities=["240p"])
            await wait_segments(actor, 3)
            assert actor.status.has_audio is False
            assert actor.status.qualities == ("240p",)
            folder = tmp_path / "silent"
            assert not (folder / "audio").exists()
            master = (folder / "playlist.m3u8").read_text()
            assert "TYPE=AUDIO" not in master
            segments = sorted((folder / "240p").glob("seg_*.m4s"))
            assert ffmpeg_decode_errors(folder / "240p" / "init_1.mp4", segments[-1]) == ""


async def test_source_passthrough_rung_copies_the_video(tmp_path: Path) -> None:
    # the publisher's GOP is 30 frames = 1 s = SEGMENT_DURATION, so segments stay on the grid
    with running_publisher("rtmp", width=640, height=360) as publisher:
        async with running_service(tmp_path) as service:
            actor = await start_stream(service, "copy", publisher.url, qualities=["source"])
            await wait_segments(actor, 4)
            assert actor.status.qualities == ("source",)
            folder = tmp_path / "copy"
            playlist = parse_media_playlist((folder / "source" / "playlist.m3u8").read_text())
            durations = playlist["durations"]
            assert isinstance(durations, list)
            assert all(round(d) <= 1 for d in durations)
            master = (folder / "playlist.m3u8").read_text()
            assert "RESOLUTION=640x360" in master
            numbers = playlist["numbers"]
            assert isinstance(numbers, list)
            segment = folder / "source" / f"seg_{numbers[-1]}.m4s"
            assert ffmpeg_decode_errors(folder / "source" / "init_1.mp4", segment) == ""
            # no re-encode: the encoder ran far cheaper than a ladder (speed ≫ realtime is not
            # observable on a live source, but the published picture is the source's own size)
            _, fragments = read_media(folder / "source" / "init_1.mp4", segment)
            assert fragments[0].starts_with_sync
