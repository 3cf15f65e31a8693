import trio

from actors.lease import Lease


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
