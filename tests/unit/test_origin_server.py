"""The origin's HTTP/1.1 shell over real sockets, with a fake app standing in for Playback.

What is checked here is the connection handling only: collapsed blocking reloads (one answer
written to every identical waiter, whatever its status), a waiter that
went away, keep-alive and ``Connection: close``, shutdown closing idle connections, an error in
one connection staying in that connection, and the limits (head, idle and send timeouts on the
autojump clock, the connection cap).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import pytest
import trio
import trio.testing
from structlog.testing import capture_logs

from supervisor.config import load_settings
from supervisor.http.origin import OriginApp
from supervisor.http.origin_core import OriginResponse
from supervisor.http.origin_limits import OriginLimits
from supervisor.http.origin_server import OriginServer
from supervisor.http.origin_sockets import PrefixedStream
from supervisor.http.playback import StreamedResponse
from supervisor.http.server import hypercorn_config

BLOCKING = "/s/240p/playlist.m3u8?_HLS_msn=9&_HLS_part=0"


def _response(status: int, body: bytes) -> OriginResponse:
    return OriginResponse(status, (("content-length", str(len(body))),), body)


@dataclass
class FakeApp:
    """``respond`` parks until ``release`` is set, then answers ``status``; counts the calls."""

    status: int = 200
    hold_s: float | None = None  # blocking requests wait this long (virtual) instead of release
    release: trio.Event = field(default_factory=trio.Event)
    calls: list[str] = field(default_factory=list)
    observed: list[tuple[str, int]] = field(default_factory=list)

    shared: list[tuple[str, int, str | None]] = field(default_factory=list)
    addresses: list[str | None] = field(default_factory=list)

    async def respond(
        self, method: str, path: str, query: str, headers: object, *, address: str | None
    ) -> tuple[str, OriginResponse | StreamedResponse]:
        self.calls.append(f"{method} {path}?{query}")
        self.addresses.append(address)
        if "_HLS_msn" in query:
            if self.hold_s is not None:
                await trio.sleep(self.hold_s)  # the live edge's hold, then its answer
            else:
                await self.release.wait()
        if path == "/s/failing-growing-segment":
            return "/{id}/segment", StreamedResponse(200, (), _failing_chunks())
        if path == "/s/app-bug":
            raise RuntimeError("a bug in the app")
        if path == "/s/huge":
            return "/{id}/segment", _response(200, HUGE_BODY)
        return "/{id}/media_playlist", _response(self.status, f"{self.status} {path}".encode())

    def observe(self, route: str, status: int, started: float) -> None:
        self.observed.append((route, status))

    def note_shared_answer(
        self, path: str, query: str, headers: object, status: int, *, address: str | None
    ) -> None:
        self.shared.append((path, status, address))


HUGE_BODY = b"x" * (64 * 1024 * 1024)  # far more than loopback socket buffers hold


async def _failing_chunks() -> AsyncIterator[bytes]:
    """A growing segment whose source breaks after the first chunk."""
    yield b"first chunk"
    raise LookupError("a bug: the part vanished under us")


@asynccontextmanager
async def running(
    app: FakeApp, limits: OriginLimits | None = None
) -> AsyncIterator[tuple[int, trio.Event]]:
    async with running_server(app, limits) as (port, stop, _):
        yield port, stop


@asynccontextmanager
async def running_server(
    app: FakeApp, limits: OriginLimits | None = None
) -> AsyncIterator[tuple[int, trio.Event, OriginServer]]:
    config = hypercorn_config(load_settings({}), 0)
    server = OriginServer(app, config, limits)  # type: ignore[arg-type]
    sock = trio.socket.socket()
    await sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    port = sock.getsockname()[1]
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        await nursery.start(server.serve, [sock], stop.wait)
        yield port, stop, server
        stop.set()


async def _request(port: int, target: str, extra: str = "") -> trio.SocketStream:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    await stream.send_all(f"GET {target} HTTP/1.1\r\nHost: x\r\n{extra}\r\n".encode())
    return stream


async def _read_response(
    stream: trio.SocketStream, timeout_s: float = 5
) -> tuple[int, bytes, bytes]:
    data = b""
    with trio.fail_after(timeout_s):
        while b"\r\n\r\n" not in data:
            chunk = await stream.receive_some(65536)
            assert chunk, data
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = next(
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.startswith(b"content-length")
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


async def test_a_shared_answer_that_is_not_200_is_shared_too(
    autojump_clock: trio.abc.Clock,
) -> None:
    """Defect: only a 200 was shared, so after the leader's 503 ("gave up after 3 × TD") every
    follower asked again alone and waited another 3 × TD: 6 × TD in all. Identical requests get
    byte-identical answers, whatever the status: one hold, one answer for all."""
    app = FakeApp(status=503, hold_s=6.0)  # 3 × TD for 2 s segments
    async with running(app) as (port, _):
        streams = [await _request(port, BLOCKING) for _ in range(5)]
        answered_at = []
        for stream in streams:
            status, _, body = await _read_response(stream, timeout_s=30)
            answered_at.append(trio.current_time())
            assert (status, body) == (503, b"503 /s/240p/playlist.m3u8")
        for s in streams:
            await s.aclose()
    assert answered_at == [6.0] * 5  # not 12 s for the followers
    assert len(app.calls) == 1


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


# ---------------------------------------------------------------- one connection's error is its own


async def _read_until_closed(stream: trio.SocketStream) -> bytes:
    data = b""
    with trio.fail_after(5):
        while chunk := await stream.receive_some(65536):
            data += chunk
    return data


async def test_a_streamed_body_that_fails_closes_only_its_connection() -> None:
    app = FakeApp()
    with capture_logs() as logs:
        async with running(app) as (port, _):
            bystander = await _request(port, "/s/a")
            assert (await _read_response(bystander))[0] == 200
            failing = await _request(port, "/s/failing-growing-segment")
            received = await _read_until_closed(failing)
            # the head and the first chunk went out; the body ends without its last chunk, so
            # the client knows it is incomplete
            assert received.startswith(b"HTTP/1.1 200 ")
            assert b"first chunk" in received
            assert not received.endswith(b"0\r\n\r\n")
            # the listener and the other keep-alive connection carry on
            await bystander.send_all(b"GET /s/b HTTP/1.1\r\nHost: x\r\n\r\n")
            assert (await _read_response(bystander))[0] == 200
            fresh = await _request(port, "/s/c")
            assert (await _read_response(fresh))[0] == 200
            for s in (bystander, failing, fresh):
                await s.aclose()
    (error,) = [e for e in logs if e["event"] == "origin_connection_error"]
    assert error["log_level"] == "error"
    assert error["response_started"] is True
    assert error["exc_info"]


async def test_an_error_before_any_byte_is_a_json_500_and_the_origin_carries_on() -> None:
    app = FakeApp()
    with capture_logs() as logs:
        async with running(app) as (port, _):
            broken = await _request(port, "/s/app-bug")
            status, head, body = await _read_response(broken)
            assert status == 500
            assert b"connection: close" in head
            assert b"access-control-allow-origin: *" in head
            assert b'"internal_error"' in body
            assert b"Traceback" not in body
            assert await _read_until_closed(broken) == b""
            other = await _request(port, "/s/a")
            assert (await _read_response(other))[0] == 200
            await broken.aclose()
            await other.aclose()
    (error,) = [e for e in logs if e["event"] == "origin_connection_error"]
    assert error["response_started"] is False
    assert error["error_id"] in body.decode()


# ---------------------------------------------------------------- limits, on virtual time

LIMITS = OriginLimits(head_timeout_s=10, idle_timeout_s=15, send_timeout_s=10, max_connections=3)


async def _open_at(server: OriginServer, at_s: float) -> int:
    await trio.sleep_until(at_s)
    await trio.testing.wait_all_tasks_blocked()
    return server.open_connections


async def _assert_closed_after(server: OriginServer, start_s: float, timeout_s: float) -> None:
    """The one connection is still open just before ``start_s + timeout_s``, gone just after."""
    assert await _open_at(server, start_s + timeout_s - 0.1) == 1
    assert await _open_at(server, start_s + timeout_s + 0.1) == 0


async def test_a_connection_that_sends_no_head_is_closed_after_the_head_timeout(
    autojump_clock: trio.abc.Clock,
) -> None:
    async with running_server(FakeApp(), LIMITS) as (port, _, server):
        silent = await trio.open_tcp_stream("127.0.0.1", port)
        start = trio.current_time()
        await _assert_closed_after(server, start, 10)
        assert await silent.receive_some(100) == b""
        await silent.aclose()


async def test_a_trickled_head_gets_the_head_timeout_in_total(
    autojump_clock: trio.abc.Clock,
) -> None:
    async with running_server(FakeApp(), LIMITS) as (port, _, server):
        slowloris = await trio.open_tcp_stream("127.0.0.1", port)
        start = trio.current_time()
        with trio.move_on_after(30):
            for byte in b"GET /s/a HTTP/1.1\r\nHost: x\r\n":  # one byte a second, never ends
                try:
                    await slowloris.send_all(bytes([byte]))
                except trio.BrokenResourceError:
                    break
                await trio.sleep(1)
                if server.open_connections == 0:
                    break
        # closed at 10 s, while still trickling (the loop saw it within its 1 s step)
        assert 10.0 <= trio.current_time() - start <= 11.0
        await slowloris.aclose()


async def test_an_idle_keep_alive_connection_is_closed_after_the_idle_timeout(
    autojump_clock: trio.abc.Clock,
) -> None:
    async with running_server(FakeApp(), LIMITS) as (port, _, server):
        stream = await _request(port, "/s/a")
        assert (await _read_response(stream))[0] == 200
        answered = trio.current_time()
        await _assert_closed_after(server, answered, 15)
        await stream.aclose()


async def test_the_head_timeout_restarts_from_the_first_byte_of_the_next_request(
    autojump_clock: trio.abc.Clock,
) -> None:
    async with running_server(FakeApp(), LIMITS) as (port, _, server):
        stream = await _request(port, "/s/a")
        assert (await _read_response(stream))[0] == 200
        await trio.sleep(14)  # within the idle timeout: a next request starts
        await stream.send_all(b"GET /s/b HTTP/1.1\r\n")
        started = trio.current_time()
        await _assert_closed_after(server, started, 10)
        await stream.aclose()


async def test_a_client_that_stops_reading_is_closed_after_the_send_timeout(
    autojump_clock: trio.abc.Clock,
) -> None:
    async with running_server(FakeApp(), LIMITS) as (port, _, server):
        reader = await _request(port, "/s/huge")  # and never reads
        await trio.testing.wait_all_tasks_blocked()
        stuck_at = trio.current_time()  # the socket buffers are full from here on
        await _assert_closed_after(server, stuck_at, 10)
        await reader.aclose()


async def test_connections_beyond_the_cap_get_a_503_and_are_closed(
    autojump_clock: trio.abc.Clock,
) -> None:
    async with running_server(FakeApp(), LIMITS) as (port, _, server):
        held = [await _request(port, "/s/a") for _ in range(3)]
        for stream in held:
            assert (await _read_response(stream))[0] == 200
        assert server.open_connections == 3
        refused = await _request(port, "/s/a")
        status, head, body = await _read_response(refused)
        assert status == 503
        assert b"retry-after: 1" in head
        assert b"connection: close" in head
        assert b'"at_capacity"' in body
        assert await _read_until_closed(refused) == b""
        await held[0].aclose()
        await trio.testing.wait_all_tasks_blocked()
        assert server.open_connections == 2
        admitted = await _request(port, "/s/a")  # room again
        assert (await _read_response(admitted))[0] == 200
        for stream in [*held, refused, admitted]:
            await stream.aclose()


async def test_a_handed_over_connection_that_stops_reading_is_given_up_on(
    autojump_clock: trio.abc.Clock,
) -> None:
    # Hypercorn shields its writes; the stream it gets bounds them by the send timeout
    listener = (await trio.open_tcp_listeners(0, host="127.0.0.1"))[0]
    port = listener.socket.getsockname()[1]
    async with (
        listener,
        await trio.open_tcp_stream("127.0.0.1", port),
    ):  # the client: connected, never reads
        server_side = await listener.accept()
        handed = PrefixedStream(server_side, b"GET / HTTP/1.0\r\n\r\n", send_timeout_s=10)
        assert await handed.receive_some() == b"GET / HTTP/1.0\r\n\r\n"
        started = trio.current_time()
        with trio.CancelScope(shield=True), pytest.raises(trio.BrokenResourceError):
            await handed.send_all(HUGE_BODY)  # the client reads nothing
        assert 10.0 <= trio.current_time() - started < 10.1
        await handed.aclose()


async def test_the_peer_address_reaches_the_app_and_every_follower_is_a_poll() -> None:
    """Review finding: the fast path gave the app no peer address (viewers without a session tag
    were told apart by user agent only) and followers of a collapsed blocking reload were never
    counted. Clients here come from distinct loopback addresses."""
    app = FakeApp()
    async with running(app) as (port, _):
        streams = [
            await _request_from(f"127.0.0.{index}", port, BLOCKING) for index in (2, 3, 4)
        ]
        await trio.testing.wait_all_tasks_blocked()
        app.release.set()
        for stream in streams:
            assert (await _read_response(stream))[0] == 200
            await stream.aclose()
    assert len(app.addresses) == 1  # the leader asked, for itself
    leader = app.addresses[0]
    followers = sorted(address for _, _, address in app.shared)
    assert sorted([leader, *followers]) == ["127.0.0.2", "127.0.0.3", "127.0.0.4"]
    assert {(path, status) for path, status, _ in app.shared} == {
        ("/s/240p/playlist.m3u8", 200)
    }


async def _request_from(address: str, port: int, target: str) -> trio.SocketStream:
    stream = await trio.open_tcp_stream("127.0.0.1", port, local_address=address)
    await stream.send_all(f"GET {target} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    return stream
