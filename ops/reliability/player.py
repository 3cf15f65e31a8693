"""An hls.js player watching a stream during a case (headless Chromium via tests/e2e/harness.py).

The cases take any ``PlayerWatch``; ``hlsjs_player()`` opens the real one. Kept apart so that
the cases import no browser code unless a player is asked for.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Protocol


class PlayerWatch(Protocol):
    def open(self, base_url: str, src: str) -> None:
        """Start playing ``src`` (a multivariant playlist URL) from a page on ``base_url``."""

    def check_playing(self, min_advance_s: float, *, through_network_outage: bool = False) -> str:
        """Wait until ``min_advance_s`` more seconds of media played; a one-line summary.

        Raises AssertionError (with the player's diagnostics) when it does not play.
        ``through_network_outage``: the service was down meanwhile; failed loads may have been
        fatal to the player (the page restarts loading), any other fatal error is not allowed.
        """


class HlsJsPlayer:
    def __init__(self, harness: object) -> None:
        from tests.e2e.harness import PlayerHarness, PlayerSession  # noqa: PLC0415

        assert isinstance(harness, PlayerHarness)
        self._harness = harness
        self._session: PlayerSession | None = None
        self._stack = contextlib.ExitStack()

    def open(self, base_url: str, src: str) -> None:
        self._session = self._stack.enter_context(
            self._harness.player(base_url, "hlsjs", src, low_latency=True)
        )

    def check_playing(self, min_advance_s: float, *, through_network_outage: bool = False) -> str:
        from tests.e2e.harness import only_load_errors_fatal  # noqa: PLC0415

        assert self._session is not None, "open() first"
        state = self._session.wait_playing(
            min_advance_s=min_advance_s,
            timeout_s=30,
            through_network_outage=through_network_outage,
        )
        allowed = through_network_outage and only_load_errors_fatal(state)
        assert not state.fatal or allowed, self._session.diagnostics(state)
        return (
            f"hls.js playing at {state.current_time_s:.1f} s, {state.video_width}x"
            f"{state.video_height}, {state.decoded_frames} frames decoded, "
            f"latency {state.latency_s}"
        )

    def close(self) -> None:
        self._stack.close()


@contextlib.contextmanager
def hlsjs_player() -> Iterator[HlsJsPlayer]:
    """A fresh headless Chromium with one hls.js page (Debian's /usr/bin/chromium)."""
    from tests.e2e.harness import launch_harness  # noqa: PLC0415

    with launch_harness() as harness:
        player = HlsJsPlayer(harness)
        try:
            yield player
        finally:
            player.close()
