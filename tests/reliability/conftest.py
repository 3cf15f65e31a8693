"""The e2e player fixture, shared with tests/e2e (one headless Chromium per session)."""

from tests.e2e.conftest import player_harness

__all__ = ["player_harness"]
