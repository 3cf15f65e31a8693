"""The supervision library's exceptions (generic: nothing here knows about streams).

Every exception here is an ``Exception`` (never a ``BaseException``): ordinary failures that a
supervisor classifies, records and acts on. ``trio.Cancelled`` stays the only ``BaseException``
that flows through supervised code on purpose.
"""

from __future__ import annotations


class SupervisionError(Exception):
    """Base class of what the supervision library raises on purpose."""


class Shutdown(SupervisionError):  # noqa: N818 - OTP's exit reason is called `shutdown`, keep the word
    """Raised by a child to end itself with the OTP exit reason ``shutdown``.

    A ``transient`` child that raises this is not restarted (like a normal return); a
    ``permanent`` one still is, exactly as in OTP. ``reason`` says why, for logs and the registry.
    """

    def __init__(self, reason: str = "shutdown") -> None:
        super().__init__(reason)
        self.reason = reason


class DuplicateChild(SupervisionError):  # noqa: N818 - agreed public name
    """``start_child`` was given an id that is already running."""

    def __init__(self, child_id: str) -> None:
        super().__init__(f"child {child_id!r} is already running")
        self.child_id = child_id


class TooManyChildren(SupervisionError):  # noqa: N818 - agreed public name
    """``start_child`` would exceed the root supervisor's ``max_children``."""

    def __init__(self, max_children: int) -> None:
        super().__init__(f"at capacity: {max_children} children are already running")
        self.max_children = max_children


class UnknownChild(SupervisionError, LookupError):  # noqa: N818 - agreed public name
    """No running child has this id."""

    def __init__(self, child_id: str) -> None:
        super().__init__(f"no running child {child_id!r}")
        self.child_id = child_id


class StallDetected(SupervisionError):  # noqa: N818 - names the event, like trio's `Cancelled`
    """A watchdog saw no progress for too long; the child should be killed and restarted.

    ``idle_s`` (when known) is how long nothing happened, for the restart log line.
    """

    def __init__(self, message: str = "stalled", *, idle_s: float | None = None) -> None:
        super().__init__(message)
        self.idle_s = idle_s
