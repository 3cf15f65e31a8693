"""An SRT stream's port bound by another process between the service's check and libsrt's bind:
the relay FFmpeg (real libsrt) exits with *Address already in use*, the relay asks for the next
port instead of retrying the taken one for ever, and a real publisher gets through on it."""

from __future__ import annotations

import dataclasses
import functools
import socket
import time
from pathlib import Path

import pytest
import trio

from actors.ffmpeg.process import spawn_process
from actors.ingest.publisher import IngestProtocol, PushInput, new_stream_key
from actors.ingest.srt_relay import SrtListen, run_srt_relay
from tests.integration.live import FFMPEG, free_port
from tests.integration.push import publishing

pytestmark = [pytest.mark.integration]


async def test_a_port_taken_before_libsrt_binds_moves_the_relay_and_a_publisher_gets_through(
    tmp_path: Path,
) -> None:
    key = new_stream_key("cam", IngestProtocol.SRT)
    push = PushInput("cam", IngestProtocol.SRT, key)
    moved_to = free_port(socket.SOCK_DGRAM)
    taken_ports: list[int] = []

    async def next_port(taken: SrtListen) -> SrtListen:
        taken_ports.append(taken.port)
        return dataclasses.replace(taken, port=moved_to)

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as squatter:  # no SO_REUSEADDR
        squatter.bind(("127.0.0.1", 0))
        taken_port = squatter.getsockname()[1]
        async with trio.open_nursery() as nursery:
            nursery.start_soon(
                functools.partial(
                    run_srt_relay,
                    push,
                    SrtListen(bind_host="127.0.0.1", port=taken_port, latency_ms=120),
                    ffmpeg_path=FFMPEG,
                    spawner=functools.partial(spawn_process, nice=10),
                    wall_clock=time.time,
                    on_port_taken=next_port,
                )
            )
            url = f"srt://127.0.0.1:{moved_to}?passphrase={key}&pbkeylen=16"
            with publishing(url, "mpegts", size="320x240"), trio.fail_after(30):
                feed = await push.next_publisher()
                first = await feed.receive()
            nursery.cancel_scope.cancel()
    assert taken_ports == [taken_port]  # asked once, not again and again
    assert first is not None
    assert first[0] == 0x47  # MPEG-TS from the publisher, relayed through the new port
