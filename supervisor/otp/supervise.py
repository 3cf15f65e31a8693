"""The restart loop for one child: run it, classify its exit, ask the policy, back off, repeat.

This is the thin trio shell around the pure ``policy`` and ``backoff`` modules. The clock is
``trio.current_time()`` and every pause is ``trio.sleep``, so tests drive it with
``autojump_clock`` and assert exact virtual times.

Isolation guarantee: the child's exceptions are *recorded* (as ``last_error``, a short string) and
reported through ``on_event``; they never propagate to ``supervise()``'s caller. The only things
that do propagate are cancellation (``trio.Cancelled``: our caller is stopping us) and
``KeyboardInterrupt``/``SystemExit``, plus bugs in ``on_event`` itself, which must not be mistaken
for a child crash and restarted forever.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol, assert_never

import trio

from supervisor.otp.backoff import Backoff
from supervisor.otp.errors import Shutdown
from supervisor.otp.policy import (
    ExitKind,
    GiveUp,
    Intensity,
    Restart,
    RestartHistory,
    RestartType,
    Stop,
    decide,
)

# Long enough for a stderr line or a traceback summary, short enough for a status API field.
MAX_ERROR_CHARS = 300


class ChildFn(Protocol):
    """A long-running async function started with ``nursery.start``.

    It calls ``task_status.started()`` once it is ready (for a stream: FFmpeg spawned and the
    packager reading), then runs until it is done, raises, or is cancelled.
    """

    def __call__(self, *, task_status: trio.TaskStatus[None]) -> Awaitable[None]: ...


@dataclass(frozen=True, slots=True)
class ChildStarted:
    """The child called ``task_status.started()``; ``restarts`` restarts preceded this run."""

    restarts: int


@dataclass(frozen=True, slots=True)
class ChildExited:
    """The child ended. ``error`` is ``None`` for a clean exit; ``uptime_s`` counts from ready."""

    kind: ExitKind
    error: str | None
    uptime_s: float


@dataclass(frozen=True, slots=True)
class ChildRestarting:
    """The policy chose to restart; the supervisor now sleeps ``delay_s``."""

    delay_s: float
    attempt: int  # 1-based, counted since the backoff last reset


@dataclass(frozen=True, slots=True)
class GaveUp:
    """The child will not be restarted and is ``failed``."""

    reason: str
    last_error: str | None


SupervisorEvent = ChildStarted | ChildExited | ChildRestarting | GaveUp


class OutcomeState(StrEnum):
    STOPPED = "stopped"  # ended cleanly and its restart type says "do not restart"
    FAILED = "failed"  # crashed and will not be restarted (intensity exceeded, or temporary)
    # Stopped from outside (terminate_child / shutdown). ``supervise()`` itself never returns
    # this (it lets Cancelled propagate); the root supervisor reports it.
    TERMINATED = "terminated"


@dataclass(frozen=True, slots=True)
class SupervisionOutcome:
    state: OutcomeState
    last_error: str | None  # most recent child error, even if a later run ended cleanly
    reason: str | None  # why it gave up / was terminated; None for a plain stop
    restarts: int


async def supervise(
    child: ChildFn,
    *,
    restart_type: RestartType,
    intensity: Intensity,
    backoff: Backoff,
    rng: random.Random,
    on_event: Callable[[SupervisorEvent], None],
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> SupervisionOutcome:
    """Run ``child`` under ``restart_type`` until the policy says stop or give up.

    ``task_status.started()`` is called once, when the *first* run reports ready, or when it
    ends without doing so; restarts after that continue in the background. Cancelling the
    surrounding scope cancels the child (its shielded cleanup runs), emits a ``shutdown`` exit
    and re-raises ``Cancelled``.
    """
    history = RestartHistory()
    attempt = 0
    restarts = 0
    last_error: str | None = None
    reported = False

    def report_started() -> None:
        nonlocal reported
        if not reported:
            reported = True
            task_status.started()

    def on_ready() -> None:
        on_event(ChildStarted(restarts=restarts))
        report_started()

    while True:
        result = await _run_once(child, on_ready)
        now_s = trio.current_time()
        uptime_s = 0.0 if result.ready_at_s is None else now_s - result.ready_at_s
        if result.passthrough is not None:
            error = _describe_group(result.errors)
            on_event(ChildExited(kind=ExitKind.SHUTDOWN, error=error, uptime_s=uptime_s))
            _raise_passthrough(result.passthrough)
        kind, error = _classify(result.errors)
        on_event(ChildExited(kind=kind, error=error, uptime_s=uptime_s))
        if error is not None:
            last_error = error
        report_started()  # the first run failed before ready: unblock our parent anyway

        decision = decide(kind, restart_type, history, now_s=now_s, intensity=intensity)
        match decision:
            case Stop():
                return SupervisionOutcome(
                    state=OutcomeState.STOPPED,
                    last_error=last_error,
                    reason=None,
                    restarts=restarts,
                )
            case GiveUp(reason=reason):
                on_event(GaveUp(reason=reason, last_error=last_error))
                return SupervisionOutcome(
                    state=OutcomeState.FAILED,
                    last_error=last_error,
                    reason=reason,
                    restarts=restarts,
                )
            case Restart(history=new_history):
                history = new_history
                attempt = backoff.next_attempt(attempt, uptime_s=uptime_s)
                delay_s = backoff.delay_s(attempt, rng)
                on_event(ChildRestarting(delay_s=delay_s, attempt=attempt))
                await trio.sleep(delay_s)
                restarts += 1
            case _:
                assert_never(decision)


@dataclass(frozen=True, slots=True)
class _RunResult:
    ready_at_s: float | None
    errors: ExceptionGroup[Exception] | None  # what the child raised, if anything
    passthrough: BaseExceptionGroup[BaseException] | None  # Cancelled & co.: must propagate


async def _run_once(child: ChildFn, on_ready: Callable[[], None]) -> _RunResult:
    ready_at_s: float | None = None
    callback_error: Exception | None = None
    errors: ExceptionGroup[Exception] | None = None
    passthrough: BaseExceptionGroup[BaseException] | None = None
    try:
        # A per-run nursery so ``nursery.start`` gives the child real trio start semantics.
        # It is strict, so whatever escapes is a group, which we split below.
        async with trio.open_nursery() as nursery:
            await nursery.start(child)
            ready_at_s = trio.current_time()
            try:
                on_ready()
            except Exception as exc:  # a bug in our caller's callback, not a child crash
                callback_error = exc
                nursery.cancel_scope.cancel(reason="supervisor event callback failed")
    except BaseExceptionGroup as group:
        errors, passthrough = group.split(Exception)
    if callback_error is not None:
        raise callback_error
    return _RunResult(ready_at_s=ready_at_s, errors=errors, passthrough=passthrough)


def _raise_passthrough(passthrough: BaseExceptionGroup[BaseException]) -> None:
    leaves = exception_leaves(passthrough)
    if all(isinstance(leaf, trio.Cancelled) for leaf in leaves):
        # Several tasks saw the same cancellation; one plain Cancelled is what callers expect.
        raise leaves[0]
    raise passthrough


def _classify(errors: ExceptionGroup[Exception] | None) -> tuple[ExitKind, str | None]:
    if errors is None:
        return ExitKind.NORMAL, None
    if all(isinstance(leaf, Shutdown) for leaf in exception_leaves(errors)):
        return ExitKind.SHUTDOWN, None
    return ExitKind.ABNORMAL, _describe_group(errors)


def _describe_group(errors: ExceptionGroup[Exception] | None) -> str | None:
    """``"Type: message"`` of the first real error, noting how many more there were."""
    if errors is None:
        return None
    leaves = exception_leaves(errors)
    # Prefer a real failure over a Shutdown raised alongside it.
    crashes = [leaf for leaf in leaves if not isinstance(leaf, Shutdown)] or leaves
    text = describe_exception(crashes[0])
    if len(crashes) > 1:
        text = f"{text} (+{len(crashes) - 1} more)"
    return _truncate(text)


def describe_exception(exc: BaseException) -> str:
    """Short, log-safe ``"Type: message"`` (just ``"Type"`` when the message is empty)."""
    message = str(exc).strip()
    name = type(exc).__name__
    return _truncate(f"{name}: {message}" if message else name)


def _truncate(text: str) -> str:
    if len(text) <= MAX_ERROR_CHARS:
        return text
    return text[: MAX_ERROR_CHARS - 1] + "…"


def exception_leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    """The non-group exceptions inside ``group``, depth first, in order."""
    leaves: list[BaseException] = []
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            leaves.extend(exception_leaves(exc))
        else:
            leaves.append(exc)
    return leaves
