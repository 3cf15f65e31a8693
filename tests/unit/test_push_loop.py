"""The push loop against a fake host (no actor, no FFmpeg), under the autojump clock: which
encoder endings are a publisher leaving (back to waiting) and which go to the restart policy."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
import trio

from actors.errors import EncoderExited
from actors.ffmpeg.process import ProcessHandle
from actors.ingest.publisher import (
    IngestProtocol,
    PublisherFeed,
    PublisherGone,
    PublisherInfo,
    PushInput,
    new_stream_key,
)
from actors.ingest.push_loop import PushLoop
from supervisor.otp.errors import StallDetected
from supervisor.otp.supervise import exception_leaves

Script = Callable[[], Awaitable[None]]


def _no_spawns(argv: object, *, pass_fds: object) -> ProcessHandle:
    raise AssertionError("the push loop of an RTMP stream spawns nothing itself")


class FakeHost:
    """Records the loop's calls; each encode waits for the test to end it with an exception."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, float]] = []
        self.inputs: list[tuple[PublisherFeed, str]] = []
        self.endings: trio.MemorySendChannel[BaseException]
        self.endings, self._endings = trio.open_memory_channel[BaseException](1)

    def publisher_awaited(self) -> None:
        self.calls.append(("waiting", trio.current_time()))

    async def encode_publisher(self, pipe_input: tuple[PublisherFeed, str]) -> None:
        self.calls.append(("encode", trio.current_time()))
        self.inputs.append(pipe_input)
        raise await self._endings.receive()


def _loop() -> PushLoop:
    push = PushInput("cam", IngestProtocol.RTMP, new_stream_key("cam"), clock=trio.current_time)
    return PushLoop(
        push, None, ffmpeg_path="/fake/ffmpeg", spawner=_no_spawns, wall_clock=trio.current_time
    )


def _info() -> PublisherInfo:
    return PublisherInfo(IngestProtocol.RTMP, "127.0.0.1:5000", connected_since_unix_s=0.0)


async def test_a_publisher_leaving_is_waiting_again_and_the_next_one_is_encoded(
    autojump_clock: trio.abc.Clock,
) -> None:
    loop, host = _loop(), FakeHost()
    async with trio.open_nursery() as nursery:
        await nursery.start(loop.encoder_runs, host)
        await trio.sleep(1)
        first = loop.push.attach(_info())
        await trio.sleep(1)
        first.end()  # FFmpeg drains and exits: an input ending
        await host.endings.send(EncoderExited(0, ""))
        await trio.sleep(2)
        second = loop.push.attach(_info())
        await trio.sleep(1)
        nursery.cancel_scope.cancel()
    assert host.calls == [("waiting", 0.0), ("encode", 1.0), ("waiting", 2.0), ("encode", 4.0)]
    assert [feed for feed, _ in host.inputs] == [first, second]
    assert {demuxer for _, demuxer in host.inputs} == {"flv"}


async def _leaves_raised(loop: PushLoop, host: FakeHost, script: Script) -> list[BaseException]:
    """Run the loop next to ``script`` until the loop raises; what it raised, ungrouped."""
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(loop.encoder_runs, host)
            await script()
    except ExceptionGroup as group:
        return list(exception_leaves(group))
    raise AssertionError("the push loop returned")


async def test_ffmpeg_failing_under_a_connected_publisher_goes_to_the_restart_policy(
    autojump_clock: trio.abc.Clock,
) -> None:
    loop, host = _loop(), FakeHost()
    feed = loop.push.attach(_info())

    async def fail_under_a_live_publisher() -> None:
        await feed.send(b"FLV")  # the publisher is alive and talking
        await host.endings.send(EncoderExited(1, "Invalid data found"))

    leaves = await _leaves_raised(loop, host, fail_under_a_live_publisher)
    assert [type(e) for e in leaves] == [EncoderExited]
    # the next run (the policy restarts it) reads the same publisher, without waiting
    assert not feed.ended.is_set()
    host.calls.clear()
    async with trio.open_nursery() as nursery:
        await nursery.start(loop.encoder_runs, host)
        await trio.sleep(0.5)
        nursery.cancel_scope.cancel()
    assert host.calls == [("encode", trio.current_time() - 0.5)]
    assert host.inputs[-1][0] is feed


async def test_a_stall_while_the_publisher_is_silent_drops_it_and_waits_again(
    autojump_clock: trio.abc.Clock,
) -> None:
    loop, host = _loop(), FakeHost()
    async with trio.open_nursery() as nursery:
        await nursery.start(loop.encoder_runs, host)
        feed = loop.push.attach(_info())
        await trio.sleep(5)  # nothing sent: silent
        await host.endings.send(ExceptionGroup("run", [StallDetected("no media", idle_s=4.0)]))
        await trio.sleep(1)
        assert host.calls[-1] == ("waiting", 5.0)
        nursery.cancel_scope.cancel()
    with pytest.raises(PublisherGone, match="went silent"):
        await feed.send(b"late")


async def test_a_stall_while_the_publisher_talks_and_other_errors_raise(
    autojump_clock: trio.abc.Clock,
) -> None:
    loop, host = _loop(), FakeHost()
    feed = loop.push.attach(_info())

    async def stall_while_talking() -> None:
        await trio.sleep(5)
        await feed.send(b"FLV")  # talking, yet no media came out: FFmpeg's fault
        await host.endings.send(ExceptionGroup("run", [StallDetected("no media", idle_s=4)]))

    leaves = await _leaves_raised(loop, host, stall_while_talking)
    assert [type(e) for e in leaves] == [StallDetected]
    assert feed.dropped_reason is None

    async def crash() -> None:
        await host.endings.send(RuntimeError("a bug"))

    leaves = await _leaves_raised(loop, host, crash)
    assert [type(e) for e in leaves] == [RuntimeError]
