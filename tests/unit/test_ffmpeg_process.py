from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import trio

from actors.ffmpeg.process import (
    FfmpegProcess,
    ProcessHandle,
    describe_returncode,
    make_pipe,
    run_ffmpeg,
    spawn_process,
)

REPO = Path(__file__).resolve().parents[2]


def proc_state(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return None


def gone(pid: int) -> bool:
    """True once pid no longer exists (or is only a zombie awaiting some other reaper)."""
    return proc_state(pid) in {None, "Z", "X"}


async def poll_until(condition: Callable[[], bool], *, timeout_s: float) -> None:
    # The kernel gives no event for "another process died"; /proc polling is the honest way.
    with trio.fail_after(timeout_s):
        while not condition():  # noqa: ASYNC110
            await trio.sleep(0.02)


def assert_reaped(pid: int) -> None:
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
    assert not Path(f"/proc/{pid}").exists()


async def test_exit_code_stdout_and_stderr_lines() -> None:
    chunks: list[bytes] = []
    lines: list[str] = []
    code = await run_ffmpeg(
        ["sh", "-c", "printf 'frame=1\\nprogress=end\\n'; printf 'a\\rb\\nc' >&2; exit 3"],
        on_stdout=chunks.append,
        on_stderr_line=lines.append,
    )
    assert code == 3
    assert b"".join(chunks) == b"frame=1\nprogress=end\n"
    assert lines == ["a", "b", "c"]


async def test_media_pipe_reaches_reader_and_write_end_is_closed_in_parent() -> None:
    read_fd, write_fd = make_pipe()
    assert os.get_inheritable(read_fd) is False
    code = await run_ffmpeg(
        [sys.executable, "-c", f"import os; os.write({write_fd}, b'hello')"], pass_fds=[write_fd]
    )
    assert code == 0
    with pytest.raises(OSError):  # the parent's copy of the write end was closed at spawn
        os.fstat(write_fd)
    async with trio.lowlevel.FdStream(read_fd) as reader:
        data = b""
        while chunk := await reader.receive_some():
            data += chunk  # EOF arrives: nobody holds a write end any more
    assert data == b"hello"


async def test_cancel_stops_child_with_sigterm_and_reaps() -> None:
    async with trio.open_nursery() as nursery:
        proc: ProcessHandle = await nursery.start(run_ffmpeg, ["sleep", "30"])
        nursery.cancel_scope.cancel()
    assert proc.returncode == -signal.SIGTERM
    assert describe_returncode(proc.returncode) == "killed by SIGTERM"
    assert_reaped(proc.pid)


async def test_child_ignoring_term_is_killed_after_timeout() -> None:
    proc = spawn_process(["sh", "-c", 'trap "" TERM; sleep 30 & wait'], term_timeout_s=0.5)
    await trio.sleep(0.2)  # let sh install the trap
    started = time.monotonic()
    with trio.CancelScope() as scope:
        scope.cancel()
        await proc.aclose("test")  # shielded: completes inside a cancelled scope
    elapsed = time.monotonic() - started
    assert 0.4 < elapsed < 3.0
    assert proc.returncode == -signal.SIGKILL
    assert proc.close_reason == "test"
    assert_reaped(proc.pid)


async def test_a_frozen_child_is_stopped_by_its_sigterm_not_the_kill_escalation() -> None:
    # A SIGSTOPped FFmpeg (what the watchdog catches) cannot act on SIGTERM until continued:
    # without a SIGCONT after the TERM, every frozen encoder costs the whole term_timeout_s.
    proc = spawn_process(["sleep", "30"], term_timeout_s=5)
    proc.send_signal(signal.SIGSTOP)
    await poll_until(lambda: proc_state(proc.pid) == "T", timeout_s=2)
    await proc.aclose("frozen")  # before the fix: SIGKILL after 5 s
    assert proc.returncode == -signal.SIGTERM
    assert_reaped(proc.pid)


async def test_whole_process_group_dies() -> None:
    read_fd, write_fd = make_pipe()
    # dash only redirects single-digit fds, so hand the pipe over as stdout of the echo.
    relay = f'{sys.executable} -c "import os,sys; os.write({write_fd}, sys.stdin.buffer.read())"'
    proc = spawn_process(
        ["sh", "-c", f'trap "" TERM; sleep 30 & echo $! | {relay}; wait'],
        pass_fds=[write_fd],
        term_timeout_s=0.3,
    )
    async with trio.lowlevel.FdStream(read_fd) as reader:
        grandchild = int((await reader.receive_some()).strip())
    await proc.aclose("test")
    await poll_until(lambda: gone(grandchild), timeout_s=3)


async def test_send_signal_stop_and_kill() -> None:
    proc = spawn_process(["sleep", "30"])
    proc.send_signal(signal.SIGSTOP)
    await poll_until(lambda: proc_state(proc.pid) == "T", timeout_s=2)
    proc.kill()
    assert await proc.wait() == -signal.SIGKILL
    proc.kill()  # after reaping: a no-op, never a signal to a recycled pid
    await proc.aclose()
    assert_reaped(proc.pid)


async def test_spawn_failure_closes_pass_fds() -> None:
    read_fd, write_fd = make_pipe()
    with pytest.raises(FileNotFoundError):
        spawn_process(["/nonexistent/ffmpeg"], pass_fds=[write_fd])
    with pytest.raises(OSError):
        os.fstat(write_fd)
    os.close(read_fd)


async def test_pdeathsig_is_set_and_spawn_happens_in_the_trio_thread() -> None:
    # PR_GET_PDEATHSIG from inside the child proves prctl ran before exec.
    probe = (
        "import ctypes, sys; v = ctypes.c_int(); "
        "ctypes.CDLL(None).prctl(2, ctypes.byref(v), 0, 0, 0); sys.stdout.write(str(v.value))"
    )
    out: list[bytes] = []
    assert await run_ffmpeg([sys.executable, "-c", probe], on_stdout=out.append) == 0
    assert b"".join(out) == str(int(signal.SIGKILL)).encode()

    proc = spawn_process(["sleep", "30"])
    assert isinstance(proc, FfmpegProcess)
    assert proc.spawner_thread_id == threading.get_ident()  # not a retiring worker thread
    # Churn trio's thread cache: thread exits must not deliver the death signal.
    for _ in range(20):
        await trio.to_thread.run_sync(lambda: None)
    await trio.sleep(0.3)
    assert proc.returncode is None
    assert not gone(proc.pid)
    await proc.aclose()


_SPAWNS_SERVICE_FFMPEG = """
import sys, trio
from actors.ffmpeg.process import spawn_process
async def main():
    proc = spawn_process(["sleep", "30"])
    print(proc.pid, flush=True)
    await trio.sleep(60)
trio.run(main)
"""
# what tests and benchmarks do for the services and publishers they start
_SPAWNS_TEST_PROCESS = """
import subprocess, time
from actors.ffmpeg.process import die_with_this_thread
proc = subprocess.Popen(["sleep", "30"], preexec_fn=die_with_this_thread())
print(proc.pid, flush=True)
time.sleep(60)
"""


@pytest.mark.parametrize(
    "script", [_SPAWNS_SERVICE_FFMPEG, _SPAWNS_TEST_PROCESS], ids=["spawn_process", "test_spawn"]
)
def test_pdeathsig_kills_grandchild_when_parent_is_sigkilled(script: str) -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", script], cwd=REPO, stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    try:
        assert parent.stdout is not None
        grandchild = int(parent.stdout.readline())
        assert not gone(grandchild)
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=5)
        deadline = time.monotonic() + 2
        while not gone(grandchild) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert gone(grandchild)
    finally:
        parent.kill()
        parent.wait()
        if parent.stdout is not None:
            parent.stdout.close()


