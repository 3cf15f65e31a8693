"""A fault that reaches the root supervisor, with the real service, HTTP front and FFmpeg.

Before: the root restarted ``actor.run`` on the same, already finished actor — FFmpeg running
again, playback 404, DELETE skipping it and leaving that FFmpeg behind. Now the stream ends
``failed`` with the error, nothing is left running, DELETE answers and the id plays again.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from actors.stream import StreamActor
from tests.integration.http_helpers import (
    assert_error,
    running_front,
    stream_body,
    wait_live_segments,
)
from tests.integration.live import ffmpeg_pids, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]


async def test_a_crashed_actor_fails_cleanly_and_its_id_plays_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    crashes = {"crashy": 1}
    original_lease_timer = StreamActor._lease_timer

    async def lease_timer(self: StreamActor, scope: trio.CancelScope) -> None:
        if crashes.get(self.spec.stream_id, 0) > 0:
            crashes[self.spec.stream_id] -= 1
            await wait_for(lambda: self.status.segments_produced >= 2, 40, "two segments")
            # a bug in the actor's own shell: it escapes run() and reaches the root supervisor
            raise RuntimeError("injected fault")
        await original_lease_timer(self, scope)

    monkeypatch.setattr(StreamActor, "_lease_timer", lease_timer)
    async with running_front(tmp_path) as front:
        created = await front.api.post("/streams", json=stream_body("crashy"))
        assert created.status_code == 201, created.text
        actor = front.service.get("crashy")
        await wait_for(actor.finished.is_set, 40, "the injected crash")
        status = (await front.api.get("/streams/crashy")).json()
        assert status["state"] == "failed"
        assert status["last_error"] == "actor crashed: RuntimeError: injected fault"
        await trio.sleep(2.0)  # a wrongful restart would have spawned FFmpeg again by now
        assert ffmpeg_pids() == set()
        assert front.service.root.children() == ()
        assert not (tmp_path / "crashy").exists()
        # a failed stream has nothing to play: a clear 404, not a zombie
        assert_error(await front.api.get("/streams/crashy/playlist.m3u8"), 404)
        deleted = await front.api.delete("/streams/crashy")
        assert deleted.status_code == 200, deleted.text
        assert deleted.json()["state"] == "failed"
        assert_error(await front.api.get("/streams/crashy"), 404)

        again = await front.api.post("/streams", json=stream_body("crashy"))
        assert again.status_code == 201, again.text
        await wait_live_segments(front, "crashy", 2)
        playlist = await front.origin.get("/crashy/240p/playlist.m3u8")
        assert playlist.status_code == 200
        assert "seg_" in playlist.text
        assert len(ffmpeg_pids()) == 1
        deleted = await front.api.delete("/streams/crashy")
        assert deleted.status_code == 200
        assert deleted.json()["state"] == "stopped"
        assert ffmpeg_pids() == set()
