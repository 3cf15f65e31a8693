"""Test-wide set-up: quiet, uncached structlog (tests read logs with capture_logs when they care)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog
from hypothesis import HealthCheck, settings
from xdist.remote import Producer

from tests.redis_server import redis_command, running_redis
from tests.xdist_scheduling import SuiteScheduling

structlog.configure(
    wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
    cache_logger_on_first_use=False,
)

# No per-example time limit: tests never assert timings (a loaded 2-core machine running the
# suite on several workers made a 200 ms Hypothesis deadline fail a pure round-trip test).
settings.register_profile("hlsdash", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("hlsdash")


@pytest.fixture(scope="session")
def redis_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """One real redis-server for the session (tests/redis_server.py); see ``redis_url``."""
    with running_redis(tmp_path_factory.mktemp("redis")) as port:
        yield port


@pytest.fixture
def redis_url(redis_port: int) -> str:
    """``redis://127.0.0.1:<port>/0``, emptied before the test."""
    assert redis_command(redis_port, "FLUSHALL").startswith(b"+OK")
    return f"redis://127.0.0.1:{redis_port}/0"


# Parallel runs (pytest-xdist, scripts/test): the slowest directories first, so that no worker
# starts a minute-long live test when the others are nearly done; tests/xdist_scheduling.py
# shares them between the workers.
_RUN_ORDER_BY_DIRECTORY = ("e2e", "bench", "reliability", "integration")


def _run_order(item: pytest.Item) -> int:
    directory = item.path.relative_to(Path(__file__).parent).parts[0]
    if directory in _RUN_ORDER_BY_DIRECTORY:
        return _RUN_ORDER_BY_DIRECTORY.index(directory)
    return len(_RUN_ORDER_BY_DIRECTORY)  # unit tests: many and quick, they fill the gaps at the end


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=_run_order)  # stable: file order within a directory, same in every worker


def pytest_xdist_make_scheduler(config: pytest.Config, log: Producer) -> SuiteScheduling:
    return SuiteScheduling(config, log)
