"""hls.js that was playing a stream keeps playing it after the service is SIGKILLed and started
again with the same settings (the registry resumes the stream: numbers above the old ones, a
discontinuity). The player is not touched between the kill and the check: it recovers by itself.

While no process answers, hls.js's playlist retries (2, about 3 s) run out and it reports a fatal
network error; the player page does what hls.js documents for that (``hls.startLoad()``,
supervisor/static/players.js) and playback goes on. So unlike ``wait_playing`` this test waits
through fatal errors, and then checks that each was a playlist load failing, nothing else.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from tests.e2e.harness import PlayerHarness, PlayerSession, PlayerState
from tests.integration.live import free_port
from tests.integration.test_resume_process import (
    STREAM,
    create,
    media_playlist,
    wait_live_above,
)
from tests.integration.test_service_process import served, wait_encoder_pid, wait_gone

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def played_on(session: PlayerSession, *, min_advance_s: float, timeout_s: float) -> PlayerState:
    """Like ``wait_playing`` but through hls.js's fatal errors (see the module docstring)."""
    deadline = time.monotonic() + timeout_s
    first = last = session.state()
    played_s = 0.0
    last_wall = time.monotonic()
    while True:
        session.page.wait_for_timeout(250)
        state, now = session.state(), time.monotonic()
        step_s = state.current_time_s - last.current_time_s
        if 0 < step_s <= 2.0 * (now - last_wall) + 0.25:
            played_s += step_s
        last, last_wall = state, now
        if played_s >= min_advance_s and state.decoded_frames > first.decoded_frames:
            return state
        assert now < deadline, f"played {played_s:.1f} s in {timeout_s} s\n" + (
            session.diagnostics(state)
        )


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
                after = played_on(session, min_advance_s=4.0, timeout_s=60)
                recovered_s = time.monotonic() - killed
                print(
                    f"\nhls.js: playing {before.current_time_s:.1f} s before the kill, "
                    f"{after.current_time_s:.1f} s after; {recovered_s:.1f} s from the kill to "
                    f"4 s more media played; errors seen: {after.errors}"
                )
                assert after.current_time_s > before.current_time_s
                assert after.decoded_frames > before.decoded_frames
                # the only fatal errors: playlists that could not load while no process
                # answered (hls.js's retry budget is ~3 s); none from what the resumed service
                # served (an empty playlist, undecodable media)
                fatal = [e for e in after.errors if e.endswith("(fatal)")]
                assert all(
                    e.startswith(("hls.js networkError/levelLoadError",
                                  "hls.js networkError/audioTrackLoadError"))
                    for e in fatal
                ), after.errors  # fmt: skip
