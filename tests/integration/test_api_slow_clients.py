"""Slow and idle clients on the control API port are closed by its own limits; the API answers.

Review finding: the API port (8083) ran Hypercorn's defaults — 75 s for a request head, no
deadline on writes to a client that reads nothing, no connection cap — while the origin port had
all three. Now ``API_HEAD_TIMEOUT`` / ``API_SEND_TIMEOUT`` / ``API_MAX_CONNECTIONS`` apply
(``supervisor/http/api_server.py``). The kinds of abuse are those of
``ops/reliability/slow_clients.py``: silent, slowloris (a head one byte at a time), idle keep-alive
after one answer, and a reader that never reads 64 pipelined answers. Which of them the service
still holds is read from the server's own side of the sockets (this process serves them).
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Callable
from pathlib import Path

import httpx
import psutil
import pytest
import trio

from tests.integration.http_helpers import Front, running_front
from tests.integration.test_low_latency_http import self_signed

pytestmark = [pytest.mark.integration]

HEAD_TIMEOUT_S = 2
SEND_TIMEOUT_S = 2
PER_KIND = 6
# generous: a loaded CI machine; the service's own deadlines are 2 s
CLOSED_WITHIN_S = 20


def _server_side_peers(api_port: int) -> set[int]:
    """Client ports of the connections the API side of this process still holds open."""
    return {
        c.raddr.port
        for c in psutil.Process().net_connections(kind="tcp")
        if c.laddr and c.laddr.port == api_port and c.raddr and c.status == "ESTABLISHED"
    }


async def _wait_for_peers(
    api_port: int,
    done: Callable[[set[int]], bool],
    what: str,
    *,
    meanwhile: Front | None = None,
) -> None:
    """Poll the server side's sockets until ``done``; the API is asked meanwhile if given."""
    with trio.fail_after(CLOSED_WITHIN_S):
        # the kernel's socket table has no event to wait on: poll it
        while not done(_server_side_peers(api_port)):
            if meanwhile is not None:
                await _api_answers(meanwhile)  # it answers all along
            await trio.sleep(0.1)
    assert done(_server_side_peers(api_port)), what


async def _api_answers(front: Front) -> None:
    health = await front.api.get("/health")
    assert health.status_code == 200, health.text
    listed = await front.api.get("/streams")
    assert listed.status_code == 200, listed.text
    assert isinstance(listed.json()["streams"], list)


def _connect(port: int, *, receive_buffer: int | None = None) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if receive_buffer is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    sock.connect(("127.0.0.1", port))
    sock.setblocking(False)
    return sock


async def _read_one_answer(sock: socket.socket) -> bytes:
    trio_sock = trio.socket.from_stdlib_socket(sock)
    data = b""
    with trio.fail_after(10):
        while b"\r\n\r\n" not in data:
            chunk = await trio_sock.recv(65536)
            assert chunk, "closed before answering"
            data += chunk
    return data


async def _slowloris(sock: socket.socket, stop: trio.Event) -> None:
    head = b"GET /streams HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 4096
    sent = 0
    while not stop.is_set():
        try:
            sock.send(head[sent % len(head) : sent % len(head) + 1])
        except BlockingIOError:
            pass
        except OSError:
            return  # the service closed it
        sent += 1
        await trio.sleep(0.25)


async def test_slow_and_idle_clients_are_closed_and_the_api_answers(tmp_path: Path) -> None:
    async with running_front(
        tmp_path,
        API_HEAD_TIMEOUT=str(HEAD_TIMEOUT_S),
        API_SEND_TIMEOUT=str(SEND_TIMEOUT_S),
    ) as front:
        port = front.api_port
        silent = [_connect(port) for _ in range(PER_KIND)]
        slow = [_connect(port) for _ in range(PER_KIND)]
        idle = [_connect(port) for _ in range(PER_KIND)]
        for sock in idle:
            sock.send(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            assert (await _read_one_answer(sock)).startswith(b"HTTP/1.1 200")
        non_readers = [_connect(port, receive_buffer=4096) for _ in range(PER_KIND)]
        for sock in non_readers:
            # the kernel may take only part of it: enough to make answers pile up
            with contextlib.suppress(BlockingIOError):
                sock.send(b"GET /openapi.json HTTP/1.1\r\nHost: x\r\n\r\n" * 64)
        abusers = silent + slow + idle + non_readers
        ours = {s.getsockname()[1] for s in abusers}
        # all accepted (under the default cap of 128)
        await _wait_for_peers(port, lambda held: ours <= held, "every abuser accepted")

        stop = trio.Event()
        async with trio.open_nursery() as nursery:
            for sock in slow:
                nursery.start_soon(_slowloris, sock, stop)
            kinds = {
                **{s.getsockname()[1]: "silent" for s in silent},
                **{s.getsockname()[1]: "slowloris" for s in slow},
                **{s.getsockname()[1]: "idle" for s in idle},
                **{s.getsockname()[1]: "non-reader" for s in non_readers},
            }
            try:
                await _wait_for_peers(
                    port, lambda held: not ours & held, "abusers closed", meanwhile=front
                )
            except trio.TooSlowError:
                left = sorted(kinds[p] for p in ours & _server_side_peers(port))
                raise AssertionError(f"still held by the service: {left}") from None
            stop.set()
        await _api_answers(front)
        for sock in abusers:
            sock.close()


async def test_beyond_the_cap_a_connection_gets_503_and_the_api_recovers(
    tmp_path: Path,
) -> None:
    async with running_front(
        tmp_path, API_HEAD_TIMEOUT=str(HEAD_TIMEOUT_S), API_MAX_CONNECTIONS="4"
    ) as front:
        port = front.api_port
        holders = [_connect(port) for _ in range(4)]
        await trio.sleep(0.2)  # accepted and counted
        extra = _connect(port)
        answer = await _read_one_answer(extra)
        assert answer.startswith(b"HTTP/1.1 503 "), answer[:100]
        assert b'"at_capacity"' in answer
        extra.close()
        # the silent holders go at the head timeout; then the API answers again
        held_by_us = {s.getsockname()[1] for s in holders}
        await _wait_for_peers(port, lambda held: not held_by_us & held, "holders closed")
        await _api_answers(front)
        for sock in holders:
            sock.close()


async def test_with_tls_the_api_answers_and_a_silent_client_is_closed(tmp_path: Path) -> None:
    """The TLS listener sits on the capped one: a silent client (no handshake) goes at the head
    timeout too (Hypercorn's own handshake timeout was 60 s)."""
    cert, key = self_signed(tmp_path)
    async with running_front(
        tmp_path / "streams",
        API_HEAD_TIMEOUT=str(HEAD_TIMEOUT_S),
        TLS_CERT=str(cert),
        TLS_KEY=str(key),
    ) as front:
        port = front.api_port
        silent = _connect(port)
        async with httpx.AsyncClient(http2=True, verify=str(cert), timeout=15) as client:
            health = await client.get(f"https://127.0.0.1:{port}/health")
            assert health.status_code == 200, health.text
            assert health.http_version == "HTTP/2"
        ours = {silent.getsockname()[1]}
        await _wait_for_peers(port, lambda held: not ours & held, "the silent TLS client closed")
        silent.close()
