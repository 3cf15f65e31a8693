"""The service's own exception taxonomy (the supervision library's are in ``supervisor.otp``).

Every exception here is an ``Exception`` (never a ``BaseException``).
"""

from __future__ import annotations


class HlsdashError(Exception):
    """Base class, so callers can catch "anything this service raised on purpose"."""


class ConfigError(HlsdashError, ValueError):
    """A setting is missing or invalid; ``variable`` names it (e.g. the env var) for the user."""

    def __init__(self, variable: str, message: str) -> None:
        super().__init__(f"{variable}: {message}")
        self.variable = variable
