"""RootSupervisor (simple_one_for_one): start/terminate/shutdown on trio's autojump clock."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import pytest
import trio
import trio.testing

from supervisor.otp.backoff import Backoff
from supervisor.otp.errors import DuplicateChild, TooManyChildren, UnknownChild
from supervisor.otp.policy import Intensity, RestartType
from supervisor.otp.supervise import (
    ChildFn,
    ChildStarted,
    OutcomeState,
    SupervisionOutcome,
    SupervisorEvent,
)
from supervisor.root import RootSupervisor

NO_JITTER = Backoff(jitter=0.0)


@dataclass
class Exits:
    seen: list[tuple[float, str, SupervisionOutcome]] = field(default_factory=list)

    def __call__(self, child_id: str, outcome: SupervisionOutcome) -> None:
        self.seen.append((trio.current_time(), child_id, outcome))


@asynccontextmanager
async def running_root(
    exits: Exits | None = None,
    *,
    max_children: int = 8,
    on_event: Callable[[str, SupervisorEvent], None] | None = None,
) -> AsyncIterator[RootSupervisor]:
    root = RootSupervisor(
        max_children=max_children,
        on_child_exit=exits,
        on_event=on_event,
        rng=random.Random(0),
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(root.run)
        yield root
        await root.shutdown(timeout_s=1.0)


def serving(
    *, ready_after_s: float = 0.0, cleanup_s: float = 0.0, log: list[str] | None = None
) -> ChildFn:
    """A child that is ready after `ready_after_s` and, when cancelled, cleans up (shielded)."""

    async def child(*, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        await trio.sleep(ready_after_s)
        task_status.started()
        try:
            await trio.sleep_forever()
        except trio.Cancelled as cancelled:
            if log is not None:
                log.append(f"cancelled: {cancelled.reason}")
            raise
        finally:
            with trio.CancelScope(shield=True):
                await trio.sleep(cleanup_s)
                if log is not None:
                    log.append(f"cleaned at {trio.current_time()}")

    return child


async def test_start_child_waits_for_ready(autojump_clock: trio.abc.Clock) -> None:
    async with running_root() as root:
        await root.start_child("a", serving(ready_after_s=1.5), restart_type=RestartType.TRANSIENT)
        assert trio.current_time() == 1.5
        await root.start_child("b", serving(), restart_type=RestartType.TRANSIENT)
        assert root.children() == ("a", "b")


async def test_duplicate_capacity_and_unknown(autojump_clock: trio.abc.Clock) -> None:
    async with running_root(max_children=2) as root:
        await root.start_child("a", serving(), restart_type=RestartType.TRANSIENT)
        with pytest.raises(DuplicateChild) as duplicate:
            await root.start_child("a", serving(), restart_type=RestartType.TRANSIENT)
        assert duplicate.value.child_id == "a"
        await root.start_child("b", serving(), restart_type=RestartType.TRANSIENT)
        with pytest.raises(TooManyChildren) as too_many:
            await root.start_child("c", serving(), restart_type=RestartType.TRANSIENT)
        assert too_many.value.max_children == 2
        with pytest.raises(UnknownChild):
            await root.terminate_child("zzz", reason="api delete")
        assert root.children() == ("a", "b")


async def test_start_child_requires_a_running_root() -> None:
    root = RootSupervisor()
    with pytest.raises(RuntimeError, match="not running"):
        await root.start_child("a", serving(), restart_type=RestartType.TRANSIENT)


async def test_terminate_child_runs_shielded_cleanup(autojump_clock: trio.abc.Clock) -> None:
    exits = Exits()
    log: list[str] = []
    async with running_root(exits) as root:
        await root.start_child(
            "a", serving(cleanup_s=3.0, log=log), restart_type=RestartType.PERMANENT
        )
        await trio.sleep(2)
        finished = await root.terminate_child("a", reason="api delete")
        assert finished is True
        assert trio.current_time() == 5.0
        assert log == ["cancelled: api delete", "cleaned at 5.0"]
        assert root.children() == ()
    assert exits.seen == [
        (
            5.0,
            "a",
            SupervisionOutcome(
                state=OutcomeState.TERMINATED, last_error=None, reason="api delete", restarts=0
            ),
        )
    ]


async def test_terminate_child_gives_up_waiting_after_timeout(
    autojump_clock: trio.abc.Clock,
) -> None:
    exits = Exits()
    async with running_root(exits) as root:
        await root.start_child("a", serving(cleanup_s=20.0), restart_type=RestartType.TRANSIENT)
        finished = await root.terminate_child("a", reason="api delete", timeout_s=10.0)
        assert finished is False
        assert trio.current_time() == 10.0
        assert root.children() == ("a",)  # still cleaning up; trio never abandons a task
        await trio.sleep(10.5)
        assert root.children() == ()
    assert [(t, cid, o.state) for t, cid, o in exits.seen] == [(20.0, "a", OutcomeState.TERMINATED)]


async def test_terminate_before_first_ready(autojump_clock: trio.abc.Clock) -> None:
    exits = Exits()
    async with running_root(exits) as root, trio.open_nursery() as nursery:

        async def start() -> None:
            await root.start_child(
                "slow",
                serving(ready_after_s=float("inf")),
                restart_type=RestartType.PERMANENT,
            )

        nursery.start_soon(start)
        await trio.testing.wait_all_tasks_blocked()
        assert root.children() == ("slow",)
        assert await root.terminate_child("slow", reason="api delete") is True
    # start_child returned (not raised) and the end was reported.
    assert [(cid, o.state, o.reason) for _, cid, o in exits.seen] == [
        ("slow", OutcomeState.TERMINATED, "api delete")
    ]


async def test_shutdown_stops_children_in_parallel(autojump_clock: trio.abc.Clock) -> None:
    exits = Exits()
    root = RootSupervisor(on_child_exit=exits, rng=random.Random(0))
    async with trio.open_nursery() as nursery:
        await nursery.start(root.run)
        for index, cleanup_s in enumerate((1.0, 3.0, 2.0)):
            await root.start_child(
                f"s{index}", serving(cleanup_s=cleanup_s), restart_type=RestartType.PERMANENT
            )
        assert await root.shutdown(timeout_s=10.0) == ()
        # The slowest cleanup, not the 6 s sum.
        assert trio.current_time() == 3.0
    # run() returned on its own once shutdown finished.
    assert trio.current_time() == 3.0
    assert sorted((t, cid) for t, cid, _ in exits.seen) == [(1.0, "s0"), (2.0, "s2"), (3.0, "s1")]
    assert {o.reason for _, _, o in exits.seen} == {"shutdown"}
    with pytest.raises(RuntimeError, match="not running"):
        await root.start_child("late", serving(), restart_type=RestartType.TRANSIENT)


async def test_shutdown_reports_stragglers(autojump_clock: trio.abc.Clock) -> None:
    root = RootSupervisor()
    async with trio.open_nursery() as nursery:
        await nursery.start(root.run)
        await root.start_child("quick", serving(cleanup_s=1.0), restart_type=RestartType.TRANSIENT)
        await root.start_child("slow", serving(cleanup_s=8.0), restart_type=RestartType.TRANSIENT)
        assert await root.shutdown(timeout_s=5.0) == ("slow",)
        assert trio.current_time() == 5.0
    assert trio.current_time() == 8.0  # run() still waited for the shielded cleanup


async def test_crashing_child_leaves_sibling_running(autojump_clock: trio.abc.Clock) -> None:
    exits = Exits()
    ticks: list[float] = []

    async def ticker(*, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        while True:
            await trio.sleep(1)
            ticks.append(trio.current_time())

    async def crasher(*, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        await trio.sleep(0.5)
        raise OSError("connection reset by peer")

    async with running_root(exits) as root:
        await root.start_child("good", ticker, restart_type=RestartType.PERMANENT)
        await root.start_child(
            "bad",
            crasher,
            restart_type=RestartType.PERMANENT,
            intensity=Intensity(max_restarts=1, period_s=60.0),
            backoff=NO_JITTER,
        )
        await trio.sleep(4.25)
        assert root.children() == ("good",)
        assert ticks == [1.0, 2.0, 3.0, 4.0]
    # bad: crash at 0.5, restart at 1.0, crash at 1.5 → intensity exceeded.
    assert exits.seen[0] == (
        1.5,
        "bad",
        SupervisionOutcome(
            state=OutcomeState.FAILED,
            last_error="OSError: connection reset by peer",
            reason="restart intensity exceeded: more than 1 restarts within 60 s",
            restarts=1,
        ),
    )
    assert [(cid, o.state) for _, cid, o in exits.seen[1:]] == [("good", OutcomeState.TERMINATED)]


async def test_bug_in_supervision_is_contained(autojump_clock: trio.abc.Clock) -> None:
    exits = Exits()

    def on_event(child_id: str, event: SupervisorEvent) -> None:
        if child_id == "cursed" and isinstance(event, ChildStarted):
            raise ZeroDivisionError("registry bug")

    async with running_root(exits, on_event=on_event) as root:
        await root.start_child("fine", serving(), restart_type=RestartType.PERMANENT)
        await root.start_child("cursed", serving(), restart_type=RestartType.PERMANENT)
        await trio.testing.wait_all_tasks_blocked()
        assert root.children() == ("fine",)
    first = exits.seen[0]
    assert first[1] == "cursed"
    assert first[2].state is OutcomeState.FAILED
    assert first[2].last_error == "ZeroDivisionError: registry bug"


async def test_bug_in_on_child_exit_is_contained(autojump_clock: trio.abc.Clock) -> None:
    def on_child_exit(child_id: str, outcome: SupervisionOutcome) -> None:
        raise RuntimeError("registry bug")

    root = RootSupervisor(on_child_exit=on_child_exit)
    async with trio.open_nursery() as nursery:
        await nursery.start(root.run)
        await root.start_child("a", serving(), restart_type=RestartType.TRANSIENT)
        await root.start_child("b", serving(), restart_type=RestartType.TRANSIENT)
        assert await root.terminate_child("a", reason="api delete") is True
        assert root.children() == ("b",)
        assert await root.shutdown(timeout_s=1.0) == ()
