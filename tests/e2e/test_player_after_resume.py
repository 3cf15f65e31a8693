"""hls.js that was playing a stream keeps playing it after the service is SIGKILLed and started
again with the same settings (the registry resumes the stream: numbers above the old ones, a
discontinuity). The player is not touched between the kill and the check: it recovers by itself.

While no process answers, hls.js's playlist retries (2, about 3 s) run out and it reports a fatal
network error; the player page does what hls.js documents for that (``hls.startLoad()``,
supervisor/static/players.js) and playback goes on. So this test waits through fatal *load*
errors (``wait_playing(through_network_outage=True)``); any other fatal error fails it.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from tests.e2e.harness import PlayerHarness, only_load_errors_fatal
from tests.integration.live import free_port
from tests.integration.test_resume_process import (
    STREAM,
    create,
    media_playlist,
    wait_live_above,
)
from tests.integration.test_service_process import served, wait_encoder_pid, wait_gone

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_hlsjs_keeps_playing_across_a_sigkill_and_resume(
    player_harness: PlayerHarness, tmp_path: Path
) -> None:
    api_port, origin_port = ports = (free_port(), free_port())
    base = f"http://127.0.0.1:{api_port}"
    src = f"http://127.0.0.1:{origin_port}/{STREAM}/playlist.m3u8"
    with served(tmp_path, ports=ports) as (process, _, _):
        create(api_port)
        old_pid = wait_encoder_pid(api_port, STREAM, segments=3)
        # the page stays open across both processes (the tab loaded its scripts already)
        with player_harness.player(base, "hlsjs", src, low_latency=True) as session:
            before = session.wait_playing(min_advance_s=3.0, timeout_s=40)
            newest_seen = max(media_playlist(origin_port).numbers)
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=10)
            assert wait_gone(old_pid, 5)
            killed = time.monotonic()
            with served(tmp_path, ports=ports, log_name="service-2.log"):
                wait_live_above(origin_port, api_port, newest_seen, timeout_s=40)
                after = session.wait_playing(
                    min_advance_s=4.0, timeout_s=60, through_network_outage=True
                )
                recovered_s = time.monotonic() - killed
                print(
                    f"\nhls.js: playing {before.current_time_s:.1f} s before the kill, "
                    f"{after.current_time_s:.1f} s after; {recovered_s:.1f} s from the kill to "
                    f"4 s more media played; errors seen: {after.errors}"
                )
                assert after.current_time_s > before.current_time_s
                assert after.decoded_frames > before.decoded_frames
                # the only fatal errors: loads that failed while no process answered (hls.js's
                # retry budget is ~3 s); none from what the resumed service served (an empty
                # playlist, undecodable media)
                assert only_load_errors_fatal(after), after.errors
