from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from supervisor.otp.policy import (
    Decision,
    ExitKind,
    GiveUp,
    Intensity,
    Restart,
    RestartHistory,
    RestartType,
    Stop,
    decide,
    wants_restart,
)

LOOSE = Intensity(max_restarts=100, period_s=10.0)


def crash(history: RestartHistory, *, now_s: float, intensity: Intensity = LOOSE) -> Decision:
    """The decision after a permanent child's abnormal exit at ``now_s``."""
    return decide(
        ExitKind.ABNORMAL, RestartType.PERMANENT, history, now_s=now_s, intensity=intensity
    )


@pytest.mark.parametrize(
    ("restart_type", "exit_kind", "expected"),
    [
        (RestartType.PERMANENT, ExitKind.NORMAL, True),
        (RestartType.PERMANENT, ExitKind.SHUTDOWN, True),
        (RestartType.PERMANENT, ExitKind.ABNORMAL, True),
        (RestartType.TRANSIENT, ExitKind.NORMAL, False),
        (RestartType.TRANSIENT, ExitKind.SHUTDOWN, False),
        (RestartType.TRANSIENT, ExitKind.ABNORMAL, True),
        (RestartType.TEMPORARY, ExitKind.NORMAL, False),
        (RestartType.TEMPORARY, ExitKind.SHUTDOWN, False),
        (RestartType.TEMPORARY, ExitKind.ABNORMAL, False),
    ],
)
def test_otp_restart_table(restart_type: RestartType, exit_kind: ExitKind, expected: bool) -> None:
    assert wants_restart(restart_type, exit_kind) is expected
    decision = decide(exit_kind, restart_type, RestartHistory(), now_s=0.0, intensity=LOOSE)
    assert isinstance(decision, Restart) is expected


def test_clean_exit_not_restarted_is_stop() -> None:
    decision = decide(
        ExitKind.NORMAL, RestartType.TRANSIENT, RestartHistory(), now_s=1.0, intensity=LOOSE
    )
    assert decision == Stop(exit_kind=ExitKind.NORMAL)
    decision = decide(
        ExitKind.SHUTDOWN, RestartType.TEMPORARY, RestartHistory(), now_s=1.0, intensity=LOOSE
    )
    assert decision == Stop(exit_kind=ExitKind.SHUTDOWN)


def test_temporary_crash_is_give_up_not_stop() -> None:
    decision = decide(
        ExitKind.ABNORMAL, RestartType.TEMPORARY, RestartHistory(), now_s=1.0, intensity=LOOSE
    )
    assert isinstance(decision, GiveUp)
    assert "temporary" in decision.reason


def test_restart_records_time() -> None:
    decision = crash(RestartHistory((1.0,)), now_s=2.5)
    assert decision == Restart(history=RestartHistory((1.0, 2.5)))


def test_intensity_exceeded_exactly_on_max_plus_one() -> None:
    intensity = Intensity(max_restarts=3, period_s=10.0)
    history = RestartHistory()
    for now_s in (0.0, 1.0, 2.0):
        decision = crash(history, now_s=now_s, intensity=intensity)
        assert isinstance(decision, Restart)
        history = decision.history
    decision = crash(history, now_s=3.0, intensity=intensity)
    assert isinstance(decision, GiveUp)
    assert "more than 3 restarts within 10 s" in decision.reason


def test_window_is_open_at_the_old_end() -> None:
    # OTP keeps restarts with t > now - period: one exactly `period` old no longer counts.
    intensity = Intensity(max_restarts=1, period_s=5.0)
    decision = crash(RestartHistory((0.0,)), now_s=5.0, intensity=intensity)
    assert decision == Restart(history=RestartHistory((5.0,)))
    decision = crash(RestartHistory((0.0,)), now_s=4.999, intensity=intensity)
    assert isinstance(decision, GiveUp)


def test_zero_intensity_never_restarts() -> None:
    decision = crash(RestartHistory(), now_s=0.0, intensity=Intensity(max_restarts=0, period_s=1.0))
    assert isinstance(decision, GiveUp)


@pytest.mark.parametrize(("max_restarts", "period_s"), [(-1, 1.0), (1, 0.0), (1, -2.0)])
def test_intensity_validates(max_restarts: int, period_s: float) -> None:
    with pytest.raises(ValueError, match="must be"):
        Intensity(max_restarts=max_restarts, period_s=period_s)


@given(
    gaps_s=st.lists(st.floats(min_value=0.0, max_value=20.0), min_size=1, max_size=40),
    max_restarts=st.integers(min_value=0, max_value=6),
    period_s=st.floats(min_value=0.1, max_value=30.0),
)
def test_sliding_window_matches_naive_count(
    gaps_s: list[float], max_restarts: int, period_s: float
) -> None:
    """Feed crash times in order; compare against recounting every accepted restart."""
    intensity = Intensity(max_restarts=max_restarts, period_s=period_s)
    history = RestartHistory()
    accepted: list[float] = []
    now_s = 0.0
    for gap_s in gaps_s:
        now_s += gap_s
        decision = crash(history, now_s=now_s, intensity=intensity)
        in_window = [t for t in accepted if t > now_s - period_s]
        if len(in_window) + 1 > max_restarts:
            assert isinstance(decision, GiveUp)
            return  # the child is failed; no decisions follow
        assert isinstance(decision, Restart)
        accepted.append(now_s)
        history = decision.history
        # Invariants: only in-window times are kept, never more than the limit, in order.
        assert history.restart_times_s == (*in_window, now_s)
        assert len(history) <= max_restarts
        assert list(history.restart_times_s) == sorted(history.restart_times_s)


@given(
    now_s=st.floats(min_value=0.0, max_value=1e6),
    restart_type=st.sampled_from(RestartType),
    exit_kind=st.sampled_from([ExitKind.NORMAL, ExitKind.SHUTDOWN]),
)
def test_clean_exits_never_consume_intensity(
    now_s: float, restart_type: RestartType, exit_kind: ExitKind
) -> None:
    decision = decide(
        exit_kind, restart_type, RestartHistory(), now_s=now_s, intensity=Intensity(1, 1.0)
    )
    if restart_type is RestartType.PERMANENT:
        assert decision == Restart(history=RestartHistory((now_s,)))
    else:
        assert decision == Stop(exit_kind=exit_kind)
