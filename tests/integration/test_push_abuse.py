"""Garbage on the RTMP port (random bytes, a truncated handshake, an HTTP request, a player, a
stalled handshake, broken chunks) is closed cleanly; another live stream's segment numbers keep
advancing through it, the listener keeps serving, and the ingest metrics see the real publisher."""

from __future__ import annotations

import os
import re
import struct
from pathlib import Path

import pytest
import trio

from supervisor.ingest.rtmp import amf0, chunk
from supervisor.ingest.rtmp.chunk import ChunkWriter, Message
from supervisor.ingest.rtmp.handshake import HANDSHAKE_SIZE
from tests.integration.http_helpers import running_front, stream_body, wait_live_segments
from tests.integration.live import free_port, wait_for
from tests.integration.push import publishing

pytestmark = [pytest.mark.integration, pytest.mark.slow]

C0_C1 = b"\x03" + bytes(HANDSHAKE_SIZE)
C2 = bytes(HANDSHAKE_SIZE)


def _command(name: str, transaction: float, *args: amf0.AmfValue) -> bytes:
    return ChunkWriter().write(
        Message(chunk.COMMAND_AMF0, amf0.encode_all(name, transaction, *args))
    )


GARBAGE: dict[str, bytes] = {
    "random bytes": os.urandom(8192),
    "http request": b"GET /live/cam HTTP/1.1\r\nHost: localhost\r\n\r\n",
    "rtmpe handshake": b"\x06" + bytes(HANDSHAKE_SIZE),
    "truncated handshake": C0_C1[:700],
    "broken chunks": C0_C1 + C2 + b"\x43" + os.urandom(4000),
    "a player": C0_C1 + C2 + _command("connect", 1.0, {"app": "live"})
    + _command("play", 2.0, None, "cam.x"),
    "media before publish": C0_C1 + C2 + _command("connect", 1.0, {"app": "live"})
    + ChunkWriter().write(Message(chunk.VIDEO, b"\x17" * 100, stream_id=1)),
    "huge command": C0_C1 + C2 + b"\x03" + bytes(3) + (0xFFFFFF).to_bytes(3, "big") + b"\x14"
    + struct.pack("<I", 0) + os.urandom(1000),
}


async def _abuse(port: int, data: bytes, hold_open: bool) -> float:
    """Send ``data``; returns how long the server took to close the connection."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    started = trio.current_time()
    async with stream:
        await stream.send_all(data)
        if not hold_open:
            await stream.send_eof()
        with trio.fail_after(15):
            try:
                while await stream.receive_some(65536):
                    pass
            except trio.BrokenResourceError:
                pass  # a reset is a close too
    return trio.current_time() - started


def _segment_numbers(folder: Path) -> list[int]:
    text = (folder / "240p" / "playlist.m3u8").read_text()
    return [int(n) for n in re.findall(r"seg_(\d+)\.m4s", text)]


async def test_garbage_on_the_rtmp_port_disturbs_nothing(tmp_path: Path) -> None:
    async with running_front(tmp_path, RTMP_PORT=str(free_port())) as front:
        response = await front.api.post("/streams", json=stream_body("other"))
        assert response.status_code == 201, response.text
        response = await front.api.post(
            "/streams", json={"stream_id": "cam", "ingest": "rtmp", "qualities": ["240p"]}
        )
        publish_url = response.json()["ingest"]["publish_url"]
        await wait_live_segments(front, "other", 2)
        folder = front.service.settings.output_dir / "other"
        before = max(_segment_numbers(folder))
        port = front.service.rtmp_port

        closed_after: dict[str, float] = {}
        async with trio.open_nursery() as nursery:
            for name, data in GARBAGE.items():

                async def one(name: str = name, data: bytes = data) -> None:
                    # held open, a truncated handshake is closed by the server's setup deadline
                    closed_after[name] = await _abuse(port, data, hold_open=True)

                nursery.start_soon(one)
            # a client that connects and says nothing at all
            nursery.start_soon(lambda: _abuse(port, b"", hold_open=True))
        assert set(closed_after) == set(GARBAGE)
        assert closed_after["truncated handshake"] >= 9  # waited for the rest, then gave up
        for name in GARBAGE.keys() - {"truncated handshake"}:
            assert closed_after[name] < 5, (name, closed_after[name])

        cam = front.service.get("cam")
        assert cam.status.state.value == "waiting"
        assert cam.status.encoder_pid is None
        other = front.service.get("other")
        assert other.status.state.value == "live"
        assert other.status.restarts == 0
        after = max(_segment_numbers(folder))
        assert after >= before + 8  # the other stream kept going through ~10 s of abuse

        # the listener still takes a real publisher, and the metrics see it
        with publishing(publish_url, "flv", size="640x360"):
            await wait_for(lambda: cam.status.state.value == "live", 40, "cam live")
            metrics = (await front.api.get("/metrics")).text
        assert 'hlsdash_ingest_connected{stream_id="cam"} 1.0' in metrics
        pushed = re.search(
            r'hlsdash_ingest_bytes_total\{protocol="rtmp",stream_id="cam"\} ([0-9.e+]+)', metrics
        )
        assert pushed is not None, metrics
        assert float(pushed.group(1)) > 50_000
        assert 'hlsdash_ingest_reconnects_total{protocol="rtmp",stream_id="cam"} 0.0' in metrics
