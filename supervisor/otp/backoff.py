"""Exponential backoff with jitter between restarts (OTP has none; we add it). Pure: no trio.

Jitter choice: *proportional, subtractive* jitter. The delay for attempt ``n`` is drawn uniformly
from ``[base_n * (1 - jitter), base_n]``, ``base_n = min(max_s, initial_s * multiplier**(n-1))``.
``jitter=0.5`` is exactly AWS's "equal jitter", ``jitter=1.0`` is "full jitter". We default to 0.2
rather than full jitter because restarts also count against the restart intensity: full jitter can
draw a near-zero pause and restart a child against a still-dead source at once, burning the
intensity budget; a floor of 80 % of the exponential curve keeps a real pause while still spreading
out many streams that crashed together (e.g. after an upstream blip). Subtracting (not adding)
keeps ``max_s`` a true upper bound.

Reset rule: a child that stayed up for ``reset_after_s`` is considered healthy again, so its next
crash starts over at attempt 1 (a stream that ran for an hour and then crashed restarts fast).
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Backoff:
    initial_s: float = 0.5
    multiplier: float = 2.0
    max_s: float = 30.0
    jitter: float = 0.2  # fraction of the delay that may be randomly taken off, in [0, 1]
    reset_after_s: float = 30.0

    def __post_init__(self) -> None:
        if not self.initial_s > 0:
            raise ValueError(f"initial_s must be > 0, got {self.initial_s}")
        if not self.multiplier >= 1:
            raise ValueError(f"multiplier must be >= 1, got {self.multiplier}")
        if not self.max_s >= self.initial_s:
            raise ValueError(f"max_s ({self.max_s}) must be >= initial_s ({self.initial_s})")
        if not 0 <= self.jitter <= 1:
            raise ValueError(f"jitter must be in [0, 1], got {self.jitter}")
        if not self.reset_after_s >= 0:
            raise ValueError(f"reset_after_s must be >= 0, got {self.reset_after_s}")

    def ceiling_s(self, attempt: int) -> float:
        """The un-jittered delay for ``attempt`` (1-based): the upper envelope."""
        _check_attempt(attempt)
        try:
            raw_s = self.initial_s * self.multiplier ** (attempt - 1)
        except OverflowError:
            # A child crashing for days reaches huge attempt numbers; the cap applies anyway.
            return self.max_s
        return min(self.max_s, raw_s)

    def floor_s(self, attempt: int) -> float:
        """The smallest delay jitter can produce for ``attempt``: the lower envelope."""
        return self.ceiling_s(attempt) * (1.0 - self.jitter)

    def delay_s(self, attempt: int, rng: random.Random) -> float:
        """Pause before restart number ``attempt`` (1-based, counted since the last reset)."""
        ceiling_s = self.ceiling_s(attempt)
        if self.jitter == 0:
            return ceiling_s  # no rng draw, so tests with jitter 0 get exact times
        return ceiling_s * (1.0 - self.jitter * rng.random())

    def next_attempt(self, previous_attempt: int, *, uptime_s: float) -> int:
        """Attempt number for the next restart, given how long the child just stayed up."""
        if uptime_s >= self.reset_after_s:
            return 1
        return previous_attempt + 1


def _check_attempt(attempt: int) -> None:
    if attempt < 1:
        raise ValueError(f"attempt is 1-based, got {attempt}")
