"""Which port of ``SRT_PORT_RANGE`` each SRT push stream of this service holds.

An SRT stream listens on a port of its own (libsrt cannot route by ``streamid``). A port is
*held* from the moment it is picked — before the stream is registered, before its relay FFmpeg
binds it — until the stream ends, so two streams of ours never get one port, however their
creations interleave (the pick checks the port in a worker thread; another create may pick
meanwhile). A port another process binds between our check and libsrt's bind is the relay's to
notice (``actors.ingest.srt_relay``: FFmpeg says *Address already in use*); ``move`` then gives
the stream the next free port.
"""

from __future__ import annotations

import socket
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

import trio

from supervisor.errors import HlsdashError


class NoIngestPort(HlsdashError):  # noqa: N818
    def __init__(self, first: int, last: int) -> None:
        super().__init__(f"every SRT port of SRT_PORT_RANGE {first}-{last} is in use")


def udp_port_free(host: str, port: int) -> bool:
    """Blocking: can a UDP socket bind ``host:port`` right now?"""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


class SrtPorts:
    """The SRT ports this service's streams hold (at most one stream per port)."""

    def __init__(
        self,
        bind_host: str,
        port_range: tuple[int, int],
        *,
        port_free: Callable[[str, int], bool] = udp_port_free,
    ) -> None:
        """``port_free``: blocking check that nothing else has bound a port (run in a thread)."""
        self._host = bind_host
        self._first, self._last = port_range
        self._port_free = port_free
        self._holders: dict[int, str] = {}  # port → the stream holding it

    def holder(self, port: int) -> str | None:
        return self._holders.get(port)

    async def claim(self, stream_id: str, *, preferred: int | None = None) -> int:
        """Hold a free port for ``stream_id``: ``preferred`` first (a resumed stream's publishers
        know its old port), else the lowest free one.

        Raises:
            NoIngestPort: every port of the range is held or bound by someone else.
        """
        return await self._claim(stream_id, self._candidates(preferred))

    async def move(self, stream_id: str, taken: int) -> int:
        """``taken`` turned out bound by another process: hold the next free port after it
        (wrapping around), then give ``taken`` up.

        Raises:
            NoIngestPort: no other port is free (``taken`` stays held).
        """
        span = range(self._first, self._last + 1)
        after = [p for p in span if p > taken] + [p for p in span if p < taken]
        port = await self._claim(stream_id, after)
        self.release(stream_id, taken)
        return port

    def release(self, stream_id: str, port: int) -> None:
        """``stream_id`` no longer uses ``port`` (it ended, or moved). Idempotent."""
        if self._holders.get(port) == stream_id:
            del self._holders[port]

    def _candidates(self, preferred: int | None) -> list[int]:
        candidates = list(range(self._first, self._last + 1))
        if preferred is not None and self._first <= preferred <= self._last:
            candidates.remove(preferred)
            candidates.insert(0, preferred)
        return candidates

    async def _claim(self, stream_id: str, candidates: Iterable[int]) -> int:
        for port in candidates:
            if port in self._holders:
                continue
            free = await trio.to_thread.run_sync(self._port_free, self._host, port)
            # another claim may have taken it while we checked in the thread: ask again, then
            # hold it before the next await
            if free and port not in self._holders:
                self._holders[port] = stream_id
                return port
        raise NoIngestPort(self._first, self._last)


@dataclass(frozen=True, slots=True)
class StreamSrtPort:
    """One stream's side of ``SrtPorts`` (the actor's ``SrtPortHolder``)."""

    ports: SrtPorts
    stream_id: str
    on_moved: Callable[[int], Awaitable[None]]  # records the stream's new port (the registry)

    async def move(self, taken: int) -> int | None:
        try:
            port = await self.ports.move(self.stream_id, taken)
        except NoIngestPort:
            return None
        await self.on_moved(port)
        return port

    def release(self, port: int) -> None:
        self.ports.release(self.stream_id, port)
