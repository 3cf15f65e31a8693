from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from supervisor.otp.backoff import Backoff

backoffs = st.builds(
    Backoff,
    initial_s=st.floats(min_value=0.01, max_value=5.0),
    multiplier=st.floats(min_value=1.0, max_value=4.0),
    max_s=st.floats(min_value=5.0, max_value=600.0),
    jitter=st.floats(min_value=0.0, max_value=1.0),
)


def test_defaults_double_from_half_a_second_to_the_cap() -> None:
    backoff = Backoff(jitter=0.0)
    rng = random.Random(0)
    delays = [backoff.delay_s(attempt, rng) for attempt in range(1, 10)]
    assert delays == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]


def test_huge_attempt_is_capped_not_overflowing() -> None:
    backoff = Backoff(jitter=0.0)
    assert backoff.delay_s(100_000, random.Random(0)) == 30.0


def test_jitter_takes_off_at_most_its_fraction() -> None:
    backoff = Backoff(initial_s=10.0, max_s=10.0, jitter=0.2)
    rng = random.Random(42)
    draws = [backoff.delay_s(1, rng) for _ in range(500)]
    assert min(draws) >= 8.0
    assert max(draws) <= 10.0
    assert max(draws) - min(draws) > 1.5  # it really spreads out


def test_same_seed_same_delays() -> None:
    backoff = Backoff()
    first = [backoff.delay_s(n, random.Random(7)) for n in range(1, 6)]
    second = [backoff.delay_s(n, random.Random(7)) for n in range(1, 6)]
    assert first == second


def test_reset_after_long_uptime() -> None:
    backoff = Backoff(reset_after_s=30.0)
    assert backoff.next_attempt(0, uptime_s=0.0) == 1
    assert backoff.next_attempt(4, uptime_s=29.9) == 5
    assert backoff.next_attempt(4, uptime_s=30.0) == 1
    assert backoff.next_attempt(9, uptime_s=3600.0) == 1


@pytest.mark.parametrize(
    "kwargs",
    [
        {"initial_s": 0.0},
        {"multiplier": 0.5},
        {"initial_s": 2.0, "max_s": 1.0},
        {"jitter": -0.1},
        {"jitter": 1.5},
        {"reset_after_s": -1.0},
    ],
)
def test_rejects_bad_settings(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="must be"):
        Backoff(**kwargs)


def test_attempt_is_one_based() -> None:
    with pytest.raises(ValueError, match="1-based"):
        Backoff().delay_s(0, random.Random(0))


@given(backoff=backoffs, attempt=st.integers(min_value=1, max_value=2000), seed=st.integers())
def test_delay_within_envelope(backoff: Backoff, attempt: int, seed: int) -> None:
    delay_s = backoff.delay_s(attempt, random.Random(seed))
    assert backoff.floor_s(attempt) <= delay_s <= backoff.ceiling_s(attempt) <= backoff.max_s
    assert delay_s >= backoff.initial_s * (1 - backoff.jitter)


@given(backoff=backoffs, attempt=st.integers(min_value=1, max_value=2000))
def test_envelope_is_monotone(backoff: Backoff, attempt: int) -> None:
    assert backoff.ceiling_s(attempt) <= backoff.ceiling_s(attempt + 1)
    assert backoff.floor_s(attempt) <= backoff.floor_s(attempt + 1)


@given(
    initial_s=st.floats(min_value=0.01, max_value=5.0),
    attempt=st.integers(min_value=1, max_value=60),
)
def test_zero_jitter_is_the_exact_exponential(initial_s: float, attempt: int) -> None:
    backoff = Backoff(initial_s=initial_s, multiplier=2.0, max_s=1e30, jitter=0.0)
    assert backoff.delay_s(attempt, random.Random(0)) == initial_s * 2.0 ** (attempt - 1)
