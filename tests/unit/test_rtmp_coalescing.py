"""The RTMP listener's coalescing reader on a real loopback TCP connection (the kernel's
SO_RCVLOWAT does the waiting), under trio's autojump clock: a small piece is returned after exactly
COALESCE_WAIT_S, a burst of COALESCE_BYTES at once, end of stream as b"", and silence up to the
idle deadline is TooSlowError."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import trio

from supervisor.ingest.rtmp_server import COALESCE_BYTES, COALESCE_WAIT_S, CoalescingReader


@asynccontextmanager
async def connected() -> AsyncIterator[tuple[trio.SocketStream, trio.SocketStream]]:
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    client = await trio.open_tcp_stream("127.0.0.1", port)
    server = await listeners[0].accept()
    try:
        yield client, server
    finally:
        for closing in (client, server, *listeners):
            await closing.aclose()


async def test_a_small_piece_waits_the_coalescing_time(autojump_clock: trio.abc.Clock) -> None:
    async with connected() as (client, server):
        reader = CoalescingReader(server.socket)
        await client.send_all(b"x" * 100)
        started = trio.current_time()
        assert await reader.receive(started + 15) == b"x" * 100
        assert trio.current_time() == pytest.approx(started + COALESCE_WAIT_S)


async def test_a_burst_is_read_without_waiting(autojump_clock: trio.abc.Clock) -> None:
    async with connected() as (client, server):
        reader = CoalescingReader(server.socket)
        await client.send_all(b"y" * COALESCE_BYTES)
        started = trio.current_time()
        received = b""
        while len(received) < COALESCE_BYTES and trio.current_time() == started:
            received += await reader.receive(started + 15)
        assert received == b"y" * COALESCE_BYTES
        assert trio.current_time() == started


async def test_end_of_stream_and_silence(autojump_clock: trio.abc.Clock) -> None:
    async with connected() as (client, server):
        reader = CoalescingReader(server.socket)
        started = trio.current_time()
        with pytest.raises(trio.TooSlowError):
            await reader.receive(started + 15)
        assert trio.current_time() == pytest.approx(started + 15)
        await client.send_all(b"last")
        await client.send_eof()
        received = b""
        while chunk := await reader.receive(trio.current_time() + 15):
            received += chunk
        assert received == b"last"
