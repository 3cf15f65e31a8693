"""Refused disk writes degrade a stream instead of restarting it: the backlog and the retry loop."""

from __future__ import annotations

import errno
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

import trio

from actors.backlog import WriteBacklog
from actors.disk_writer import DiskWriter, describe_write_error

T = TypeVar("T")


def test_backlog_keeps_order_replaces_older_versions_and_prunes_left_segments() -> None:
    backlog = WriteBacklog()
    backlog.add([("240p/init_1.mp4", b"i"), ("240p/seg_3.m4s", b"3"), ("playlist.m3u8", b"p3")])
    backlog.add([("240p/seg_4.m4s", b"4"), ("playlist.m3u8", b"p4")])
    assert backlog.snapshot() == [
        ("240p/init_1.mp4", b"i"),
        ("240p/seg_3.m4s", b"3"),
        ("240p/seg_4.m4s", b"4"),
        ("playlist.m3u8", b"p4"),  # the newest version, after the segments it lists
    ]
    assert backlog.byte_count == 5
    assert backlog.prune(4) == 1  # seg_3 left the window: the janitor would delete it anyway
    assert backlog.prune(None) == 0
    assert [name for name, _ in backlog.snapshot()] == [
        "240p/init_1.mp4",
        "240p/seg_4.m4s",
        "playlist.m3u8",
    ]
    written = backlog.snapshot()
    backlog.add([("playlist.m3u8", b"p5")])  # a newer playlist arrived while writing
    backlog.discard_written(written)
    assert backlog.snapshot() == [("playlist.m3u8", b"p5")]


def test_describe_write_error() -> None:
    full = OSError(errno.ENOSPC, "No space left on device", "/out/s/240p/.seg_3.m4s.ab.tmp")
    assert describe_write_error(full) == "ENOSPC: No space left on device"
    assert describe_write_error(OSError("odd")) == "OSError: odd"


class FlakyDisk:
    """A disk that refuses writes (ENOSPC) while ``full``; records what it accepted."""

    def __init__(self) -> None:
        self.full = False
        self.files: dict[str, bytes] = {}
        self.attempts_at: list[float] = []

    def write_many(self, folder: Path, writes: Sequence[tuple[str, bytes]]) -> None:
        self.attempts_at.append(trio.current_time())
        if self.full:
            raise OSError(errno.ENOSPC, "No space left on device")
        self.files.update(writes)


async def inline(fn: Callable[..., T], *args: object) -> T:
    return fn(*args)  # no worker thread: the autojump clock stays exact


async def test_a_full_disk_degrades_retries_with_backoff_and_recovers(
    tmp_path: Path, autojump_clock: trio.abc.Clock
) -> None:
    disk = FlakyDisk()
    events: list[tuple[float, str]] = []
    writer = DiskWriter(
        tmp_path / "s",
        on_failed=lambda e: events.append((trio.current_time(), describe_write_error(e))),
        on_recovered=lambda: events.append((trio.current_time(), "recovered")),
        oldest_retained_number=lambda: 5,
        write_files=disk.write_many,
        run_blocking=inline,
    )
    async with trio.open_nursery() as nursery:
        nursery.start_soon(writer.run)
        await writer.write([("a/seg_4.m4s", b"4"), ("a/playlist.m3u8", b"p4")])
        assert disk.files == {"a/seg_4.m4s": b"4", "a/playlist.m3u8": b"p4"}
        disk.full = True
        await writer.write([("a/seg_5.m4s", b"5"), ("a/playlist.m3u8", b"p5")])
        assert writer.degraded
        assert events == [(0.0, "ENOSPC: No space left on device")]
        # while degraded nothing hammers the disk: new files queue behind the waiting ones
        await writer.write([("a/seg_6.m4s", b"6"), ("a/playlist.m3u8", b"p6")])
        assert len(disk.attempts_at) == 2
        await trio.sleep(10.0)
        # retries after 0.5, 1, 2, 4 s (then 8 s): at 0.5, 1.5, 3.5 and 7.5
        assert disk.attempts_at[2:] == [0.5, 1.5, 3.5, 7.5]
        disk.full = False
        await trio.sleep(10.0)
        assert disk.attempts_at[-1] == 15.5
        assert events[-1] == (15.5, "recovered")
        assert not writer.degraded
        assert len(writer.backlog) == 0
        # seg_4 was on disk already; seg_5 and seg_6 arrive in order with the newest playlist
        assert disk.files == {
            "a/seg_4.m4s": b"4",
            "a/seg_5.m4s": b"5",
            "a/seg_6.m4s": b"6",
            "a/playlist.m3u8": b"p6",
        }
        # healthy again: writes go straight to the disk
        await writer.write([("a/seg_7.m4s", b"7")])
        assert disk.attempts_at[-1] == 20.0
        assert disk.files["a/seg_7.m4s"] == b"7"
        # and a second outage is handled the same way
        disk.full = True
        await writer.write([("a/seg_8.m4s", b"8")])
        assert writer.degraded
        disk.full = False
        await trio.sleep(1.0)
        assert not writer.degraded
        assert events[-1] == (20.5, "recovered")
        nursery.cancel_scope.cancel()


async def test_an_uncreatable_stream_folder_degrades_until_it_can_be_made(
    tmp_path: Path, autojump_clock: trio.abc.Clock
) -> None:
    blocker = tmp_path / "s"
    blocker.write_bytes(b"a file where the stream folder goes")
    recovered = trio.Event()
    failures: list[str] = []
    writer = DiskWriter(
        blocker / "stream",
        on_failed=lambda e: failures.append(describe_write_error(e)),
        on_recovered=recovered.set,
        oldest_retained_number=lambda: None,
        run_blocking=inline,
    )
    async with trio.open_nursery() as nursery:
        nursery.start_soon(writer.run)
        await writer.ensure_folder()
        assert writer.degraded
        assert failures[0].startswith("ENOTDIR")
        await writer.write([("240p/init_1.mp4", b"init")])
        await trio.sleep(2.0)
        assert not recovered.is_set()
        blocker.unlink()
        await recovered.wait()
        assert trio.current_time() == 3.5  # retries at 0.5, 1.5, then 3.5
        assert (blocker / "stream" / "240p" / "init_1.mp4").read_bytes() == b"init"
        nursery.cancel_scope.cancel()
