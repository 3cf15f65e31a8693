"""A listener's connection cap: count what is open, refuse beyond the cap, say so in the log.

Shared by both ports: the origin's fast path counts in its own accept loop, the control API's
Hypercorn gets a :class:`CappedListener` (a ``trio.abc.Listener``) in front of the socket. A
refused connection gets a canned ``503`` if its socket takes it at once, then a close: a refusal
never waits on the client.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import structlog
import trio

from supervisor.http import http1, origin_core
from supervisor.http.origin_sockets import PrefixedStream, answer_and_close

log = structlog.get_logger(__name__)

_REFUSAL_LOG_EVERY_S = 10.0


def at_capacity_response(listener: str) -> bytes:
    """The whole answer written to a connection beyond the cap (its Date is when it was made:
    refusals are rare, and it is built once per listener)."""
    answer = origin_core.error_json(
        503,
        "at_capacity",
        f"the {listener} holds its maximum number of connections; retry shortly",
    )
    head = http1.encode_response_head(
        answer.status,
        (*answer.headers, ("retry-after", "1")),
        date=http1.HttpDate().at(time.time()),
        body_length=len(answer.body),
        keep_alive=False,
    )
    return head + answer.body


class ConnectionCap:
    """At most ``max_connections`` open at once; refusals logged at most every 10 s."""

    def __init__(self, *, listener: str, max_connections: int) -> None:
        self.listener = listener
        self.max_connections = max_connections
        self._refusal = at_capacity_response(listener)
        self.open_connections = 0
        self._refused_since_log = 0
        self._refusal_logged_at = -math.inf

    def admit(self, stream: trio.SocketStream) -> bool:
        """Count a newly accepted connection in, or refuse and close it (False)."""
        if self.open_connections >= self.max_connections:
            answer_and_close(stream, self._refusal)
            self.note_refusal("at_capacity")
            return False
        self.open_connections += 1
        return True

    def release(self) -> None:
        self.open_connections -= 1

    def note_refusal(self, reason: str) -> None:
        self._refused_since_log += 1
        now = trio.current_time()
        if now - self._refusal_logged_at >= _REFUSAL_LOG_EVERY_S:
            log.warning(
                "connections_refused",
                listener=self.listener,
                reason=reason,
                refused=self._refused_since_log,
                open_connections=self.open_connections,
                max_connections=self.max_connections,
            )
            self._refusal_logged_at = now
            self._refused_since_log = 0


class CountedStream(PrefixedStream):
    """A connection under a cap: writes with a progress deadline, released once when closed."""

    def __init__(
        self, stream: trio.SocketStream, *, send_timeout_s: float, release: Callable[[], None]
    ) -> None:
        super().__init__(stream, b"", send_timeout_s)
        self._release: Callable[[], None] | None = release

    async def aclose(self) -> None:
        release, self._release = self._release, None
        try:
            await super().aclose()
        finally:
            if release is not None:
                release()


class CappedListener(trio.abc.Listener[CountedStream]):
    """A socket listener that hands out at most ``cap.max_connections`` open connections.

    Accept errors (``EMFILE`` and the like) propagate: ``trio.serve_listeners`` waits and
    accepts again. Whoever serves a connection must ``aclose`` it (that frees its place).
    """

    def __init__(
        self, listener: trio.SocketListener, cap: ConnectionCap, *, send_timeout_s: float
    ) -> None:
        self._listener = listener
        self._cap = cap
        self._send_timeout_s = send_timeout_s

    async def accept(self) -> CountedStream:
        while True:
            stream = await self._listener.accept()
            if self._cap.admit(stream):
                return CountedStream(
                    stream, send_timeout_s=self._send_timeout_s, release=self._cap.release
                )

    async def aclose(self) -> None:
        await self._listener.aclose()
