"""The stall watchdog watches every rendition on its own (pure rule + the actor under autojump)."""

from __future__ import annotations

import itertools
import os
from collections.abc import Sequence
from pathlib import Path

import trio

from actors.packager.bmff import split_stream
from actors.watchdog import Stall, find_stall
from tests.unit.test_stream_actor import SilentProcess, make_actor, state_times
from tests.unit.test_timeline import FIXTURES


def stall(media_at: dict[str, float], now: float, first: float | None = None) -> Stall | None:
    return find_stall(
        media_at=media_at,
        first_media_at=first if first is not None else min(media_at.values(), default=None),
        rendition_ids=("240p", "audio"),  # "extra" is no rendition of this run
        spawned_at=0.0,
        now=now,
        stall_s=4.0,
        start_timeout_s=20.0,
    )


def test_before_any_media_the_start_timeout_applies() -> None:
    assert stall({}, 20.0) is None
    assert stall({}, 20.5) == Stall("no media from the encoder 20 s after start", 20.5)


def test_one_quiet_rendition_is_a_stall_even_while_the_others_run() -> None:
    assert stall({"240p": 10.0, "audio": 6.0}, 10.0) is None  # 4 s: not more than stall_s
    assert stall({"240p": 10.5, "audio": 6.0}, 10.5) == Stall(
        "no media from rendition audio for 4.5 s while the others run", 4.5
    )
    # a rendition that never delivered is idle since the first delivery of any other
    assert stall({"240p": 10.5}, 10.5, first=7.0) is None
    assert stall({"240p": 11.5}, 11.5, first=7.0) == Stall(
        "no media from rendition audio for 4.5 s while the others run", 4.5
    )
    assert stall({"240p": 15.0, "audio": 15.0}, 15.0) is None
    assert stall({"240p": 10.0, "extra": 0.0}, 10.0) == Stall(
        "no media from rendition audio for 10.0 s while the others run", 10.0
    )


def test_all_quiet_is_the_encoder_stalling() -> None:
    assert stall({"240p": 5.0, "audio": 6.0}, 10.5) == Stall(
        "no media from the encoder for 4.5 s", 4.5
    )


class _FeedingProcess(SilentProcess):
    """A fake FFmpeg that writes real fMP4 to some of its rendition pipes, nothing to the rest."""

    def __init__(self, pid: int, fds: Sequence[int], feeding: Sequence[bool]) -> None:
        super().__init__(pid)
        self.fds = list(fds)
        self.feeding = list(feeding)

    async def feed(self) -> None:
        init, *fragments = split_stream((FIXTURES / "video.mp4").read_bytes())
        chunks = itertools.chain([init.data], itertools.cycle(f.data for f in fragments))
        try:
            while self.returncode is None:
                chunk = next(chunks)  # one init, then a fragment every 0.25 s, forever
                for fd, feeding in zip(self.fds, self.feeding, strict=True):
                    if feeding:
                        os.write(fd, chunk)
                await trio.sleep(0.25)
        finally:
            for fd in self.fds:
                os.close(fd)


class _OneQuietPipe:
    """Spawns processes whose last rendition pipe (audio) stays silent; the rest are fed."""

    def __init__(self, nursery: trio.Nursery) -> None:
        self._nursery = nursery
        self.spawned_at: list[float] = []
        self.processes: list[_FeedingProcess] = []

    def __call__(self, argv: Sequence[str], *, pass_fds: Sequence[int]) -> _FeedingProcess:
        self.spawned_at.append(trio.current_time())
        feeding = [True] * (len(pass_fds) - 1) + [False]
        process = _FeedingProcess(2000 + len(self.processes), pass_fds, feeding)
        self.processes.append(process)
        self._nursery.start_soon(process.feed)
        return process


async def test_a_single_stalled_rendition_restarts_the_encoder(
    tmp_path: Path, autojump_clock: trio.abc.Clock
) -> None:
    async with trio.open_nursery() as feeders:
        spawner = _OneQuietPipe(feeders)
        actor = make_actor(tmp_path, spawner, stale_threshold_s=1000.0)  # type: ignore[arg-type]
        async with trio.open_nursery() as nursery:
            await nursery.start(actor.run)
            await trio.sleep(10.0)
            actor.request_stop("test over")
        feeders.cancel_scope.cancel()
    # 240p delivers from t=0 on, audio never: audio is idle since 0. The check every 0.5 s first
    # sees more than WATCHDOG_SEGMENTS (2) × 2 s at 4.5 s; the restart waits the first backoff
    # step (0.5 s). The second run stalls the same way, 4.5 s after its start, and waits 1 s.
    assert spawner.spawned_at == [0.0, 5.0]
    assert state_times(actor)[:3] == [("starting", 0.0), ("restarting", 4.5), ("stopping", 10.0)]
    assert actor.status.restarts == 2  # the second at 9.5 s, whose backoff the stop cut short
    assert "no media from rendition audio for 4.5 s" in (actor.status.last_error or "")
    assert all(p.returncode is not None for p in spawner.processes)
