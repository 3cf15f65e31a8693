"""The stream actor's timers under the autojump clock, with a fake (silent) FFmpeg.

Real-FFmpeg behaviour is proven in tests/integration; here only time matters: the start
watchdog, restart backoff, the heartbeat lease and the stop path, with exact virtual times.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import trio
import trio.testing

from actors.ffmpeg.sources import ValidatedSource
from actors.settings import StreamSettings
from actors.status import StreamSpec, StreamState
from actors.stream import StreamActor
from supervisor.otp.backoff import Backoff


class _UntilExit(trio.abc.ReceiveStream):
    """stdout/stderr of a process that prints nothing: EOF when it exits."""

    def __init__(self, exited: trio.Event) -> None:
        self._exited = exited

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        await self._exited.wait()
        return b""

    async def aclose(self) -> None:
        return None


class SilentProcess:
    """A fake FFmpeg that runs until killed and never produces media."""

    def __init__(self, pid: int) -> None:
        self._pid = pid
        self._code: int | None = None
        self._exited = trio.Event()
        self.stdout = _UntilExit(self._exited)
        self.stderr = _UntilExit(self._exited)

    @property
    def pid(self) -> int:
        return self._pid

    @property
    def returncode(self) -> int | None:
        return self._code

    async def wait(self) -> int:
        await self._exited.wait()
        assert self._code is not None
        return self._code

    def send_signal(self, sig: int) -> None:
        self._code = -sig
        self._exited.set()

    def kill(self) -> None:
        self.send_signal(9)

    async def aclose(self, reason: str = "") -> None:
        if self._code is None:
            self.send_signal(15)


class FakeSpawner:
    def __init__(self) -> None:
        self.spawned_at: list[float] = []
        self.processes: list[SilentProcess] = []

    def __call__(self, argv: Sequence[str], *, pass_fds: Sequence[int]) -> SilentProcess:
        assert argv[0] == "/fake/ffmpeg"
        for fd in pass_fds:  # the spawner owns the child's ends, like the real one
            os.close(fd)
        self.spawned_at.append(trio.current_time())
        process = SilentProcess(1000 + len(self.processes))
        self.processes.append(process)
        return process


def make_actor(tmp_path: Path, spawner: FakeSpawner, **overrides: object) -> StreamActor:
    options: dict[str, object] = {
        "segment_duration_s": 2.0,
        "stale_threshold_s": 30.0,
        "start_timeout_s": 20.0,
        "backoff": Backoff(initial_s=0.5, jitter=0.0),
        **overrides,
    }
    settings = StreamSettings(
        output_dir=tmp_path,
        ffmpeg_path="/fake/ffmpeg",
        **options,  # type: ignore[arg-type]
    )
    spec = StreamSpec(stream_id="timers", source_url="rtmp://example/live", qualities=("240p",))
    source = ValidatedSource(url="rtmp://example/live", scheme="rtmp", input_args=())
    # wall clock = virtual clock (+ an epoch), so state-change times are exact too
    return StreamActor(
        spec, source, settings, spawner=spawner, wall_clock=lambda: WALL + trio.current_time()
    )


WALL = 1_000_000_000.0


def state_times(actor: StreamActor) -> list[tuple[str, float]]:
    return [(state, at - WALL) for state, at in actor.status.history]


async def test_start_watchdog_backoff_and_stale_lease(
    tmp_path: Path, autojump_clock: trio.abc.Clock
) -> None:
    spawner = FakeSpawner()
    actor = make_actor(tmp_path, spawner)
    async with trio.open_nursery() as nursery:
        await nursery.start(actor.run)
        assert (tmp_path / "timers").is_dir()
        await actor.finished.wait()
    # watchdog checks every 0.5 s; the first check past 20 s of silence is at 20.5 s, then the
    # restart waits the first backoff step (0.5 s). The lease (30 s) ends the stream.
    assert spawner.spawned_at == [0.0, 21.0]
    assert state_times(actor) == [("starting", 0.0), ("restarting", 20.5), ("stale", 30.0)]
    assert actor.status.state is StreamState.STALE
    assert actor.status.restarts == 1
    assert "no media" in (actor.status.last_error or "")
    assert all(p.returncode is not None for p in spawner.processes)
    assert not (tmp_path / "timers").exists()


async def test_heartbeats_keep_the_stream_alive(
    tmp_path: Path, autojump_clock: trio.abc.Clock
) -> None:
    spawner = FakeSpawner()
    actor = make_actor(tmp_path, spawner, start_timeout_s=1000.0)
    async with trio.open_nursery() as nursery:
        await nursery.start(actor.run)
        for _ in range(5):
            await trio.sleep(20.0)
            actor.heartbeat()
        assert actor.status.state is StreamState.STARTING
        assert trio.current_time() == 100.0
        await actor.finished.wait()
    assert state_times(actor)[-1] == ("stale", 130.0)  # 30 s after the last heartbeat
    assert actor.status.state is StreamState.STALE
    assert spawner.spawned_at == [0.0]


async def test_stop_kills_the_encoder_and_removes_the_folder(
    tmp_path: Path, autojump_clock: trio.abc.Clock
) -> None:
    spawner = FakeSpawner()
    actor = make_actor(tmp_path, spawner, start_timeout_s=1000.0)
    async with trio.open_nursery() as nursery:
        await nursery.start(actor.run)
        await trio.sleep(5.0)
        actor.request_stop("deleted by client")
        await actor.finished.wait()
    # "stopped" follows the folder removal, which runs in a worker thread: the autojump clock may
    # skip ahead while that thread works, so only its order is exact
    times = state_times(actor)
    assert times[:2] == [("starting", 0.0), ("stopping", 5.0)]
    assert times[2][0] == "stopped"
    assert actor.status.state is StreamState.STOPPED
    assert spawner.processes[0].returncode == -15
    assert not (tmp_path / "timers").exists()


async def test_wait_until_releases_waiters_when_the_actor_ends(tmp_path: Path) -> None:
    actor = make_actor(tmp_path, FakeSpawner())
    released = trio.Event()

    async def waiter() -> None:
        await actor.gates.wait_until("never", lambda: False)
        released.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(waiter)
        await trio.testing.wait_all_tasks_blocked()
        actor.finished.set()
        actor._notify()
    assert released.is_set()


async def test_incarnations_are_never_reused_although_ids_are(tmp_path: Path) -> None:
    """Defect: the origin keyed its object cache on id(actor). CPython hands a freed object's
    address to the next one, so a re-created stream could be served an ended stream's bytes
    (immutable, for a year). The cache key is the incarnation, which never repeats."""
    seen_ids: set[int] = set()
    seen_incarnations: set[int] = set()
    reused_ids = 0
    for _ in range(300):
        actor = make_actor(tmp_path, FakeSpawner())
        reused_ids += id(actor) in seen_ids
        seen_ids.add(id(actor))
        assert actor.edge.incarnation == actor.incarnation
        assert actor.incarnation not in seen_incarnations
        seen_incarnations.add(actor.incarnation)
        del actor
    assert reused_ids > 0  # the hazard is real: addresses come back


async def test_a_source_refused_at_connect_time_kills_ffmpeg_and_fails_the_stream(
    tmp_path: Path, autojump_clock: trio.abc.Clock
) -> None:
    watched: list[int] = []

    async def source_watch(pid: int) -> str:
        watched.append(pid)
        await trio.sleep(0.25)  # the poll that sees the redirect
        return "FFmpeg connected to a refused address: source address 169.254.169.254 is ..."

    spawner = FakeSpawner()
    actor = make_actor(tmp_path, spawner, source_watch=source_watch)
    async with trio.open_nursery() as nursery:
        await nursery.start(actor.run)
        await trio.sleep(0.3)
        # SIGKILL at once, not the SIGTERM ladder, and the stream is ending
        assert spawner.processes[0].returncode == -9
        assert actor.status.last_error is not None
        await actor.finished.wait()
    assert watched == [1000]
    assert spawner.spawned_at == [0.0]  # never restarted: it would only go back
    # "failed" follows the folder removal in a worker thread (see the test above): order only
    assert [state for state, _ in state_times(actor)] == ["starting", "failed"]
    assert actor.status.last_error is not None
    assert actor.status.last_error.startswith("FFmpeg connected to a refused address")
    assert not (tmp_path / "timers").exists()
