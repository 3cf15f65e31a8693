"""The heartbeat lease: a stream lives while clients keep renewing it.

Timing uses trio's clock (``trio.current_time``) so tests run under ``autojump_clock`` with exact
virtual-time asserts; the wall-clock expiry shown to clients is derived from it at renewal.
"""

from __future__ import annotations

import trio

# How far ahead one wait may look. A wait is a deadline in trio's heap, and trio drops the heap
# entry of a scope that ended only when that deadline passes (or at a prune once ~1,000 stale
# entries piled up): a stream deleted long before its 600 s lease left its cancel scope there for
# up to 600 s, and create/delete churn kept a thousand of them alive. Short steps bound that.
WAIT_STEP_S = 5.0


class Lease:
    """Expires ``ttl_s`` after the last renewal. ``wait_expired`` returns when it does."""

    def __init__(self, ttl_s: float) -> None:
        if ttl_s <= 0:
            raise ValueError("lease ttl must be positive")
        self.ttl_s = ttl_s
        self._expires_at = trio.current_time() + ttl_s

    def remaining_s(self) -> float:
        return max(0.0, self._expires_at - trio.current_time())

    def renew(self) -> float:
        """Extend the lease by a full ttl from now; returns the remaining seconds."""
        self._expires_at = trio.current_time() + self.ttl_s
        return self.ttl_s

    async def wait_expired(self) -> None:
        """Sleep until the lease runs out without a renewal in between (exactly then)."""
        while True:
            now = trio.current_time()
            if now >= self._expires_at:  # renewals move it while we sleep
                return
            await trio.sleep_until(min(self._expires_at, now + WAIT_STEP_S))
