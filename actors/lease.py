"""The heartbeat lease: a stream lives while clients keep renewing it.

Timing uses trio's clock (``trio.current_time``) so tests run under ``autojump_clock`` with exact
virtual-time asserts; the wall-clock expiry shown to clients is derived from it at renewal.
"""

from __future__ import annotations

import trio


class Lease:
    """Expires ``ttl_s`` after the last renewal. ``wait_expired`` returns when it does."""

    def __init__(self, ttl_s: float) -> None:
        if ttl_s <= 0:
            raise ValueError("lease ttl must be positive")
        self.ttl_s = ttl_s
        self._expires_at = trio.current_time() + ttl_s
        self._renewed = trio.Event()

    def remaining_s(self) -> float:
        return max(0.0, self._expires_at - trio.current_time())

    def renew(self) -> float:
        """Extend the lease by a full ttl from now; returns the remaining seconds."""
        self._expires_at = trio.current_time() + self.ttl_s
        self._renewed.set()
        self._renewed = trio.Event()
        return self.ttl_s

    async def wait_expired(self) -> None:
        """Sleep until the lease runs out without a renewal in between."""
        while True:
            with trio.move_on_at(self._expires_at):
                await self._renewed.wait()
                continue
            if trio.current_time() >= self._expires_at:
                return
