"""Restart policy: Erlang/OTP restart types and restart intensity, as a pure function.

Nothing here imports trio: the caller passes the clock reading (``now_s``) and keeps the
immutable ``RestartHistory`` between calls, so every rule is testable without an event loop.

OTP semantics (``supervisor`` design principles):

- ``permanent`` children are always restarted, whatever the exit;
- ``transient`` children are restarted only after an abnormal exit (not ``normal``/``shutdown``);
- ``temporary`` children are never restarted.

Intensity: if more than ``max_restarts`` restarts happen within ``period_s`` seconds, the supervisor
gives up on the child (for us: the stream becomes ``failed``; nothing escalates further, because
one stream must never take down its siblings). As in OTP's ``add_restart``, the window is
``(now_s - period_s, now_s]`` and includes the restart being decided.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class RestartType(StrEnum):
    PERMANENT = "permanent"
    TRANSIENT = "transient"
    TEMPORARY = "temporary"


class ExitKind(StrEnum):
    """How a child ended, in OTP terms.

    Python mapping: returning is ``normal``; raising ``Shutdown`` or being cancelled by the
    supervisor is ``shutdown``; any other exception is ``abnormal``.
    """

    NORMAL = "normal"
    SHUTDOWN = "shutdown"
    ABNORMAL = "abnormal"


@dataclass(frozen=True, slots=True)
class Intensity:
    """At most ``max_restarts`` restarts within any ``period_s`` window.

    The defaults are looser than OTP's 1-in-5 s because we also back off between restarts:
    with 0.5 s doubling backoff, five quick crashes already span ~7.5 s.
    """

    max_restarts: int = 5
    period_s: float = 60.0

    def __post_init__(self) -> None:
        if self.max_restarts < 0:
            raise ValueError(f"max_restarts must be >= 0, got {self.max_restarts}")
        if not self.period_s > 0:
            raise ValueError(f"period_s must be > 0, got {self.period_s}")


@dataclass(frozen=True, slots=True)
class RestartHistory:
    """Times (supervisor clock, seconds) of the restarts still inside the intensity window."""

    restart_times_s: tuple[float, ...] = ()

    def __len__(self) -> int:
        return len(self.restart_times_s)

    def pruned(self, *, now_s: float, period_s: float) -> RestartHistory:
        """Keep only restarts in ``(now_s - period_s, now_s]``; older ones no longer count."""
        threshold_s = now_s - period_s
        return RestartHistory(tuple(t for t in self.restart_times_s if t > threshold_s))

    def with_restart(self, now_s: float) -> RestartHistory:
        return RestartHistory((*self.restart_times_s, now_s))


@dataclass(frozen=True, slots=True)
class Restart:
    """Restart the child; keep ``history`` for the next decision."""

    history: RestartHistory


@dataclass(frozen=True, slots=True)
class GiveUp:
    """Do not restart: the child is ``failed``. ``reason`` is for humans (logs, status API)."""

    reason: str


@dataclass(frozen=True, slots=True)
class Stop:
    """Do not restart: the child ended cleanly (``normal``/``shutdown``) and its type says stop."""

    exit_kind: ExitKind


Decision = Restart | GiveUp | Stop


def wants_restart(restart_type: RestartType, exit_kind: ExitKind) -> bool:
    """OTP's restart-type table, before intensity is considered."""
    match restart_type:
        case RestartType.PERMANENT:
            return True
        case RestartType.TRANSIENT:
            return exit_kind is ExitKind.ABNORMAL
        case RestartType.TEMPORARY:
            return False


def decide(
    exit_kind: ExitKind,
    restart_type: RestartType,
    history: RestartHistory,
    *,
    now_s: float,
    intensity: Intensity,
) -> Decision:
    """What to do after a child exited at ``now_s``.

    An abnormal exit that is not restarted (a ``temporary`` child crashing) is a ``GiveUp``, not
    a ``Stop``: the child did not finish its work, so its state must read ``failed``.
    """
    if not wants_restart(restart_type, exit_kind):
        if exit_kind is ExitKind.ABNORMAL:
            return GiveUp(reason=f"{restart_type} child exited abnormally; it is never restarted")
        return Stop(exit_kind=exit_kind)
    window = history.pruned(now_s=now_s, period_s=intensity.period_s).with_restart(now_s)
    if len(window) > intensity.max_restarts:
        return GiveUp(
            reason=(
                f"restart intensity exceeded: more than {intensity.max_restarts} restarts "
                f"within {intensity.period_s:g} s"
            )
        )
    return Restart(history=window)
