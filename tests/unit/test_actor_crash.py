"""A fault that escapes a stream actor's own supervision ends it as ``failed``, cleanly.

The root runs each actor TEMPORARY. Before, it restarted ``actor.run`` (TRANSIENT) on the same,
already finished actor: a zombie stream whose playback was 404, that DELETE skipped, and whose
FFmpeg kept running. Fake FFmpeg, autojump clock, the real service and root supervisor.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from actors.ffmpeg.sources import ValidatedSource
from actors.settings import StreamSettings
from actors.status import StreamSpec, StreamState
from actors.stream import StreamActor
from supervisor.config import load_settings
from supervisor.otp.backoff import Backoff
from supervisor.service import StreamNotFound, StreamService
from tests.unit.test_stream_actor import FakeSpawner

SOURCE = ValidatedSource(url="rtmp://example/live", scheme="rtmp", input_args=())


def make_service(tmp_path: Path, spawner: FakeSpawner) -> StreamService:
    settings = load_settings({"OUTPUT_DIR": str(tmp_path), "FFMPEG_PATH": "/fake/ffmpeg"})
    stream_settings = StreamSettings(
        output_dir=tmp_path,
        ffmpeg_path="/fake/ffmpeg",
        start_timeout_s=1000.0,
        # far beyond the test: a worker-thread hop lets the autojump clock leap to the next
        # deadline, and the heartbeat lease must not be that deadline (CI once saw 'stale' here)
        stale_threshold_s=1e9,
        backoff=Backoff(initial_s=0.5, jitter=0.0),
    )
    return StreamService(settings, spawner=spawner, stream_settings=stream_settings)


async def test_an_actor_that_crashes_is_failed_cleaned_up_and_deletable(
    tmp_path: Path, autojump_clock: trio.abc.Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    crash = True
    original_lease_timer = StreamActor._lease_timer

    async def lease_timer_that_breaks(self: StreamActor, scope: trio.CancelScope) -> None:
        if crash:  # a bug in the actor's shell, outside its encoder supervision
            await trio.sleep(3.0)
            raise RuntimeError("lease bookkeeping broke")
        await original_lease_timer(self, scope)

    monkeypatch.setattr(StreamActor, "_lease_timer", lease_timer_that_breaks)
    spawner = FakeSpawner()
    service = make_service(tmp_path, spawner)
    async with trio.open_nursery() as nursery:
        await nursery.start(service.run)
        spec = StreamSpec(stream_id="cam", source_url=SOURCE.url, qualities=("240p",))
        actor = await service.create(spec, SOURCE)
        await actor.finished.wait()
        # (the folder removal runs in a worker thread, during which the autojump clock may move:
        # only the order of states is exact)
        assert [state for state, _ in actor.status.history] == ["starting", "failed"]
        await trio.sleep(5.0)  # time for any restart the root might (wrongly) attempt
        assert actor.status.state is StreamState.FAILED
        assert actor.status.last_error == "actor crashed: RuntimeError: lease bookkeeping broke"
        assert len(spawner.processes) == 1  # not run again on the finished actor
        assert spawner.processes[0].returncode == -15  # its FFmpeg was stopped
        assert service.root.children() == ()
        assert not (tmp_path / "cam").exists()
        assert service.active_count() == 0
        # DELETE answers with the final state and frees the id
        deleted = await service.delete("cam")
        assert deleted is actor
        with pytest.raises(StreamNotFound):
            service.get("cam")
        # the id can be used again, and the new stream runs
        crash = False
        again = await service.create(spec, SOURCE)
        assert again is not actor
        await trio.sleep(1.0)
        assert again.status.state is StreamState.STARTING
        assert len(spawner.processes) == 2
        assert spawner.processes[1].returncode is None
        nursery.cancel_scope.cancel()
    assert spawner.processes[1].returncode == -15
