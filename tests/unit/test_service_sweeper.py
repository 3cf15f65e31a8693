"""The service's orphan sweeper survives its own errors, and keeps folders it did not make.

The file system is real (``tmp_path``), and so are the errors: an ``OUTPUT_DIR`` replaced by a
file makes the listing raise ``NotADirectoryError``. Sweeps run in a worker thread, so these tests
use real time with a short interval (an autojump clock would jump past a sweep still in its thread)
and wait for outcomes, never for a duration.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import trio
from structlog.testing import capture_logs

from actors.janitor import create_stream_folder
from actors.settings import StreamSettings
from supervisor.config import Settings
from supervisor.service import StreamService
from tests.integration.live import wait_for

_INTERVAL_S = 0.02


async def until(condition: Callable[[], bool], what: str) -> None:
    await wait_for(condition, 10, what, poll_s=_INTERVAL_S / 2)


def events(logs: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [entry for entry in logs if entry["event"] == name]


def make_service(output_dir: Path) -> StreamService:
    settings = Settings(output_dir=output_dir, cleanup_interval_s=_INTERVAL_S, ffmpeg_path="/no")
    stream_settings = StreamSettings(output_dir=output_dir, ffmpeg_path="/no")
    return StreamService(settings, stream_settings=stream_settings)


async def test_a_failing_sweep_is_logged_and_the_next_one_runs(tmp_path: Path) -> None:
    output_dir = tmp_path / "streams"
    service = make_service(output_dir)
    with capture_logs() as logs:
        async with trio.open_nursery() as nursery:
            await nursery.start(service.run)
            # the folder vanishes and a file takes its place: every sweep now raises OSError
            output_dir.rmdir()
            output_dir.write_bytes(b"not a folder")
            await until(lambda: len(events(logs, "orphan_sweep_failed")) >= 3, "3 failed sweeps")
            assert service.running
            # the folder comes back: a later sweep works again and removes a marked orphan
            output_dir.unlink()
            create_stream_folder(output_dir / "left-over")
            await until(lambda: not (output_dir / "left-over").exists(), "the orphan removed")
            assert service.running
            nursery.cancel_scope.cancel()
    failures = events(logs, "orphan_sweep_failed")
    assert all(entry["log_level"] == "error" and entry["exc_info"] for entry in failures)


async def test_unmarked_folders_survive_every_sweep_and_are_logged_once(tmp_path: Path) -> None:
    output_dir = tmp_path / "streams"
    (output_dir / "photos").mkdir(parents=True)
    (output_dir / "photos" / "cat.jpg").write_bytes(b"jpeg")
    (output_dir / "cam1" / "240p").mkdir(parents=True)
    create_stream_folder(output_dir / "orphan")
    service = make_service(output_dir)
    sweeps = 0
    real_sweep = service.sweep_orphans

    async def counted_sweep() -> list[str]:
        nonlocal sweeps
        sweeps += 1
        return await real_sweep()

    service.sweep_orphans = counted_sweep  # type: ignore[method-assign]
    with capture_logs() as logs:
        async with trio.open_nursery() as nursery:
            await nursery.start(service.run)  # the start-up sweep
            assert not (output_dir / "orphan").exists()
            await until(lambda: sweeps >= 4, "three more sweeps")
            nursery.cancel_scope.cancel()
    assert (output_dir / "photos" / "cat.jpg").read_bytes() == b"jpeg"
    assert (output_dir / "cam1" / "240p").is_dir()
    kept = events(logs, "unmarked_folders_kept")
    assert [entry["folders"] for entry in kept] == [["cam1", "photos"]]
