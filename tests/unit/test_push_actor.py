"""A push stream's actor under the autojump clock, with a fake (silent) FFmpeg: nothing spawns
before a publisher attaches; a publisher gone silent is its input ending (back to waiting, no
restart counted); the next publisher gets a new encoder run reading from a pipe."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest
import trio

from actors.ingest.publisher import (
    IngestProtocol,
    PublisherGone,
    PublisherInfo,
    PushInput,
    new_stream_key,
)
from actors.ingest.sources import push_placeholder_source
from actors.settings import StreamSettings
from actors.status import StreamSpec, StreamState
from actors.stream import StreamActor
from supervisor.otp.backoff import Backoff
from tests.unit.test_stream_actor import WALL, FakeSpawner, SilentProcess, state_times


class RecordingSpawner(FakeSpawner):
    def __init__(self) -> None:
        super().__init__()
        self.argvs: list[list[str]] = []

    def __call__(self, argv: Sequence[str], *, pass_fds: Sequence[int]) -> SilentProcess:
        self.argvs.append(list(argv))
        return super().__call__(argv, pass_fds=pass_fds)


def _info(port: int) -> PublisherInfo:
    return PublisherInfo(IngestProtocol.RTMP, f"127.0.0.1:{port}", connected_since_unix_s=0.0)


async def test_waiting_publisher_silent_waiting_again_then_a_new_run(
    tmp_path: Path, autojump_clock: trio.abc.Clock
) -> None:
    spawner = RecordingSpawner()
    settings = StreamSettings(
        output_dir=tmp_path,
        ffmpeg_path="/fake/ffmpeg",
        segment_duration_s=2.0,
        stale_threshold_s=40.0,
        start_timeout_s=20.0,
        backoff=Backoff(initial_s=0.5, jitter=0.0),
    )
    spec = StreamSpec(stream_id="cam", source_url="", qualities=("240p",), ingest="rtmp")
    push = PushInput("cam", IngestProtocol.RTMP, new_stream_key("cam"), clock=trio.current_time)
    actor = StreamActor(
        spec,
        push_placeholder_source(),
        settings,
        spawner=spawner,
        wall_clock=lambda: WALL + trio.current_time(),
        push=push,
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(actor.run)
        await trio.sleep(5)
        assert actor.status.state is StreamState.WAITING
        assert spawner.spawned_at == []  # nobody publishes: nothing runs
        first = push.attach(_info(1))
        await trio.sleep(1)
        assert spawner.spawned_at == [5.0]
        argv = spawner.argvs[0]
        assert argv[argv.index("-i") - 2 : argv.index("-i") + 1] == ["-f", "flv", "-i"]
        assert argv[argv.index("-i") + 1].startswith("pipe:")
        # no media for the start timeout (20 s): the publisher sent nothing either, so it left
        await trio.sleep(20)
        assert actor.status.state is StreamState.WAITING
        assert actor.status.restarts == 0
        with pytest.raises(PublisherGone, match="went silent"):
            await first.send(b"late")
        await trio.sleep_until(30.0)
        push.attach(_info(2))
        await actor.finished.wait()
    assert spawner.spawned_at == [5.0, 30.0]
    assert push.reconnects == 1
    # waiting from the start, through the silent publisher, until the lease ended it
    assert state_times(actor) == [("waiting", 0.0), ("stale", 40.0)]
    assert all(p.returncode is not None for p in spawner.processes)
    assert push.closed
