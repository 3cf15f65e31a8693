"""2,000 concurrent LL-HLS blocking playlist reloads over real HTTP all get the new playlist."""

from __future__ import annotations

import re
import resource
import time
from pathlib import Path

import httpx
import pytest
import trio

from supervisor.http.origin import OriginApp
from supervisor.http.origin_server import serve_origin
from supervisor.http.playback import Playback
from supervisor.metrics import Metrics
from tests.integration.live import (
    LAVFI_SOURCE,
    free_port,
    running_service,
    start_stream,
    wait_segments,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

WAITERS = 2000


def raise_fd_limit(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(needed, hard), hard))


async def blocking_get(port: int, path: str, results: list[tuple[float, bytes]]) -> None:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode()
        )
        response = b""
        while True:
            chunk = await stream.receive_some(65536)
            if not chunk:
                break
            response += chunk
    results.append((time.monotonic(), response))


async def test_two_thousand_blocking_reloads_wake_on_one_part(tmp_path: Path) -> None:
    raise_fd_limit(4 * WAITERS + 256)
    port = free_port()
    async with running_service(tmp_path) as service:
        stop = trio.Event()
        async with trio.open_nursery() as nursery:
            await nursery.start(
                serve_origin,
                OriginApp(Playback(service), Metrics(service)),
                service.settings,
                port,
                stop.wait,
            )
            actor = await start_stream(service, "many", LAVFI_SOURCE, qualities=["240p"])
            await wait_segments(actor, 1)
            async with httpx.AsyncClient() as client:
                text = (await client.get(f"http://127.0.0.1:{port}/many/240p/playlist.m3u8")).text
            hint = re.search(r'PRELOAD-HINT:TYPE=PART,URI="part_(\d+)_(\d+)\.m4s"', text)
            assert hint is not None
            msn, part = int(hint.group(1)), int(hint.group(2))
            # ask for the part after the hinted one: it cannot exist before all waiters connect
            path = f"/many/240p/playlist.m3u8?_HLS_msn={msn}&_HLS_part={part + 1}"
            results: list[tuple[float, bytes]] = []
            async with trio.open_nursery() as waiters:
                for _ in range(WAITERS):
                    waiters.start_soon(blocking_get, port, path, results)
            assert len(results) == WAITERS
            statuses = {r.split(b"\r\n", 1)[0].split(b" ")[1] for _, r in results}
            assert statuses == {b"200"}, statuses
            wanted = f'part_{msn}_{part + 1}.m4s"'.encode()
            next_segment = f"seg_{msn}.m4s".encode()
            assert all(wanted in body or next_segment in body for _, body in results)
            times = sorted(t for t, _ in results)
            spread_s = times[-1] - times[0]
            print(f"\n{WAITERS} waiters answered within {spread_s * 1000:.0f} ms of each other")
            # every waiter woke on the part (a waiter that timed out would have a 503 above);
            # how fast is the blocking benchmark's business, not a test's (no timing asserts)
            stop.set()
