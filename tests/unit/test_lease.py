import gc
import itertools

import trio

from actors.lease import WAIT_STEP_S, Lease


async def test_lease_expires_after_ttl_exactly(autojump_clock: trio.abc.Clock) -> None:
    lease = Lease(5.0)
    await lease.wait_expired()
    assert trio.current_time() == 5.0


async def test_renewal_pushes_expiry_a_full_ttl_from_now(autojump_clock: trio.abc.Clock) -> None:
    lease = Lease(5.0)
    expired_at: list[float] = []

    async def watch() -> None:
        await lease.wait_expired()
        expired_at.append(trio.current_time())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(watch)
        await trio.sleep(3.0)
        assert lease.renew() == 5.0
        await trio.sleep(4.0)
        assert lease.remaining_s() == 1.0
        lease.renew()
    assert expired_at == [12.0]


async def test_a_lease_cancelled_early_leaves_no_far_deadline_behind(
    autojump_clock: trio.abc.Clock,
) -> None:
    """Churn finding: each deleted stream's 600 s lease wait stayed in trio's deadline heap (with
    its cancel scope) until the 600 s passed, because shorter live deadlines kept the stale
    entry from reaching the heap's top; a thousand of them were kept through create/delete churn."""

    def cancel_scopes() -> int:
        return sum(1 for o in gc.get_objects() if isinstance(o, trio.CancelScope))

    async def short_deadlines_all_along() -> None:  # as a live service always has
        for _ in itertools.count():
            await trio.sleep(0.1)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(short_deadlines_all_along)
        gc.collect()
        before = cancel_scopes()
        for _ in range(50):
            with trio.move_on_after(0.5):  # the stream is deleted after half a second
                await Lease(600.0).wait_expired()
        await trio.sleep(2 * WAIT_STEP_S)
        gc.collect()
        assert cancel_scopes() - before <= 2
        nursery.cancel_scope.cancel()
