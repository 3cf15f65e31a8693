"""EdgeGates: shared live-edge waits (one check per change per condition, dropped with their
last waiter, all released when the stream ends)."""

from __future__ import annotations

import trio
import trio.testing

from actors.edge.gates import EdgeGates


async def test_wait_until_shares_one_check_per_change_and_wakes_each_waiter_once() -> None:
    gates = EdgeGates()
    checks = 0
    reached = False

    def position_reached() -> bool:
        nonlocal checks
        checks += 1
        return reached

    woken: list[int] = []

    async def waiter(index: int) -> None:
        await gates.wait_until(("hls", "240p", 7, 0), position_reached)
        woken.append(index)

    async with trio.open_nursery() as nursery:
        for index in range(50):
            nursery.start_soon(waiter, index)
        await trio.testing.wait_all_tasks_blocked()
        assert checks == 50  # each asks once on arrival, before parking
        for _ in range(3):  # three live-edge changes that do not reach the position
            gates.changed()
        await trio.testing.wait_all_tasks_blocked()
        assert checks == 53  # one check per change, not one per waiter
        assert woken == []
        reached = True
        gates.changed()
    assert sorted(woken) == list(range(50))
    assert checks == 54
    # reached already: returns without parking
    await gates.wait_until(("hls", "240p", 7, 0), position_reached)


async def test_a_gate_nobody_waits_for_any_more_is_dropped(autojump_clock: trio.abc.Clock) -> None:
    gates = EdgeGates()
    checks = 0

    def never() -> bool:
        nonlocal checks
        checks += 1
        return False

    async def give_up_after(seconds: float) -> None:
        with trio.move_on_after(seconds):
            await gates.wait_until("part that never comes", never)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(give_up_after, 1.0)
        nursery.start_soon(give_up_after, 2.0)
        await trio.testing.wait_all_tasks_blocked()
        assert checks == 2
        await trio.sleep(1.5)  # one waiter left: the gate stays, still checked on changes
        assert trio.current_time() == 1.5
        gates.changed()
        assert checks == 3
    # both gave up: later changes no longer evaluate the condition
    gates.changed()
    assert checks == 3


async def test_close_releases_every_waiter_and_later_ones_at_once() -> None:
    gates = EdgeGates()
    released: list[str] = []

    async def waiter(name: str) -> None:
        await gates.wait_until(name, lambda: False)
        released.append(name)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(waiter, "a")
        nursery.start_soon(waiter, "b")
        await trio.testing.wait_all_tasks_blocked()
        assert gates.open_gates == 2
        gates.close()
    assert sorted(released) == ["a", "b"]
    assert gates.open_gates == 0
    await gates.wait_until("c", lambda: False)  # closed: returns at once


async def test_wait_changed_returns_the_new_version() -> None:
    gates = EdgeGates()
    assert gates.version == 0
    async with trio.open_nursery() as nursery:
        got: list[int] = []

        async def waiter() -> None:
            got.append(await gates.wait_changed(0))

        nursery.start_soon(waiter)
        await trio.testing.wait_all_tasks_blocked()
        gates.changed()
    assert got == [1]
