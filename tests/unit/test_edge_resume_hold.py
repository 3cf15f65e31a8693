"""A resumed stream holds playlist requests until its first segment in this life (players that
were watching would otherwise spend their retries on 404s); a new stream answers at once.
Exact virtual time on trio's autojump clock; no encoder runs (the actor is built, not run)."""

from __future__ import annotations

from pathlib import Path

import trio
import trio.testing

from actors.ffmpeg.sources import ValidatedSource
from actors.packager.timeline import TimelinePosition
from actors.settings import StreamSettings
from actors.status import StreamSpec
from actors.stream import StreamActor

SPEC = StreamSpec("cam", "lavfi:testsrc2", ("240p",), low_latency=True)
SOURCE = ValidatedSource(url="testsrc2", scheme="lavfi", input_args=("-f", "lavfi"))


def actor(tmp_path: Path, resume_from: TimelinePosition | None) -> StreamActor:
    settings = StreamSettings(output_dir=tmp_path, ffmpeg_path="ffmpeg", segment_duration_s=2.0)

    async def no_spawn(*_: object, **__: object) -> object:
        raise AssertionError("not run")

    return StreamActor(
        SPEC, SOURCE, settings, spawner=no_spawn, resume_from=resume_from  # type: ignore[arg-type]
    )


async def test_a_resumed_stream_holds_playlist_requests(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    resumed = actor(tmp_path, TimelinePosition(1000.0, 2, 41, 84.0, 1))
    assert resumed.awaiting_first_segment_after_resume
    # nothing arrives: held for 3 × the target duration (2 s), then "no playlist" (404)
    assert await resumed.edge.media_playlist("240p") is None
    assert trio.current_time() == 6.0


async def test_a_new_stream_answers_at_once(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    fresh = actor(tmp_path, None)
    assert not fresh.awaiting_first_segment_after_resume
    assert await fresh.edge.media_playlist("240p") is None
    assert trio.current_time() == 0.0
