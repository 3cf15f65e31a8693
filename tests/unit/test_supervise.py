"""supervise(): every timer assertion runs on trio's autojump clock, in exact virtual seconds."""

from __future__ import annotations

import functools
import random
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
import trio

from supervisor.otp.backoff import Backoff
from supervisor.otp.errors import Shutdown, StallDetected
from supervisor.otp.policy import ExitKind, Intensity, RestartType
from supervisor.otp.supervise import (
    ChildExited,
    ChildFn,
    ChildRestarting,
    ChildStarted,
    GaveUp,
    OutcomeState,
    SupervisionOutcome,
    SupervisorEvent,
    supervise,
)

NO_JITTER = Backoff(initial_s=0.5, multiplier=2.0, max_s=30.0, jitter=0.0)
LOOSE = Intensity(max_restarts=100, period_s=60.0)


@dataclass
class Recorder:
    events: list[tuple[float, SupervisorEvent]] = field(default_factory=list)

    def __call__(self, event: SupervisorEvent) -> None:
        self.events.append((trio.current_time(), event))

    def times_of(self, kind: type[object]) -> list[float]:
        return [t for t, e in self.events if isinstance(e, kind)]

    def of(self, kind: type[object]) -> list[SupervisorEvent]:
        return [e for _, e in self.events if isinstance(e, kind)]


