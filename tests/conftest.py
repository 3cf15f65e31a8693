"""Test-wide set-up: quiet, uncached structlog (tests read logs with capture_logs when they care)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
import structlog

from tests.redis_server import redis_command, running_redis

structlog.configure(
    wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
    cache_logger_on_first_use=False,
)


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
