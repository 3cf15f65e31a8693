"""Disk full, for real: a small tmpfs OUTPUT_DIR that the test fills, then frees.

Before: the write error ended the encoder run, so the stream restarted FFmpeg in a loop until it
was ``failed``. Now it turns ``degraded`` with a clear ``last_error``, keeps its FFmpeg and keeps
serving its live edge from memory, and goes back to ``live`` by itself once space returns (no new
POST), with the files it could not write then on disk. Needs root (``mount -t tmpfs``).
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from actors.status import StreamState
from tests.integration.http_helpers import running_front, stream_body, wait_live_segments
from tests.integration.live import wait_for

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root"),
]

TMPFS_SIZE = "12m"


@contextlib.contextmanager
def small_tmpfs(mount_point: Path) -> Iterator[Path]:
    mount_point.mkdir()
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={TMPFS_SIZE}", "tmpfs", str(mount_point)],
        check=True,
    )
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def fill(path: Path) -> int:
    """Append to ``path`` until the file system says ENOSPC; returns the bytes added."""
    added = 0
    chunk = b"\0" * 65536
    with open(path, "ab", buffering=0) as handle:
        while True:
            try:
                added += handle.write(chunk) or 0
            except OSError as error:
                if error.errno != errno.ENOSPC:
                    raise
                break
    small = b"\0" * 512  # the last few blocks
    with open(path, "ab", buffering=0) as handle, contextlib.suppress(OSError):
        while True:
            added += handle.write(small) or 0
    return added


async def keep_full(path: Path) -> None:
    """Like another process filling the disk: whatever the janitor frees is taken again."""
    while True:
        await trio.to_thread.run_sync(fill, path)
        await trio.sleep(0.02)


async def test_a_full_output_dir_degrades_the_stream_and_it_recovers_by_itself(
    tmp_path: Path,
) -> None:
    with small_tmpfs(tmp_path / "out") as output_dir:
        async with running_front(output_dir) as front:
            created = await front.api.post("/streams", json=stream_body("full"))
            assert created.status_code == 201, created.text
            await wait_live_segments(front, "full", 3)
            actor = front.service.get("full")
            pid = actor.status.encoder_pid
            assert actor.status.state is StreamState.LIVE

            filler = output_dir / "filler.bin"
            async with trio.open_nursery() as nursery:
                nursery.start_soon(keep_full, filler)
                await wait_for(lambda: actor.status.state is StreamState.DEGRADED, 15, "degraded")
                status = (await front.api.get("/streams/full")).json()
                assert status["state"] == "degraded"
                assert status["last_error"] == (
                    "cannot write to the output folder (ENOSPC: No space left on device): "
                    "serving from memory, retrying"
                )
                degraded_at = actor.status.segments_produced
                await wait_live_segments(front, "full", degraded_at + 3)
                # still the same FFmpeg, never restarted: the encoder is not the problem
                assert actor.status.encoder_pid == pid
                assert actor.status.restarts == 0
                assert actor.status.state is StreamState.DEGRADED
                # the live edge is served from memory: the newest segment is not on disk
                playlist = await front.origin.get("/full/240p/playlist.m3u8")
                assert playlist.status_code == 200
                numbers = [int(n) for n in re.findall(r"seg_(\d+)\.m4s", playlist.text)]
                newest = max(numbers)
                assert not (output_dir / "full" / "240p" / f"seg_{newest}.m4s").exists()
                segment = await front.origin.get(f"/full/240p/seg_{newest}.m4s")
                assert segment.status_code == 200
                assert len(segment.content) > 0
                metrics = (await front.api.get("/metrics")).text
                assert 'hlsdash_stream_state{state="degraded",stream_id="full"} 1.0' in metrics
                nursery.cancel_scope.cancel()

            filler.unlink()  # space returns
            await wait_for(lambda: actor.status.state is StreamState.LIVE, 20, "live again")
            assert actor.status.encoder_pid == pid
            assert actor.status.restarts == 0
            history = [state for state, _ in actor.status.history]
            assert history[-2:] == ["degraded", "live"]
            # what waited is on disk now: every segment the disk playlist lists exists
            await wait_live_segments(front, "full", actor.status.segments_produced + 1)
            on_disk = (output_dir / "full" / "240p" / "playlist.m3u8").read_text()
            listed = re.findall(r"^seg_\d+\.m4s$", on_disk, re.MULTILINE)
            assert listed
            for name in listed:
                assert (output_dir / "full" / "240p" / name).is_file(), name
            deleted = await front.api.delete("/streams/full")
            assert deleted.status_code == 200
