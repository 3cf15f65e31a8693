"""Reading FFmpeg's pipes: chunks until EOF, whatever way the pipe ends."""

from __future__ import annotations

from collections.abc import AsyncIterator

import trio

_READ_CHUNK_BYTES = 256 * 1024


async def receive_chunks(stream: trio.abc.ReceiveStream | None) -> AsyncIterator[bytes]:
    """Yield chunks until EOF; a missing, closed or broken stream is just the end."""
    if stream is None:
        return
    while True:
        try:
            chunk = await stream.receive_some(_READ_CHUNK_BYTES)
        except (trio.ClosedResourceError, trio.BrokenResourceError, OSError):
            return
        if not chunk:
            return
        yield bytes(chunk)
