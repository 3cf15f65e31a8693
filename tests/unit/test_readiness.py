"""/ready's checks: the cache on virtual time, and the disk probe on a real folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import trio

from supervisor.http.readiness import CachedCheck, CheckResult, disk_check


class SlowCheck:
    """Takes ``duration_s`` of virtual time; records when each check started."""

    def __init__(self, duration_s: float) -> None:
        self.duration_s = duration_s
        self.started_at: list[float] = []
        self.ok = True

    async def __call__(self) -> CheckResult:
        self.started_at.append(trio.current_time())
        await trio.sleep(self.duration_s)
        return CheckResult(self.ok, None if self.ok else "broken")


async def test_a_result_is_reused_for_its_ttl_after_it_completes(
    autojump_clock: trio.abc.Clock,
) -> None:
    check = SlowCheck(duration_s=1.0)
    cached = CachedCheck(check, ttl_s=5.0)
    answers: list[tuple[float, bool]] = []

    async def probe_at(at_s: float) -> None:
        await trio.sleep_until(at_s)
        result = await cached()
        answers.append((trio.current_time(), result.ok))

    async with trio.open_nursery() as nursery:
        # 0 starts a check (done at 1); 0.5 waits for it; 3 and 5.9 reuse it (valid until 6)
        for at_s in (0.0, 0.5, 3.0, 5.9):
            nursery.start_soon(probe_at, at_s)
    assert check.started_at == [0.0]
    assert answers == [(1.0, True), (1.0, True), (3.0, True), (5.9, True)]

    check.ok = False
    await trio.sleep_until(6.0)  # expired: the next probe checks again, from 6 to 7
    assert (await cached()) == CheckResult(False, "broken")
    assert trio.current_time() == 7.0
    assert (await cached()).ok is False  # a failure is cached the same way
    assert check.started_at == [0.0, 6.0]


async def test_a_check_that_raises_lets_the_next_probe_try_again(
    autojump_clock: trio.abc.Clock,
) -> None:
    calls: list[float] = []

    async def flaky() -> CheckResult:
        calls.append(trio.current_time())
        await trio.sleep(1)
        if len(calls) == 1:
            raise OSError("boom")
        return CheckResult(True)

    cached = CachedCheck(flaky, ttl_s=5.0)
    with pytest.raises(OSError, match="boom"):
        await cached()
    assert (await cached()).ok
    assert calls == [0.0, 1.0]


def test_disk_check_writes_a_real_probe_and_leaves_nothing(tmp_path: Path) -> None:
    assert disk_check(tmp_path / "out", min_free_bytes=0) == CheckResult(True)
    assert os.listdir(tmp_path / "out") == []


def test_disk_check_fails_below_the_free_space_minimum(tmp_path: Path) -> None:
    result = disk_check(tmp_path, min_free_bytes=2**62)
    assert not result.ok
    assert result.error is not None
    assert "below the minimum" in result.error


def test_disk_check_fails_when_the_folder_cannot_exist(tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"")
    result = disk_check(tmp_path / "file" / "out", min_free_bytes=0)
    assert not result.ok
    assert result.error is not None
    assert "Not a directory" in result.error
