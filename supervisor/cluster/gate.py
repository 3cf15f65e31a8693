"""The local side of a stream lease: until when this node may publish a stream it owns.

A lease renewal that succeeds proves the lease ran until ``ttl`` after the renewal reached the
registry — which was no earlier than when it was *sent*. So the node counts from the send time on
its own monotonic clock (trio's), minus a safety margin for clock-rate drift and the time to
stop an encoder: ``valid_until = sent_at + ttl − margin``. Past that without a newer renewal the
node cannot know it still owns the stream, and another node may claim it as soon as the lease
expires in the registry; so from then on it publishes nothing of it (the origin asks
:meth:`LeaseGate.valid` before and after every answer) and stops its FFmpeg.

Reading a deadline is synchronous: a process frozen past its lease (SIGSTOP) and thawed sees the
deadline passed on its first look, before any task that could publish has asked the registry.
"""

from __future__ import annotations

import math

import trio


class LeaseGate:
    """Per-stream publish deadlines on trio's clock."""

    def __init__(self, *, safety_margin_s: float) -> None:
        self.safety_margin_s = safety_margin_s
        self._valid_until: dict[str, float] = {}

    def renewed(self, stream_id: str, *, sent_at: float, ttl_s: float) -> None:
        """A renewal (or claim/register) sent at ``sent_at`` succeeded. Never moves back."""
        until = sent_at + ttl_s - self.safety_margin_s
        self._valid_until[stream_id] = max(until, self._valid_until.get(stream_id, -math.inf))

    def lost(self, stream_id: str) -> None:
        """The registry refused us (claimed elsewhere): fenced at once, until forgotten."""
        self._valid_until[stream_id] = -math.inf

    def forget(self, stream_id: str) -> None:
        """The stream no longer runs here."""
        self._valid_until.pop(stream_id, None)

    def knows(self, stream_id: str) -> bool:
        return stream_id in self._valid_until

    def valid(self, stream_id: str) -> bool:
        """May this node publish the stream now? (False for a stream it holds no lease of.)"""
        return trio.current_time() < self._valid_until.get(stream_id, -math.inf)

    def fenced(self, stream_id: str) -> bool:
        """It holds the stream but no longer a lease it knows valid."""
        return stream_id in self._valid_until and not self.valid(stream_id)

    def expired(self) -> list[str]:
        """Streams whose deadline passed (to stop), in id order."""
        now = trio.current_time()
        return sorted(s for s, until in self._valid_until.items() if until <= now)

    def next_deadline(self) -> float:
        """The earliest deadline still ahead (``inf`` when none)."""
        now = trio.current_time()
        ahead = [until for until in self._valid_until.values() if until > now]
        return min(ahead, default=math.inf)
