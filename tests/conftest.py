"""Test-wide set-up: quiet, uncached structlog (tests read logs with capture_logs when they care)."""

from __future__ import annotations

import logging

import structlog

structlog.configure(
    wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
    cache_logger_on_first_use=False,
)
