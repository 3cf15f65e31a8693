"""The FFmpeg process owner: spawn it so it can never outlive us, read it, stop it, reap it.

Why not ``trio.lowlevel.open_process``: Linux delivers PR_SET_PDEATHSIG when the parent *thread*
exits, and trio forks from a worker thread that it retires after ~10 s idle, which would SIGKILL a
healthy FFmpeg for no reason. So we fork with ``subprocess.Popen`` from the calling (trio) thread,
whose lifetime is the whole ``trio.run``, and await the exit through a pidfd.

Stop ladder (trio's own ``_posix_deliver_cancel`` shape): SIGTERM (+ SIGCONT, as systemd does, so
a stopped child acts on it) → wait ``term_timeout_s`` → SIGKILL → reap, inside a shielded,
deadline-bounded scope, so a cancelled actor still leaves no zombie and no open fd behind. Signals
go to the child's process group (it leads its own), so a helper it forked dies with it.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import os
import signal
import subprocess
import threading
from collections.abc import Callable, Sequence
from typing import Protocol, final

import trio

PR_SET_PDEATHSIG = 1
DEFAULT_TERM_TIMEOUT_S = 2.0
# After SIGKILL the kernel reaps promptly unless the child is stuck in uninterruptible I/O; we
# stop waiting then rather than hang the actor's shutdown forever.
KILL_WAIT_TIMEOUT_S = 5.0
# Without pidfd (kernel < 5.3) we poll; 50 ms is invisible next to segment durations.
POLL_INTERVAL_S = 0.05
# Media pipes get 1 MiB (the unprivileged default maximum) so a briefly busy packager does not
# stall the encoder; best effort.
PIPE_SIZE_BYTES = 1 << 20
MAX_STDERR_LINE_BYTES = 8192
# After the child exits, how long its pipes may take to deliver their last bytes.
DRAIN_TIMEOUT_S = 1.0

_libc = ctypes.CDLL(None, use_errno=True)


def make_pipe() -> tuple[int, int]:
    """(read_fd, write_fd), both O_CLOEXEC; pass write_fd in ``pass_fds`` (it is made inheritable
    in the child only) — ``spawn_process`` then closes it in the parent."""
    read_fd, write_fd = os.pipe2(os.O_CLOEXEC)
    with contextlib.suppress(OSError):
        fcntl.fcntl(write_fd, fcntl.F_SETPIPE_SZ, PIPE_SIZE_BYTES)
    return read_fd, write_fd


def _make_preexec(parent_pid: int, nice: int = 0) -> Callable[[], None]:
    def preexec() -> None:  # runs in the child between fork and exec
        _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        # The parent may have died before prctl took effect; then nobody would ever kill us.
        if os.getppid() != parent_pid:
            os._exit(1)
        if nice:
            # encoders yield to the service under load: the control API and the live edge stay
            # responsive when the machine runs more ladders than it has cores
            os.setpriority(os.PRIO_PROCESS, 0, nice)

    return preexec


def die_with_this_thread() -> Callable[[], None]:
    """A ``subprocess.Popen`` ``preexec_fn``: the child is SIGKILLed when the calling thread ends
    (for the main thread: when this process ends, even by SIGKILL).

    For what tests and benchmarks start (a service, a publisher's FFmpeg, Redis): a killed
    pytest or bench would otherwise leave them running for hours. Call it on the thread whose
    lifetime bounds the child's.
    """
    return _make_preexec(os.getpid())


class ProcessHandle(Protocol):
    """What an actor needs from a running encoder. Fakes implement this in actor tests."""

    @property
    def pid(self) -> int: ...
    @property
    def returncode(self) -> int | None: ...
    @property
    def stdout(self) -> trio.abc.ReceiveStream | None: ...
    @property
    def stderr(self) -> trio.abc.ReceiveStream | None: ...
    async def wait(self) -> int: ...
    def send_signal(self, sig: int) -> None: ...
    def kill(self) -> None: ...
    async def aclose(self, reason: str = "") -> None: ...


class Spawner(Protocol):
    def __call__(self, argv: Sequence[str], *, pass_fds: Sequence[int]) -> ProcessHandle: ...


@final
class FfmpegProcess:
    """A child spawned by ``spawn_process``. Not constructed directly."""

    def __init__(
        self,
        popen: subprocess.Popen[bytes],
        *,
        stdout_fd: int,
        stderr_fd: int,
        term_timeout_s: float,
    ) -> None:
        self._popen = popen
        self.spawner_thread_id = threading.get_ident()
        self.term_timeout_s = term_timeout_s
        self.close_reason: str | None = None
        self._stdout: trio.lowlevel.FdStream | None = trio.lowlevel.FdStream(stdout_fd)
        self._stderr: trio.lowlevel.FdStream | None = trio.lowlevel.FdStream(stderr_fd)
        self._pidfd: int | None
        try:
            self._pidfd = os.pidfd_open(popen.pid)
        except (AttributeError, OSError):
            self._pidfd = None
        self._wait_lock = trio.Lock()

    @property
    def pid(self) -> int:
        return self._popen.pid

    @property
    def returncode(self) -> int | None:
        """Exit code, or ``-signal`` if killed by a signal; None while running."""
        return self._popen.returncode

    @property
    def stdout(self) -> trio.abc.ReceiveStream | None:
        return self._stdout

    @property
    def stderr(self) -> trio.abc.ReceiveStream | None:
        return self._stderr

    async def wait(self) -> int:
        """Wait for the exit and reap the child."""
        async with self._wait_lock:
            while self._popen.poll() is None:
                if self._pidfd is not None:
                    await trio.lowlevel.wait_readable(self._pidfd)
                else:
                    await trio.sleep(POLL_INTERVAL_S)
            self._close_pidfd()
        code = self._popen.returncode
        assert code is not None
        return code

    def send_signal(self, sig: int) -> None:
        """Signal the child's process group; a no-op once it has been reaped (its pid may be
        reused by then)."""
        if self._popen.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._popen.pid, sig)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    async def aclose(self, reason: str = "") -> None:
        """SIGTERM, then SIGKILL after ``term_timeout_s``; reap; close every fd. Idempotent, and
        safe to call from a cancelled scope (the whole ladder is shielded and bounded)."""
        if self.close_reason is None:
            self.close_reason = reason
        with trio.CancelScope(shield=True):
            if self._popen.poll() is None:
                self.send_signal(signal.SIGTERM)
                # a stopped process (SIGSTOP, a frozen encoder the watchdog caught) acts on its
                # TERM only once continued; without this it always waits out term_timeout_s
                self.send_signal(signal.SIGCONT)
                with trio.move_on_after(self.term_timeout_s):
                    await self.wait()
                if self._popen.poll() is None:
                    self.kill()
                    with trio.move_on_after(KILL_WAIT_TIMEOUT_S):
                        await self.wait()
            else:
                await self.wait()  # reaped already; closes the pidfd
            for stream in (self._stdout, self._stderr):
                if stream is not None:
                    await stream.aclose()
            self._stdout = self._stderr = None

    def _close_pidfd(self) -> None:
        if self._pidfd is not None:
            os.close(self._pidfd)
            self._pidfd = None


def spawn_process(
    argv: Sequence[str],
    *,
    pass_fds: Sequence[int] = (),
    term_timeout_s: float = DEFAULT_TERM_TIMEOUT_S,
    nice: int = 0,
) -> FfmpegProcess:
    """Fork+exec ``argv`` from the calling thread (call it from the trio thread).

    Ownership of every fd in ``pass_fds`` moves to this function: they are closed in the parent
    right after the spawn (or its failure), so the readers see EOF when the child exits.
    stdin is /dev/null; stdout and stderr are pipes read through ``FfmpegProcess.stdout/stderr``.
    """
    out_read, out_write = os.pipe2(os.O_CLOEXEC)
    err_read, err_write = os.pipe2(os.O_CLOEXEC)
    try:
        popen = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out_write,
            stderr=err_write,
            pass_fds=tuple(pass_fds),
            close_fds=True,
            process_group=0,
            # Only prctl + getppid run in the child: async-signal-safe enough even with threads.
            preexec_fn=_make_preexec(os.getpid(), nice),  # noqa: PLW1509
        )
    except BaseException:
        for fd in (out_read, err_read):
            os.close(fd)
        raise
    finally:
        for fd in (out_write, err_write, *pass_fds):
            with contextlib.suppress(OSError):
                os.close(fd)
    return FfmpegProcess(
        popen, stdout_fd=out_read, stderr_fd=err_read, term_timeout_s=term_timeout_s
    )


def _default_spawner(argv: Sequence[str], *, pass_fds: Sequence[int]) -> ProcessHandle:
    return spawn_process(argv, pass_fds=pass_fds)


async def _pump_bytes(
    stream: trio.abc.ReceiveStream | None, on_chunk: Callable[[bytes], None] | None
) -> None:
    if stream is None:
        return
    while chunk := await stream.receive_some():
        if on_chunk is not None:
            on_chunk(bytes(chunk))


async def _pump_lines(
    stream: trio.abc.ReceiveStream | None, on_line: Callable[[str], None] | None
) -> None:
    if stream is None:
        return
    pending = b""
    while chunk := await stream.receive_some():
        # FFmpeg ends status lines with \r; treat it as a line break too.
        *lines, pending = (pending + chunk.replace(b"\r", b"\n")).split(b"\n")
        if len(pending) > MAX_STDERR_LINE_BYTES:
            lines.append(pending)
            pending = b""
        for raw in lines:
            if raw and on_line is not None:
                on_line(raw[:MAX_STDERR_LINE_BYTES].decode("utf-8", "replace"))
    if pending and on_line is not None:
        on_line(pending[:MAX_STDERR_LINE_BYTES].decode("utf-8", "replace"))


async def run_ffmpeg(
    argv: Sequence[str],
    *,
    pass_fds: Sequence[int] = (),
    on_stdout: Callable[[bytes], None] | None = None,
    on_stderr_line: Callable[[str], None] | None = None,
    spawner: Spawner = _default_spawner,
    task_status: trio.TaskStatus[ProcessHandle] = trio.TASK_STATUS_IGNORED,
) -> int:
    """Run the child to its end, feeding stdout chunks and stderr lines to the callbacks.

    Use with ``nursery.start`` to get the handle once it is spawned. Returns the exit code (or
    ``-signal``). On cancellation the child is stopped with the SIGTERM→SIGKILL ladder and reaped
    before ``Cancelled`` propagates. The callbacks are synchronous; keep them cheap.
    """
    proc = spawner(argv, pass_fds=pass_fds)
    try:
        async with trio.open_nursery() as nursery:
            stdout_done = trio.Event()
            stderr_done = trio.Event()

            async def pump_stdout() -> None:
                try:
                    await _pump_bytes(proc.stdout, on_stdout)
                finally:
                    stdout_done.set()

            async def pump_stderr() -> None:
                try:
                    await _pump_lines(proc.stderr, on_stderr_line)
                finally:
                    stderr_done.set()

            nursery.start_soon(pump_stdout)
            nursery.start_soon(pump_stderr)
            task_status.started(proc)
            code = await proc.wait()
            # Let the last progress block and error lines through; a grandchild holding the
            # pipes open must not keep us here.
            with trio.move_on_after(DRAIN_TIMEOUT_S):
                await stdout_done.wait()
                await stderr_done.wait()
            nursery.cancel_scope.cancel(reason="child exited")
        return code
    finally:
        await proc.aclose("run_ffmpeg finished")


def describe_returncode(code: int) -> str:
    """'exit 1', 'killed by SIGKILL' — for logs and the status API."""
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit {code}"


__all__ = [
    "DEFAULT_TERM_TIMEOUT_S",
    "FfmpegProcess",
    "ProcessHandle",
    "Spawner",
    "describe_returncode",
    "make_pipe",
    "run_ffmpeg",
    "spawn_process",
]
