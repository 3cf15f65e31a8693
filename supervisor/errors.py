"""The service's exception taxonomy.

Every exception here is an ``Exception`` (never a ``BaseException``): they are ordinary failures
that a supervisor classifies, records and acts on. ``trio.Cancelled`` stays the only
``BaseException`` that flows through our code on purpose.
"""

from __future__ import annotations


class HlsdashError(Exception):
    """Base class, so callers can catch "anything this service raised on purpose"."""


class Shutdown(HlsdashError):  # noqa: N818 - OTP's exit reason is called `shutdown`, keep the word
    """Raised by a child to end itself with the OTP exit reason ``shutdown``.

    A ``transient`` child that raises this is not restarted (like a normal return); a
    ``permanent`` one still is, exactly as in OTP. ``reason`` says why, for logs and the registry.
    """

    def __init__(self, reason: str = "shutdown") -> None:
        super().__init__(reason)
        self.reason = reason


class DuplicateChild(HlsdashError):  # noqa: N818 - agreed public name
    """``start_child`` was given an id that is already running."""

    def __init__(self, child_id: str) -> None:
        super().__init__(f"child {child_id!r} is already running")
        self.child_id = child_id


class TooManyChildren(HlsdashError):  # noqa: N818 - agreed public name
    """``start_child`` would exceed the root supervisor's ``max_children``."""

    def __init__(self, max_children: int) -> None:
        super().__init__(f"at capacity: {max_children} children are already running")
        self.max_children = max_children


class UnknownChild(HlsdashError, LookupError):  # noqa: N818 - agreed public name
    """No running child has this id."""

    def __init__(self, child_id: str) -> None:
        super().__init__(f"no running child {child_id!r}")
        self.child_id = child_id


class StallDetected(HlsdashError):  # noqa: N818 - names the event, like trio's `Cancelled`
    """A watchdog saw no progress for too long; the child should be killed and restarted.

    ``idle_s`` (when known) is how long nothing happened, for the restart log line.
    """

    def __init__(self, message: str = "stalled", *, idle_s: float | None = None) -> None:
        super().__init__(message)
        self.idle_s = idle_s


class ConfigError(HlsdashError, ValueError):
    """A setting is missing or invalid; ``variable`` names it (e.g. the env var) for the user."""

    def __init__(self, variable: str, message: str) -> None:
        super().__init__(f"{variable}: {message}")
        self.variable = variable


class EncoderExited(HlsdashError):  # noqa: N818 - it reports an exit, it is not an "error" call
    """The encoder process ended while it was supposed to run.

    ``last_error`` is the encoder's last meaningful stderr line ("" when it said nothing).
    """

    def __init__(self, returncode: int, last_error: str = "") -> None:
        detail = f": {last_error}" if last_error else ""
        super().__init__(f"encoder exited with code {returncode}{detail}")
        self.returncode = returncode
        self.last_error = last_error
