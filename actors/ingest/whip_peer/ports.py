"""WEBRTC_UDP_PORTS: parse ``"40000-40100"`` and pick ports from it (pure)."""

from __future__ import annotations

import random
from collections.abc import Iterator

MIN_PORT = 1024
MAX_PORT = 65535


def parse_port_range(text: str) -> range:
    """``"40000-40100"`` (inclusive) or a single ``"40000"`` → a range; ValueError otherwise."""
    low_text, _, high_text = text.strip().partition("-")
    try:
        low = int(low_text)
        high = int(high_text) if high_text else low
    except ValueError:
        raise ValueError(f"not a port range: {text!r} (expected e.g. 40000-40100)") from None
    if not MIN_PORT <= low <= high <= MAX_PORT:
        raise ValueError(f"port range {text!r} must be within {MIN_PORT}-{MAX_PORT}, low ≤ high")
    return range(low, high + 1)


def port_candidates(ports: range, rng: random.Random | None = None) -> Iterator[int]:
    """Every port of ``ports`` once, starting at a random one (sessions started together do not
    all race for the lowest port), wrapping around."""
    start = (rng or random.Random()).randrange(len(ports))  # noqa: S311 (spreading, not secrecy)
    for i in range(len(ports)):
        yield ports[(start + i) % len(ports)]
