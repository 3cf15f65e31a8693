"""Faults with real processes: killed, frozen and vanished encoders and sources; leases; orphans."""

from __future__ import annotations

import os
import re
import signal
import xml.etree.ElementTree as ET
from pathlib import Path

import psutil
import pytest
import trio

from actors.janitor import create_stream_folder, is_marked
from actors.status import StreamState
from tests.integration.live import (
    LAVFI_SOURCE,
    ffmpeg_decode_errors,
    running_publisher,
    running_service,
    start_stream,
    wait_for,
    wait_segments,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def playlist_numbers(text: str) -> list[int]:
    return [int(n) for n in re.findall(r"^seg_(\d+)\.m4s$", text, re.MULTILINE)]


async def test_sigkill_of_ffmpeg_restarts_and_numbering_continues(tmp_path: Path) -> None:
    async with running_service(tmp_path, PLAYLIST_SIZE="10") as service:
        actor = await start_stream(service, "killed", LAVFI_SOURCE, qualities=["240p"])
        await wait_segments(actor, 3)
        first_pid = actor.status.encoder_pid
        assert first_pid is not None
        before = actor.status.segments_produced
        os.kill(first_pid, signal.SIGKILL)
        await wait_for(lambda: actor.status.restarts == 1, 10, "a restart")
        await wait_for(lambda: actor.status.segments_produced >= before + 3, 30, "new segments")
        assert actor.status.state is StreamState.LIVE
        assert actor.status.encoder_pid not in (None, first_pid)
        assert actor.status.epoch == 2
        assert gone(first_pid)
        assert actor.status.last_error is not None
        assert "SIGKILL" in actor.status.last_error or "-9" in actor.status.last_error

        folder = tmp_path / "killed"
        text = (folder / "240p" / "playlist.m3u8").read_text()
        numbers = playlist_numbers(text)
        assert numbers == list(range(numbers[0], numbers[0] + len(numbers)))  # no reuse, no gap
        assert text.count("#EXT-X-DISCONTINUITY\n") == 1
        # the discontinuity sits right before the first segment of the new run
        lines = text.splitlines()
        disc = lines.index("#EXT-X-DISCONTINUITY")
        after = next(line for line in lines[disc:] if line.startswith("seg_"))
        before_disc = [line for line in lines[:disc] if line.startswith("seg_")]
        assert int(after[4:-4]) == int(before_disc[-1][4:-4]) + 1
        # segments of both runs decode with the (unchanged) init segment
        assert ffmpeg_decode_errors(folder / "240p" / "init_1.mp4", folder / "240p" / after) == ""
        # DASH stays one valid, monotonic timeline: a Period per encoder run, the second one
        # starting where the first run's media ended (README: *Push ingest*, reconnects)
        mpd = ET.fromstring((folder / "manifest.mpd").read_text())
        ns = {"d": "urn:mpeg:dash:schema:mpd:2011"}
        periods = mpd.findall("d:Period", ns)
        assert len(periods) == 2
        times = []
        for period in periods:
            template = period.find(".//d:SegmentTemplate", ns)
            assert template is not None
            t = 0
            for s in template.findall("d:SegmentTimeline/d:S", ns):
                t = int(s.get("t", t))
                for _ in range(int(s.get("r", "0")) + 1):
                    times.append(t)
                    t += int(s.get("d", "0"))
        assert times == sorted(times)
        assert len(set(times)) == len(times)


async def test_sigstop_is_caught_by_the_watchdog(tmp_path: Path) -> None:
    async with running_service(tmp_path, WATCHDOG_SEGMENTS="2") as service:
        actor = await start_stream(service, "frozen", LAVFI_SOURCE, qualities=["240p"])
        await wait_segments(actor, 2)
        pid = actor.status.encoder_pid
        assert pid is not None
        started = trio.current_time()
        os.kill(pid, signal.SIGSTOP)
        try:
            await wait_for(lambda: actor.status.restarts >= 1, 15, "the watchdog to restart it")
        finally:
            if not gone(pid):
                os.kill(pid, signal.SIGCONT)
        waited = trio.current_time() - started
        assert waited >= 1.5  # not before ~2 segment durations of silence
        assert "no media" in (actor.status.last_error or "")
        await wait_for(lambda: gone(pid), 10, "the frozen FFmpeg to be killed")
        before = actor.status.segments_produced
        await wait_for(lambda: actor.status.segments_produced > before + 1, 30, "recovery")
        assert actor.status.state is StreamState.LIVE


async def test_source_killed_and_brought_back_resumes(tmp_path: Path) -> None:
    with running_publisher("rtmp", width=426, height=240) as publisher:
        async with running_service(tmp_path) as service:
            actor = await start_stream(service, "flaky", publisher.url, qualities=["240p"])
            await wait_segments(actor, 2)
            publisher.stop()
            await wait_for(
                lambda: actor.status.state is StreamState.RESTARTING, 30, "the loss to be seen"
            )
            await trio.sleep(1.0)
            produced = actor.status.segments_produced
            publisher.start()
            await wait_for(
                lambda: actor.status.segments_produced >= produced + 2, 60, "the stream to resume"
            )
            assert actor.status.state is StreamState.LIVE
            assert actor.status.restarts >= 1


async def test_unreachable_source_retries_with_backoff_and_says_why(tmp_path: Path) -> None:
    async with running_service(tmp_path) as service:
        # nothing listens on port 9: connection refused at once
        actor = await start_stream(service, "nowhere", "rtmp://127.0.0.1:9/live/x")
        await wait_for(lambda: actor.status.restarts >= 2, 20, "two retries")
        assert actor.status.state in {StreamState.RESTARTING, StreamState.STARTING}
        assert "refused" in (actor.status.last_error or "")
        assert actor.status.segments_produced == 0


async def test_missed_heartbeats_make_a_stream_stale_and_remove_it(tmp_path: Path) -> None:
    async with running_service(tmp_path, STALE_THRESHOLD="4") as service:
        forgotten = await start_stream(service, "forgotten", LAVFI_SOURCE, qualities=["240p"])
        kept = await start_stream(service, "kept", LAVFI_SOURCE, qualities=["240p"])
        await wait_segments(forgotten, 1)
        pid = forgotten.status.encoder_pid
        assert pid is not None
        for _ in range(8):
            service.heartbeat("kept")
            await trio.sleep(1)
        assert forgotten.status.state is StreamState.STALE
        assert not (tmp_path / "forgotten").exists()
        assert gone(pid)
        assert kept.status.state is StreamState.LIVE
        assert (tmp_path / "kept" / "playlist.m3u8").exists()


async def test_orphaned_folders_are_swept_at_start(tmp_path: Path) -> None:
    orphan = tmp_path / "left-over"
    create_stream_folder(orphan)
    (orphan / "240p").mkdir()
    (orphan / "240p" / "seg_1.m4s").write_bytes(b"x")
    unrelated = tmp_path / "not a stream"  # not a valid stream id: never ours to delete
    unrelated.mkdir()
    # stream-id shaped but never made by the service (OUTPUT_DIR pointed at a web root)
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "cat.jpg").write_bytes(b"jpeg")
    (tmp_path / "cam9" / "240p").mkdir(parents=True)
    async with running_service(tmp_path) as service:
        assert not orphan.exists()
        assert unrelated.exists()
        assert (tmp_path / "photos" / "cat.jpg").read_bytes() == b"jpeg"
        assert (tmp_path / "cam9" / "240p").is_dir()
        # a stream's folder carries the marker from the start, so a crash's leftovers are swept
        live = await start_stream(service, "live", LAVFI_SOURCE, qualities=["240p"])
        await wait_segments(live, 1)
        assert is_marked(tmp_path / "live")
        create_stream_folder(orphan)
        removed = await service.sweep_orphans()
        assert removed == ["left-over"]
        assert sorted(os.listdir(tmp_path)) == [
            "cam9",
            "live",
            "not a stream",
            "photos",
        ]
