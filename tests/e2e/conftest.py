"""Fixtures for the e2e player tests (real players in headless Chromium)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.harness import CHROMIUM_PATH, PlayerHarness, chromium_available, launch_harness


@pytest.fixture(scope="session")
def player_harness() -> Iterator[PlayerHarness]:
    """One headless Chromium (fresh profile) shared by every e2e test.

    A missing browser is an error, never a skip: a skipped player test proves nothing.
    ``scripts/test`` installs it; to run only the other tests, deselect with ``-m "not e2e"``.
    """
    if not chromium_available():
        pytest.fail(
            f"{CHROMIUM_PATH} not found: run scripts/install-browser (apt-get install chromium) "
            'or deselect the player tests with -m "not e2e"',
            pytrace=False,
        )
    with launch_harness() as harness:
        yield harness