async def run_supervise(
    child: ChildFn,
    recorder: Callable[[SupervisorEvent], None],
    *,
    restart_type: RestartType = RestartType.PERMANENT,
    intensity: Intensity = LOOSE,
    backoff: Backoff = NO_JITTER,
    rng: random.Random | None = None,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> SupervisionOutcome:
    return await supervise(
        child,
        restart_type=restart_type,
        intensity=intensity,
        backoff=backoff,
        rng=rng or random.Random(0),
        on_event=recorder,
        task_status=task_status,
    )


def crash_then_serve(crashes: int, start_times: list[float]) -> ChildFn:
    """A child whose first `crashes` runs raise at once; later runs serve forever."""

    async def child(*, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        start_times.append(trio.current_time())
        if len(start_times) <= crashes:
            raise RuntimeError(f"boom {len(start_times)}")
        task_status.started()
        await trio.sleep_forever()

    return child


def crash_after(uptime_s: float, start_times: list[float]) -> ChildFn:
    """A child that reports ready, stays up `uptime_s`, then crashes; every run alike."""

    async def child(*, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        start_times.append(trio.current_time())
        task_status.started()
        await trio.sleep(uptime_s)
        raise RuntimeError(f"crash after {uptime_s} s up")

    return child


async def test_crashes_restart_on_the_backoff_schedule(autojump_clock: trio.abc.Clock) -> None:
    start_times: list[float] = []
    recorder = Recorder()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(run_supervise, crash_then_serve(3, start_times), recorder)
        await trio.sleep(10)
        nursery.cancel_scope.cancel()
    assert start_times == [0.0, 0.5, 1.5, 3.5]
    assert recorder.of(ChildRestarting) == [
        ChildRestarting(delay_s=0.5, attempt=1),
        ChildRestarting(delay_s=1.0, attempt=2),
        ChildRestarting(delay_s=2.0, attempt=3),
    ]
    assert recorder.of(ChildStarted) == [ChildStarted(restarts=3)]
    assert recorder.times_of(ChildStarted) == [3.5]
    # The cancellation at the end is a `shutdown` exit, reported like any other.
    assert recorder.events[-1] == (
        10.0,
        ChildExited(kind=ExitKind.SHUTDOWN, error=None, uptime_s=6.5),
    )


async def test_intensity_exceeded_fails_at_exact_time(autojump_clock: trio.abc.Clock) -> None:
    start_times: list[float] = []
    recorder = Recorder()
    outcome = await run_supervise(
        crash_then_serve(1_000, start_times),
        recorder,
        intensity=Intensity(max_restarts=3, period_s=60.0),
    )
    assert start_times == [0.0, 0.5, 1.5, 3.5]
    assert trio.current_time() == 3.5  # the 4th crash gives up at once, no backoff sleep
    assert outcome == SupervisionOutcome(
        state=OutcomeState.FAILED,
        last_error="RuntimeError: boom 4",
        reason="restart intensity exceeded: more than 3 restarts within 60 s",
        restarts=3,
    )
    assert recorder.of(GaveUp) == [
        GaveUp(reason=outcome.reason or "", last_error="RuntimeError: boom 4")
    ]
    assert [e.kind for e in recorder.of(ChildExited) if isinstance(e, ChildExited)] == [
        ExitKind.ABNORMAL
    ] * 4


async def test_transient_normal_return_is_not_restarted(autojump_clock: trio.abc.Clock) -> None:
    runs: list[float] = []

    async def child(*, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        runs.append(trio.current_time())
        task_status.started()
        await trio.sleep(5)

    recorder = Recorder()
    outcome = await run_supervise(child, recorder, restart_type=RestartType.TRANSIENT)
    assert outcome == SupervisionOutcome(
        state=OutcomeState.STOPPED, last_error=None, reason=None, restarts=0
    )
    assert runs == [0.0]
    assert trio.current_time() == 5.0
    assert [e for _, e in recorder.events] == [
        ChildStarted(restarts=0),
        ChildExited(kind=ExitKind.NORMAL, error=None, uptime_s=5.0),
    ]


async def test_transient_shutdown_is_not_restarted(autojump_clock: trio.abc.Clock) -> None:
    async def child(*, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        await trio.sleep(1)
        raise Shutdown("heartbeat lease expired")

    recorder = Recorder()
    outcome = await run_supervise(child, recorder, restart_type=RestartType.TRANSIENT)
    assert outcome.state is OutcomeState.STOPPED
    assert outcome.last_error is None
    assert recorder.of(ChildExited) == [
        ChildExited(kind=ExitKind.SHUTDOWN, error=None, uptime_s=1.0)
    ]


async def test_transient_crash_then_clean_end(autojump_clock: trio.abc.Clock) -> None:
    start_times: list[float] = []

    async def child(*, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        start_times.append(trio.current_time())
        task_status.started()
        await trio.sleep(1)
        if len(start_times) == 1:
            raise OSError("source went away")

    recorder = Recorder()
    outcome = await run_supervise(child, recorder, restart_type=RestartType.TRANSIENT)
    assert start_times == [0.0, 1.5]
    assert trio.current_time() == 2.5
    # The earlier crash stays visible as last_error even though the stream ended cleanly.
    assert outcome == SupervisionOutcome(
        state=OutcomeState.STOPPED, last_error="OSError: source went away", reason=None, restarts=1
    )


@pytest.mark.parametrize(
    ("crash", "state"), [(True, OutcomeState.FAILED), (False, OutcomeState.STOPPED)]
)
async def test_temporary_is_never_restarted(
    autojump_clock: trio.abc.Clock, crash: bool, state: OutcomeState
) -> None:
    runs: list[float] = []

    async def child(*, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        runs.append(trio.current_time())
        task_status.started()
        await trio.sleep(2)
        if crash:
            raise ValueError("bad frame")

    recorder = Recorder()
    outcome = await run_supervise(child, recorder, restart_type=RestartType.TEMPORARY)
    assert runs == [0.0]
    assert trio.current_time() == 2.0
    assert outcome.state is state
    assert outcome.restarts == 0
    assert recorder.of(ChildRestarting) == []
    if crash:
        assert outcome.last_error == "ValueError: bad frame"
        assert len(recorder.of(GaveUp)) == 1


async def test_permanent_is_restarted_after_normal_return(autojump_clock: trio.abc.Clock) -> None:
    runs: list[float] = []

    async def child(*, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        runs.append(trio.current_time())
        task_status.started()

    recorder = Recorder()
    outcome = await run_supervise(
        child, recorder, intensity=Intensity(max_restarts=2, period_s=10.0)
    )
    assert runs == [0.0, 0.5, 1.5]
    assert outcome.state is OutcomeState.FAILED
    assert outcome.last_error is None  # it never crashed; it just would not stay up
    assert outcome.restarts == 2


async def test_backoff_resets_after_long_uptime(autojump_clock: trio.abc.Clock) -> None:
    start_times: list[float] = []
    with trio.move_on_after(130):
        # 40 s up: longer than reset_after_s=30
        await run_supervise(crash_after(40, start_times), Recorder())
    # Every restart is the fast first step: 40 s up + 0.5 s pause each time.
    assert start_times == [0.0, 40.5, 81.0, 121.5]


async def test_backoff_grows_for_short_uptime(autojump_clock: trio.abc.Clock) -> None:
    start_times: list[float] = []
    with trio.move_on_after(40):
        # 10 s up: shorter than reset_after_s=30
        await run_supervise(crash_after(10, start_times), Recorder())
    assert start_times == [0.0, 10.5, 21.5, 33.5]


async def test_started_reported_when_first_child_is_ready(autojump_clock: trio.abc.Clock) -> None:
    async def child(*, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        await trio.sleep(2)  # e.g. spawning FFmpeg and reading the first init segment
        task_status.started()
        await trio.sleep_forever()

    recorder = Recorder()
    async with trio.open_nursery() as nursery:
        await nursery.start(functools.partial(run_supervise, child, recorder))
        assert trio.current_time() == 2.0
        assert [e for _, e in recorder.events] == [ChildStarted(restarts=0)]
        nursery.cancel_scope.cancel()


async def test_started_reported_when_first_child_fails(autojump_clock: trio.abc.Clock) -> None:
    start_times: list[float] = []
    recorder = Recorder()
    async with trio.open_nursery() as nursery:
        await nursery.start(
            functools.partial(run_supervise, crash_then_serve(2, start_times), recorder)
        )
        # The parent is unblocked at the first failure; restarts continue in the background.
        assert trio.current_time() == 0.0
        assert start_times == [0.0]
        await trio.sleep(1.6)
        assert start_times == [0.0, 0.5, 1.5]
        assert recorder.times_of(ChildStarted) == [1.5]
        nursery.cancel_scope.cancel()


async def test_cancellation_runs_shielded_cleanup_and_raises_cancelled(
    autojump_clock: trio.abc.Clock,
) -> None:
    cleaned_at: list[float] = []
    seen_cancelled: list[bool] = []

    async def child(*, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        try:
            await trio.sleep_forever()
        finally:
            with trio.CancelScope(shield=True):
                await trio.sleep(1.5)  # e.g. SIGTERM FFmpeg and wait for it
                cleaned_at.append(trio.current_time())

    recorder = Recorder()
    with trio.move_on_after(4) as scope:
        try:
            await run_supervise(child, recorder)
        except trio.Cancelled:
            seen_cancelled.append(True)
            raise
    assert scope.cancelled_caught
    assert seen_cancelled == [True]  # a plain Cancelled, not a group, reaches the caller
    assert cleaned_at == [5.5]
    assert trio.current_time() == 5.5
    assert recorder.events[-1] == (
        5.5,
        ChildExited(kind=ExitKind.SHUTDOWN, error=None, uptime_s=5.5),
    )
    assert recorder.of(ChildRestarting) == []


async def test_cancellation_during_backoff_sleep(autojump_clock: trio.abc.Clock) -> None:
    recorder = Recorder()
    with trio.move_on_after(0.25) as scope:
        await run_supervise(crash_then_serve(10, []), recorder)
    assert scope.cancelled_caught
    assert trio.current_time() == 0.25
    assert recorder.of(ChildRestarting) == [ChildRestarting(delay_s=0.5, attempt=1)]


async def test_errors_from_child_nursery_are_unwrapped(autojump_clock: trio.abc.Clock) -> None:
    async def watchdog() -> None:
        await trio.sleep(3)
        raise StallDetected("no media for 3 s", idle_s=3.0)

    async def child(*, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(watchdog)
            nursery.start_soon(trio.sleep_forever)
            task_status.started()

    recorder = Recorder()
    outcome = await run_supervise(child, recorder, restart_type=RestartType.TEMPORARY)
    assert outcome.last_error == "StallDetected: no media for 3 s"
    assert recorder.of(ChildExited) == [
        ChildExited(kind=ExitKind.ABNORMAL, error="StallDetected: no media for 3 s", uptime_s=3.0)
    ]


async def test_shutdown_inside_a_group_is_shutdown(autojump_clock: trio.abc.Clock) -> None:
    async def stopper() -> None:
        await trio.sleep(1)
        raise Shutdown("stale")

    async def child(*, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(stopper)
            task_status.started()

    recorder = Recorder()
    outcome = await run_supervise(child, recorder, restart_type=RestartType.TRANSIENT)
    assert outcome.state is OutcomeState.STOPPED
    assert recorder.of(ChildExited) == [
        ChildExited(kind=ExitKind.SHUTDOWN, error=None, uptime_s=1.0)
    ]


async def test_child_that_never_reports_ready_is_abnormal(autojump_clock: trio.abc.Clock) -> None:
    async def child(*, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        await trio.sleep(1)

    outcome = await run_supervise(child, Recorder(), restart_type=RestartType.TEMPORARY)
    assert outcome.state is OutcomeState.FAILED
    assert outcome.last_error is not None
    assert outcome.last_error.startswith("RuntimeError")
    assert "started" in outcome.last_error


async def test_jittered_delay_is_the_time_actually_slept(autojump_clock: trio.abc.Clock) -> None:
    start_times: list[float] = []
    recorder = Recorder()
    jittery = Backoff(initial_s=0.5, multiplier=2.0, max_s=30.0, jitter=0.2)
    with trio.move_on_after(10):
        await run_supervise(
            crash_then_serve(3, start_times), recorder, backoff=jittery, rng=random.Random(1)
        )
    delays = [e.delay_s for e in recorder.of(ChildRestarting) if isinstance(e, ChildRestarting)]
    assert len(delays) == 3
    for attempt, delay_s in enumerate(delays, start=1):
        assert jittery.floor_s(attempt) <= delay_s <= jittery.ceiling_s(attempt)
    assert start_times == [0.0, delays[0], delays[0] + delays[1], delays[0] + delays[1] + delays[2]]


async def test_on_event_bug_propagates_and_is_not_restarted(
    autojump_clock: trio.abc.Clock,
) -> None:
    runs: list[float] = []

    async def child(*, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        runs.append(trio.current_time())
        task_status.started()
        await trio.sleep_forever()

    def broken(event: SupervisorEvent) -> None:
        raise KeyError("registry bug")

    with pytest.raises(KeyError, match="registry bug"):
        await run_supervise(child, broken)
    assert runs == [0.0]


async def test_crash_never_reaches_a_sibling(autojump_clock: trio.abc.Clock) -> None:
    ticks: list[float] = []

    async def sibling() -> None:
        while True:
            await trio.sleep(1)
            ticks.append(trio.current_time())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(sibling)
        outcome = await run_supervise(
            crash_then_serve(1_000, []), Recorder(), intensity=Intensity(2, 60.0)
        )
        assert outcome.state is OutcomeState.FAILED
        await trio.sleep(3)
        nursery.cancel_scope.cancel()
    assert ticks == [1.0, 2.0, 3.0, 4.0]