class FakeProcess:
    """An in-memory ProcessHandle, as an actor test would use."""

    def __init__(self) -> None:
        self.pid = 4242
        self.returncode: int | None = None
        self.stdout = None
        self.stderr = None
        self.signals: list[int] = []
        self.closed_with: str | None = None
        self._exited = trio.Event()

    async def wait(self) -> int:
        await self._exited.wait()
        assert self.returncode is not None
        return self.returncode

    def send_signal(self, sig: int) -> None:
        self.signals.append(sig)
        self.returncode = -sig
        self._exited.set()

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    async def aclose(self, reason: str = "") -> None:
        self.closed_with = reason
        if self.returncode is None:
            self.send_signal(signal.SIGTERM)


async def test_injected_spawner(autojump_clock: trio.testing.MockClock) -> None:
    fake = FakeProcess()
    seen: list[tuple[list[str], list[int]]] = []

    def spawner(argv: object, *, pass_fds: object) -> ProcessHandle:
        seen.append((list(argv), list(pass_fds)))  # type: ignore[call-overload]
        return fake

    async with trio.open_nursery() as nursery:
        handle = await nursery.start(
            lambda task_status: run_ffmpeg(["ffmpeg", "-i", "x"], pass_fds=[7], spawner=spawner,
                                           task_status=task_status)
        )  # fmt: skip
        assert handle is fake
        await trio.sleep(5)
        fake.send_signal(signal.SIGUSR1)  # the "process" exits on its own
    assert seen == [(["ffmpeg", "-i", "x"], [7])]
    assert fake.closed_with == "run_ffmpeg finished"
    assert fake.signals == [signal.SIGUSR1]


def test_ctypes_libc_has_prctl() -> None:
    assert hasattr(ctypes.CDLL(None), "prctl")
