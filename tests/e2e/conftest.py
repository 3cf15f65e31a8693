"""Fixtures for the e2e player tests (real players in headless Chromium)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.e2e.harness import CHROMIUM_PATH, PlayerHarness, chromium_available, launch_harness


@pytest.fixture(scope="session")
def player_harness() -> Iterator[PlayerHarness]:
    """One headless Chromium (fresh profile) shared by every e2e test.

    Locally, a machine without Chromium skips the e2e tests; in CI (``CI`` set)
    a missing browser is an error, so a broken install never passes silently.
    """
    if not chromium_available():
        msg = (
            f"{CHROMIUM_PATH} not found: run scripts/install-browser "
            "(apt-get install chromium) to enable the e2e player tests"
        )
        if os.environ.get("CI"):
            pytest.fail(f"CI is set and {msg}", pytrace=False)
        pytest.skip(msg)
    with launch_harness() as harness:
        yield harness
