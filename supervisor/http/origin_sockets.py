"""Socket-level I/O of the origin's fast path: writes that never block the loop, writes with a
progress deadline, and the stream Hypercorn gets when a connection is handed over. No policy here.
"""

from __future__ import annotations

import contextlib
import os
from typing import Final

import trio
from hypercorn.config import Config

SEND_ERRORS: Final = (trio.BrokenResourceError, trio.ClosedResourceError, OSError)
RECEIVE_BYTES: Final = 64 * 1024


class ClientGone(Exception):  # noqa: N818 - a condition, not a bug
    """The peer went away, or stopped reading for longer than the send timeout."""


async def send_with_progress_deadline(
    stream: trio.SocketStream, data: bytes | bytearray | memoryview, timeout_s: float
) -> None:
    """``send_all`` that gives up when the peer accepts no byte for ``timeout_s``.

    Each ``socket.send`` waits for room and sends what fits, so bounding each call bounds the
    time without progress, not the whole transfer (a slow but reading client is fine). Raises
    :class:`ClientGone`.
    """
    view = memoryview(data)
    sock = stream.socket
    try:
        while view:
            with trio.move_on_after(timeout_s) as waiting:
                sent = await sock.send(view)
            if waiting.cancelled_caught:
                raise ClientGone(f"no write progress for {timeout_s:g} s")
            view = view[sent:]
    except SEND_ERRORS as error:
        raise ClientGone(str(error)) from error


def write_now(stream: trio.SocketStream, head: bytes, body: bytes) -> bytes | memoryview:
    """One non-blocking writev() of head + body; returns what did not fit (usually nothing).

    Raises OSError if the connection is gone.
    """
    try:
        sent = os.writev(stream.socket.fileno(), (head, body) if body else (head,))
    except BlockingIOError:
        sent = 0
    if sent < len(head):
        return head[sent:] + body  # rare: the socket buffer was already full
    return memoryview(body)[sent - len(head) :]


def answer_and_close(stream: trio.SocketStream, answer: bytes) -> None:
    """Write ``answer`` if the socket takes it at once, then close. Never waits."""
    fd = stream.socket.fileno()
    with contextlib.suppress(OSError):
        # read what already arrived, so the close is a FIN after our answer, not a reset
        os.read(fd, RECEIVE_BYTES)
    with contextlib.suppress(OSError):
        os.write(fd, answer)
    stream.socket.close()


class PrefixedStream(trio.abc.HalfCloseableStream):
    """A socket stream whose first read returns bytes the fast path already consumed."""

    def __init__(self, stream: trio.SocketStream, prefix: bytes, send_timeout_s: float) -> None:
        self._stream = stream
        self._prefix = prefix
        self._send_timeout_s = send_timeout_s
        self.socket = stream.socket  # Hypercorn reads peer/server addresses from it

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        if self._prefix:
            data, self._prefix = self._prefix, b""
            return data
        return bytes(await self._stream.receive_some(max_bytes))

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        # Hypercorn shields its writes from cancellation: without this deadline a client that
        # never reads would hold the connection (and its task) forever
        try:
            await send_with_progress_deadline(self._stream, data, self._send_timeout_s)
        except ClientGone as gone:
            # close now: Hypercorn only notes the failed write, and its reading side would wait
            # for the next bytes of a client that reads nothing and has sent all it will send
            await self._stream.aclose()
            raise trio.BrokenResourceError(str(gone)) from gone

    async def wait_send_all_might_not_block(self) -> None:
        await self._stream.wait_send_all_might_not_block()

    async def send_eof(self) -> None:
        await self._stream.send_eof()

    async def aclose(self) -> None:
        await self._stream.aclose()


def listening_sockets(config: Config) -> list[trio.socket.SocketType]:
    sockets = config.create_sockets()
    for sock in sockets.insecure_sockets:
        sock.listen(config.backlog)
    return [trio.socket.from_stdlib_socket(sock) for sock in sockets.insecure_sockets]
