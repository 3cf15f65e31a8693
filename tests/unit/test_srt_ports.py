"""SRT ports: a port is held from its pick until the stream ends, so two streams of ours never get
one port however their creations interleave; a port another process took moves the stream to the
next free one (``tests/integration/test_srt_relay_port.py`` does that with libsrt)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import trio

from actors.settings import StreamSettings
from actors.status import StreamSpec
from supervisor.config import Settings
from supervisor.ingest.srt_ports import NoIngestPort, SrtPorts, StreamSrtPort
from supervisor.registry import open_registry
from supervisor.service import StreamService
from tests.integration.live import free_port


def _ports(*, bound_elsewhere: set[int] | None = None) -> SrtPorts:
    bound = bound_elsewhere if bound_elsewhere is not None else set()
    return SrtPorts("127.0.0.1", (9000, 9003), port_free=lambda _host, port: port not in bound)


async def test_claims_hold_a_port_until_released_and_prefer_a_resumed_streams_port() -> None:
    ports = _ports(bound_elsewhere={9000})
    assert await ports.claim("a") == 9001
    assert await ports.claim("b", preferred=9003) == 9003
    assert await ports.claim("c", preferred=9001) == 9002  # held by a: not handed out twice
    assert (ports.holder(9001), ports.holder(9002), ports.holder(9003)) == ("a", "c", "b")
    with pytest.raises(NoIngestPort):
        await ports.claim("d")
    ports.release("c", 9001)  # not c's: nothing happens
    assert ports.holder(9001) == "a"
    ports.release("a", 9001)
    ports.release("a", 9001)  # idempotent
    assert await ports.claim("d") == 9001


async def test_concurrent_claims_never_share_a_port() -> None:
    ports = _ports()
    claimed: list[int] = []

    async def claim(stream_id: str) -> None:
        claimed.append(await ports.claim(stream_id))

    async with trio.open_nursery() as nursery:
        for stream_id in "abcd":
            nursery.start_soon(claim, stream_id)
    assert sorted(claimed) == [9000, 9001, 9002, 9003]


async def test_a_port_taken_by_another_process_moves_the_stream_to_the_next_free_one() -> None:
    bound = {9003}
    ports = _ports(bound_elsewhere=bound)
    recorded: list[int] = []

    async def record(port: int) -> None:
        recorded.append(port)

    holder = StreamSrtPort(ports, "cam", on_moved=record)
    assert await ports.claim("other") == 9000
    assert await ports.claim("cam", preferred=9002) == 9002
    bound.add(9002)  # someone bound it before libsrt did
    assert await holder.move(9002) == 9001  # after 9002, wrapping round: 9003 bound, 9000 held
    assert recorded == [9001]
    assert ports.holder(9002) is None
    assert ports.holder(9001) == "cam"
    bound.add(9002)
    assert await holder.move(9001) is None  # nothing else free: the stream keeps its port
    assert ports.holder(9001) == "cam"
    holder.release(9001)
    assert ports.holder(9001) is None


async def test_two_srt_streams_created_at_once_do_not_get_the_same_port(tmp_path: Path) -> None:
    """Each create checks its port in a worker thread and registers the stream (another await)
    before its actor exists: a second create used to pick the same port meanwhile."""
    port = free_port(socket.SOCK_DGRAM)
    output_dir = tmp_path / "streams"
    settings = Settings(
        output_dir=output_dir, ffmpeg_path="/no", api_host="127.0.0.1", srt_port_range=(port, port)
    )
    stream_settings = StreamSettings(output_dir=output_dir, ffmpeg_path="/no")
    outcomes: dict[str, int | str] = {}

    async def create(service: StreamService, stream_id: str) -> None:
        spec = StreamSpec(stream_id=stream_id, source_url="", qualities=("240p",), ingest="srt")
        try:
            actor, _ = await service.create_push(spec)
        except NoIngestPort as full:
            outcomes[stream_id] = str(full)
        else:
            assert actor.srt_port is not None
            outcomes[stream_id] = actor.srt_port

    async with open_registry(f"sqlite:///{tmp_path / 'registry.db'}") as registry:
        service = StreamService(settings, stream_settings=stream_settings, registry=registry)
        async with trio.open_nursery() as nursery:
            await nursery.start(service.run)
            async with trio.open_nursery() as creates:
                creates.start_soon(create, service, "a")
                creates.start_soon(create, service, "b")
            assert sorted(map(str, outcomes.values())) == sorted(
                [str(port), f"every SRT port of SRT_PORT_RANGE {port}-{port} is in use"]
            ), outcomes
            # the stream that got it gives it back when it ends
            (owner,) = (sid for sid, got in outcomes.items() if got == port)
            assert service.srt_ports.holder(port) == owner
            actor = await service.delete(owner)
            await actor.finished.wait()
            assert service.srt_ports.holder(port) is None
            nursery.cancel_scope.cancel()
