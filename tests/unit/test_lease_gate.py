"""The local lease deadline: counted from when the renewal was sent, short of the TTL by the
margin, never moved back, fenced at once when the registry refuses us (autojump clock)."""

from __future__ import annotations

import math

import trio
import trio.testing

from supervisor.cluster.gate import LeaseGate


async def test_valid_until_sent_plus_ttl_minus_margin(
    autojump_clock: trio.testing.MockClock,
) -> None:
    gate = LeaseGate(safety_margin_s=1.0)
    sent_at = trio.current_time()
    await trio.sleep(0.5)  # the renewal's round trip
    gate.renewed("cam", sent_at=sent_at, ttl_s=6.0)
    assert gate.valid("cam")
    assert gate.next_deadline() == sent_at + 5.0
    await trio.sleep_until(sent_at + 5.0 - 0.001)
    assert gate.valid("cam")
    assert not gate.fenced("cam")
    await trio.sleep_until(sent_at + 5.0)
    assert not gate.valid("cam")
    assert gate.fenced("cam")
    assert gate.expired() == ["cam"]
    assert gate.next_deadline() == math.inf


async def test_an_older_renewal_never_shortens_the_deadline(
    autojump_clock: trio.testing.MockClock,
) -> None:
    gate = LeaseGate(safety_margin_s=0.5)
    gate.renewed("cam", sent_at=10.0, ttl_s=3.0)
    gate.renewed("cam", sent_at=8.0, ttl_s=3.0)  # a slow reply to an earlier renewal
    assert gate.next_deadline() == 12.5


def test_lost_is_fenced_until_forgotten() -> None:
    async def main() -> None:
        gate = LeaseGate(safety_margin_s=0.5)
        gate.renewed("cam", sent_at=trio.current_time(), ttl_s=60.0)
        gate.lost("cam")
        assert gate.fenced("cam")
        assert gate.knows("cam")
        gate.forget("cam")
        assert not gate.fenced("cam")
        assert not gate.valid("cam")  # no lease held: never valid
        assert not gate.knows("cam")

    trio.run(main)
