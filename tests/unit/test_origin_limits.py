"""The origin's connection budget: pure arithmetic over RLIMIT_NOFILE and MAX_STREAMS."""

from __future__ import annotations

import resource

from hypothesis import given
from hypothesis import strategies as st

from supervisor.config import load_settings
from supervisor.http.origin_limits import (
    API_CONNECTION_FDS,
    FDS_PER_STREAM,
    MIN_ORIGIN_CONNECTIONS,
    SERVICE_FDS,
    connection_budget,
    origin_limits,
    raise_nofile_limit,
    reserved_fds,
)


def test_the_documented_examples() -> None:
    assert reserved_fds(16) == 128 + 128 + 16 * 32 == 768
    assert connection_budget(
        nofile_limit=1 << 20, max_streams=16, configured=0
    ).max_connections == ((1 << 20) - 768)
    assert connection_budget(nofile_limit=1024, max_streams=16, configured=0).max_connections == 256


@given(
    nofile_limit=st.integers(min_value=64, max_value=1 << 22),
    max_streams=st.integers(min_value=1, max_value=1000),
    configured=st.integers(min_value=0, max_value=1 << 22),
)
def test_viewers_never_get_the_descriptors_streams_need(
    nofile_limit: int, max_streams: int, configured: int
) -> None:
    budget = connection_budget(
        nofile_limit=nofile_limit, max_streams=max_streams, configured=configured
    )
    reserve = SERVICE_FDS + API_CONNECTION_FDS + max_streams * FDS_PER_STREAM
    assert budget.reserved_fds == reserve
    if nofile_limit - reserve >= MIN_ORIGIN_CONNECTIONS:
        # the cap plus the reserve always fits the limit
        assert budget.max_connections + reserve <= nofile_limit
        if configured:
            assert budget.max_connections == min(configured, nofile_limit - reserve)
        else:
            assert budget.max_connections == nofile_limit - reserve
        assert (budget.warning is None) == (configured <= nofile_limit - reserve)
    else:
        # a limit too small for MAX_STREAMS: a floor, and a warning that says what to change
        assert budget.max_connections == MIN_ORIGIN_CONNECTIONS
        assert budget.warning is not None
        assert "MAX_STREAMS" in budget.warning


def test_settings_become_limits() -> None:
    settings = load_settings(
        {
            "ORIGIN_HEAD_TIMEOUT": "4",
            "ORIGIN_IDLE_TIMEOUT": "20",
            "ORIGIN_SEND_TIMEOUT": "6",
            "ORIGIN_MAX_CONNECTIONS": "300",
            "MAX_STREAMS": "2",
        }
    )
    limits, budget = origin_limits(settings, nofile_limit=4096)
    assert (limits.head_timeout_s, limits.idle_timeout_s, limits.send_timeout_s) == (4, 20, 6)
    assert limits.max_connections == 300
    assert budget.warning is None
    lowered, budget = origin_limits(settings, nofile_limit=512)  # 512 - 320 = 192 < 300
    assert lowered.max_connections == 192
    assert budget.warning is not None
    assert "ORIGIN_MAX_CONNECTIONS 300 lowered to 192" in budget.warning


def test_raising_the_soft_limit_to_the_hard_one() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        if hard != resource.RLIM_INFINITY:
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(soft, 256), hard))
            assert raise_nofile_limit() == hard
            assert resource.getrlimit(resource.RLIMIT_NOFILE) == (hard, hard)
        assert raise_nofile_limit() >= soft  # already raised: unchanged
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
