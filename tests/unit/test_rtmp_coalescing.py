"""The RTMP listener's coalescing reader on a real loopback TCP connection (the kernel's
SO_RCVLOWAT does the waiting), under trio's autojump clock, exact virtual times: a message in
progress is read once it is complete; between messages, nothing is held back until the
publisher's rate is known, then COALESCE_S worth of it is waited for; end of stream is b"",
silence up to the idle deadline is TooSlowError."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import trio

from supervisor.ingest.rtmp_server import COALESCE_S, RATE_WINDOW_S, CoalescingReader


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


async def send_later(client: trio.SocketStream, delay_s: float, data: bytes) -> None:
    await trio.sleep(delay_s)
    await client.send_all(data)


async def read_exactly(reader: CoalescingReader, count: int, wanted: int) -> bytes:
    data = b""
    while len(data) < count:
        data += await reader.receive(trio.current_time() + 15, wanted - len(data))
    return data


async def test_a_message_in_progress_is_read_once_complete(
    autojump_clock: trio.abc.Clock,
) -> None:
    async with connected() as (client, server), trio.open_nursery() as nursery:
        reader = CoalescingReader(server.socket)
        started = trio.current_time()
        await client.send_all(b"a" * 500)
        nursery.start_soon(send_later, client, 1.0, b"b" * 500)
        data = await reader.receive(started + 15, 1000)
        assert data == b"a" * 500 + b"b" * 500  # one wake-up for both halves
        assert trio.current_time() == pytest.approx(started + 1.0)


async def test_between_messages_the_rate_sets_how_much_to_wait_for(
    autojump_clock: trio.abc.Clock,
) -> None:
    async with connected() as (client, server):
        reader = CoalescingReader(server.socket)
        started = trio.current_time()
        # the rate is not known yet: the first byte is read at once
        await client.send_all(b"x")
        assert await reader.receive(started + 15, 0) == b"x"
        await trio.sleep(RATE_WINDOW_S)
        await client.send_all(b"y" * 39_999)  # 40 kB in the first second
        assert await read_exactly(reader, 39_999, 0) == b"y" * 39_999
        floor = int(40_000 / RATE_WINDOW_S * COALESCE_S)
        # a small message now waits for the next one (up to the idle deadline)
        await client.send_all(b"z" * 10)
        waited_from = trio.current_time()
        with pytest.raises(trio.TooSlowError):
            await reader.receive(waited_from + 2, 0)
        assert trio.current_time() == pytest.approx(waited_from + 2)
        await client.send_all(b"w" * (floor - 10))
        assert await reader.receive(trio.current_time() + 15, 0) == b"z" * 10 + b"w" * (floor - 10)


async def test_end_of_stream_and_silence(autojump_clock: trio.abc.Clock) -> None:
    async with connected() as (client, server):
        reader = CoalescingReader(server.socket)
        started = trio.current_time()
        with pytest.raises(trio.TooSlowError):
            await reader.receive(started + 15, 0)
        assert trio.current_time() == pytest.approx(started + 15)
        await client.send_all(b"last")
        await client.send_eof()  # the kernel wakes us at end of stream whatever the mark
        received = b""
        while chunk := await reader.receive(trio.current_time() + 15, 4096):
            received += chunk
        assert received == b"last"
        assert trio.current_time() == pytest.approx(started + 15)
