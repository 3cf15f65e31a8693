"""hls.js keeps playing a stream whose FFmpeg is SIGKILLed again and again.

The player half of the reliability suite's SIGKILL case (ops/reliability/sigkill.py; the rest runs
in tests/reliability at CI size), here because it needs the e2e tier's headless Chromium.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ops.reliability import sigkill
from ops.reliability.player import HlsJsPlayer
from tests.e2e.harness import PlayerHarness
from tests.reliability.test_faults import assert_kept_promises

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.reliability]


def test_hlsjs_still_plays_after_repeated_sigkills(
    player_harness: PlayerHarness, tmp_path: Path
) -> None:
    player = HlsJsPlayer(player_harness)
    try:
        report = sigkill.run(count=3, player=player, workdir=tmp_path)
    finally:
        player.close()
    assert_kept_promises(report)
    assert report.figures["player at the end"].startswith("hls.js playing")
