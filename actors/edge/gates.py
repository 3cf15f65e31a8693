"""Shared waits at the live edge: "return once this condition holds", checked when the edge moves.

The stream actor owns one ``EdgeGates`` and calls :meth:`EdgeGates.changed` whenever its live edge
moves (a part, a segment, an init, the end); requests at the edge wait through the live-edge
interface. Waiters passing the same key share one check and one Event: 2,000 players blocked on
the same LL-HLS part cost one predicate call per change and wake exactly once, instead of all
waking on every part of every rendition to re-check for themselves.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass

import trio

_CHANGED_SINCE = object()  # wait_changed's gate key, next to a version


@dataclass(slots=True)
class _Gate:
    reached: Callable[[], bool]
    event: trio.Event
    waiters: int = 0


class EdgeGates:
    """The live edge's version counter and the gates waiting on it."""

    def __init__(self) -> None:
        self.version = 0  # changes whenever anything at the live edge changes
        self._gates: dict[Hashable, _Gate] = {}
        self._closed = False

    @property
    def open_gates(self) -> int:
        return len(self._gates)

    def changed(self) -> None:
        """The edge moved: open every gate whose condition now holds."""
        self.version += 1
        if self._gates:
            for key, gate in list(self._gates.items()):
                if self._closed or gate.reached():
                    del self._gates[key]
                    gate.event.set()

    def close(self) -> None:
        """The stream ended: release every waiter now and every later one at once."""
        self._closed = True
        self.changed()

    async def wait_until(self, key: Hashable, reached: Callable[[], bool]) -> None:
        """Return once ``reached()`` is true (checked on every change) or the edge is closed."""
        if self._closed or reached():
            return
        gate = self._gates.get(key)
        if gate is None:
            gate = self._gates[key] = _Gate(reached, trio.Event())
        gate.waiters += 1
        try:
            await gate.event.wait()
        finally:
            # the last waiter to give up (timeout, cancel) takes the gate with it: a condition
            # nobody waits for any more is not checked on every change until the stream ends
            gate.waiters -= 1
            if gate.waiters == 0 and self._gates.get(key) is gate:
                del self._gates[key]

    async def wait_changed(self, version: int) -> int:
        """Return once the edge has moved past ``version`` (or is closed); the new version."""
        await self.wait_until((_CHANGED_SINCE, version), lambda: self.version > version)
        return self.version
