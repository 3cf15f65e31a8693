"""Reliability: idle and slow connections on the origin while hls.js plays and the API answers.

``ops.reliability.slow_clients`` at a small count (200 connections, short timeouts so the test
takes seconds). Only the functional parts are asserted — every abusive connection is closed by
the origin's own timeouts, the player keeps playing through the origin, the API answers every
request — never a latency: the full 2,000-connection run prints those figures for the README.
"""

from __future__ import annotations

import pytest

from ops.reliability.slow_clients import KINDS, run
from tests.e2e.harness import PlayerHarness

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

COUNT = 200


def test_slow_clients_are_closed_by_the_timeouts_while_a_player_plays(
    player_harness: PlayerHarness,
) -> None:
    # the suite's shared Chromium: a second Playwright sync session in this thread is refused
    result = run(
        count=COUNT,
        seconds=12,
        head_timeout_s=2,
        idle_timeout_s=3,
        send_timeout_s=2,
        harness=player_harness,
    )
    for kind in KINDS:
        report = result.kinds[kind]
        # the default cap (from the fd budget) is far above 200: nobody is refused, and every
        # silent, trickling, idle and non-reading connection was closed by the origin itself
        assert (report.opened, report.refused, report.closed) == (COUNT // 4, 0, COUNT // 4), kind
    assert result.still_open == 0
    # the service holds only the player's own connections at the end
    assert result.origin_connections[-1][1] <= 8, result.origin_connections
    assert len(result.api_latencies_s) > 100
    assert result.api_errors == 0
    # hls.js kept playing through the same origin port during the abuse, and still plays
    assert result.player_playing_at_end
    assert result.player_advanced_s > 3.0, result.player_advanced_s
