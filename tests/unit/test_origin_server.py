"""The origin's HTTP/1.1 shell over real sockets, with a fake app standing in for Playback.

What is checked here is the connection handling only: collapsed blocking reloads (one answer
written to every identical waiter; anything but a 200 is asked again per request), a waiter that
went away, keep-alive and ``Connection: close``, and shutdown closing idle connections.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import trio
import trio.testing

from supervisor.config import load_settings
from supervisor.http.origin import OriginApp
from supervisor.http.origin_core import OriginResponse
from supervisor.http.origin_server import OriginServer
from supervisor.http.playback import StreamedResponse
from supervisor.http.server import hypercorn_config

BLOCKING = "/s/240p/playlist.m3u8?_HLS_msn=9&_HLS_part=0"


def _response(status: int, body: bytes) -> OriginResponse:
    return OriginResponse(status, (("content-length", str(len(body))),), body)


@dataclass
class FakeApp:
    """``respond`` parks until ``release`` is set, then answers ``status``; counts the calls."""

    status: int = 200
    release: trio.Event = field(default_factory=trio.Event)
    calls: list[str] = field(default_factory=list)
    observed: list[tuple[str, int]] = field(default_factory=list)

    async def respond(
        self, method: str, path: str, query: str, headers: object
    ) -> tuple[str, OriginResponse | StreamedResponse]:
        self.calls.append(f"{method} {path}?{query}")
        if "_HLS_msn" in query:
            await self.release.wait()
        return "/{id}/media_playlist", _response(self.status, f"{self.status} {path}".encode())

    def observe(self, route: str, status: int, started: float) -> None:
        self.observed.append((route, status))


@asynccontextmanager
async def running(app: FakeApp) -> AsyncIterator[tuple[int, trio.Event]]:
    config = hypercorn_config(load_settings({}), 0)
    server = OriginServer(app, config)  # type: ignore[arg-type]
    sock = trio.socket.socket()
    await sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    port = sock.getsockname()[1]
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        await nursery.start(server.serve, [sock], stop.wait)
        yield port, stop
        stop.set()


async def _request(port: int, target: str, extra: str = "") -> trio.SocketStream:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    await stream.send_all(f"GET {target} HTTP/1.1\r\nHost: x\r\n{extra}\r\n".encode())
    return stream


async def _read_response(stream: trio.SocketStream) -> tuple[int, bytes, bytes]:
    data = b""
    with trio.fail_after(5):
        while b"\r\n\r\n" not in data:
            chunk = await stream.receive_some(65536)
            assert chunk, data
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = next(
            int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.startswith(b"content-")
        )
        while len(body) < length:
            body += await stream.receive_some(65536)
    return int(head.split(b" ")[1]), head, body


async def test_identical_blocking_reloads_share_one_answer() -> None:
    app = FakeApp()
    async with running(app) as (port, _):
        streams = [await _request(port, BLOCKING) for _ in range(20)]
        gone = await _request(port, BLOCKING)
        await trio.testing.wait_all_tasks_blocked()
        await gone.aclose()  # one waiter leaves before the answer
        other = await _request(port, BLOCKING, "Range: bytes=0-3\r\n")  # differs: own flight
        await trio.testing.wait_all_tasks_blocked()
        app.release.set()
        answers = [await _read_response(s) for s in streams]
        assert {(status, body) for status, _, body in answers} == {
            (200, b"200 /s/240p/playlist.m3u8")
        }
        assert (await _read_response(other))[0] == 200
        # still keep-alive: the next request on a served connection works
        await streams[0].send_all(b"GET /s/x HTTP/1.1\r\nHost: x\r\n\r\n")
        assert (await _read_response(streams[0]))[0] == 200
        for s in [*streams, other]:
            await s.aclose()
    blocking_calls = [c for c in app.calls if "_HLS_msn" in c]
    assert len(blocking_calls) == 2  # one per distinct request, not one per waiter
    # 20 waiters + the ranged one + the keep-alive follow-up, and the departed waiter if its write
    # still went into the socket (a peer's close is only seen on the next write)
    assert app.observed.count(("/{id}/media_playlist", 200)) in {22, 23}


async def test_a_shared_answer_that_is_not_200_is_asked_again_per_request() -> None:
    app = FakeApp(status=503)
    async with running(app) as (port, _):
        streams = [await _request(port, BLOCKING) for _ in range(5)]
        await trio.testing.wait_all_tasks_blocked()
        app.release.set()
        answers = [await _read_response(s) for s in streams]
        for s in streams:
            await s.aclose()
    assert [status for status, _, _ in answers] == [503] * 5
    assert len(app.calls) == 5


async def test_connection_close_is_honoured_and_said() -> None:
    app = FakeApp()
    async with running(app) as (port, _):
        stream = await _request(port, "/s/a", "Connection: close\r\n")
        status, head, _ = await _read_response(stream)
        assert status == 200
        assert b"connection: close" in head
        with trio.fail_after(5):
            assert await stream.receive_some(100) == b""  # the server closed it
        await stream.aclose()


async def test_shutdown_closes_idle_keep_alive_connections() -> None:
    app = FakeApp()
    async with running(app) as (port, stop):
        stream = await _request(port, "/s/a")
        assert (await _read_response(stream))[0] == 200
        stop.set()  # the connection is idle between requests: it is closed at once
        with trio.fail_after(2):  # far below the 75 s keep-alive and the 3 s grace
            assert await stream.receive_some(100) == b""
        await stream.aclose()


def test_fake_app_matches_the_real_interface() -> None:
    # the fake stands in for OriginApp: same method names, same arity
    for name in ("respond", "observe"):
        assert (
            getattr(OriginApp, name).__code__.co_argcount
            == getattr(FakeApp, name).__code__.co_argcount
        )
