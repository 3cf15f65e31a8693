"""Test-wide set-up: quiet, uncached structlog (tests read logs with capture_logs when they care)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog
from hypothesis import HealthCheck, settings

from tests.redis_server import redis_command, running_redis

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


# Parallel runs (pytest-xdist, ``--dist loadgroup``; scripts/test): the slowest directories go
# first so that no worker starts a minute-long live test when the others are nearly done.
_RUN_ORDER_BY_DIRECTORY = ("e2e", "bench", "reliability", "integration")


def _directory(item: pytest.Item) -> str:
    return item.path.relative_to(Path(__file__).parent).parts[0]


def _run_order(item: pytest.Item) -> int:
    directory = _directory(item)
    if directory in _RUN_ORDER_BY_DIRECTORY:
        return _RUN_ORDER_BY_DIRECTORY.index(directory)
    return len(_RUN_ORDER_BY_DIRECTORY)  # unit tests: many and quick, they fill the gaps at the end


def _uses_module_fixture(item: pytest.Item) -> bool:
    fixture_info = getattr(item, "_fixtureinfo", None)
    if fixture_info is None:
        return False
    return any(
        definition.scope in ("module", "class", "package")
        for definitions in fixture_info.name2fixturedefs.values()
        for definition in definitions
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Order slow directories first and group tests for xdist (same order in every worker:
    xdist requires it).

    Every player test (tests/e2e) runs on one worker, one at a time: three Chromiums decoding
    live streams at once on 2 cores froze pictures and drifted players off the live edge (seen
    when they were spread over three workers); alone on its worker the player group runs while
    the other workers take the FFmpeg integration tests. Elsewhere, a module whose tests share a
    module-scoped fixture (one live service for several tests) stays on one worker, so that the
    fixture starts once rather than once per worker."""
    items.sort(key=_run_order)
    for item in items:
        if item.get_closest_marker("xdist_group") is not None:
            continue
        if _directory(item) == "e2e":
            item.add_marker(pytest.mark.xdist_group(name="chromium"))
        elif _uses_module_fixture(item):
            item.add_marker(pytest.mark.xdist_group(name=item.nodeid.split("::")[0]))
