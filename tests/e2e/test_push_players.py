"""hls.js and dash.js in headless Chromium play an RTMP- and a WHIP-published stream and survive
the publisher's reconnect (killed, back 5 s later: new epoch, EXT-X-DISCONTINUITY / new Period).

``hlsdash serve`` on free ports (RTMP_PORT too); FFmpeg (the wheel's) publishes a 720p30 test
pattern + tone with ``-re`` through the publish URL the API handed out (WHIP: its ``whip`` muxer
with the stream key as the bearer token).
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.e2e.harness import PlayerHarness
from tests.e2e.live_service import LiveService, run_service
from tests.integration.push import kill, start_publisher
from tests.integration.whip_helpers import start_whip_publisher

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

STREAM = "pushed"
PLAY_TIMEOUT_S = 30.0
# Known open (found with WHIP, not WHIP's own): dash.js does not get past a timeline gap longer
# than ~8 s; RTMP with a 9 s gap fails the same way (played 0.00 s in 30 s). WHIP's gap is the
# 5 s plus its 3 s silent-publisher timeout (a killed WebRTC publisher sends no goodbye), so its
# dash.js case crosses that line; hls.js recovers in both.
DASHJS_LONG_GAP = (
    "known open: dash.js stalls after a DASH timeline gap of ~8 s or more (RTMP with a 9 s gap"
    " too); WHIP's reconnect gap is 5 s + its 3 s media timeout"
)
PUBLISHERS: dict[str, Callable[[dict[str, Any]], subprocess.Popen[bytes]]] = {
    "rtmp": lambda ingest: start_publisher(ingest["publish_url"], "flv"),
    "whip": lambda ingest: start_whip_publisher(ingest["publish_url"], ingest["stream_key"]),
}


def _wait_state(service: LiveService, state: str, timeout_s: float) -> dict[str, object]:
    deadline = time.monotonic() + timeout_s
    status: dict[str, object] = {}
    while time.monotonic() < deadline:
        service.check_alive()
        status = service.status(STREAM)
        if status["state"] == state:
            return status
        time.sleep(0.25)
    raise AssertionError(f"{STREAM} not {state} in {timeout_s} s: {status}\n{service.log_tail()}")


@pytest.mark.parametrize("protocol", sorted(PUBLISHERS))
def test_players_keep_playing_a_pushed_stream_across_a_publisher_reconnect(
    player_harness: PlayerHarness, protocol: str
) -> None:
    with run_service(
        segment_duration_s=1.0,
        part_target_s=0.5,
        extra_env={"WEBRTC_HOST_ADDRESSES": "127.0.0.1"},  # WHIP's ICE candidates on loopback
    ) as service:
        response = service.client.post(
            "/streams",
            json={
                "stream_id": STREAM,
                "ingest": protocol,
                "qualities": ["360p", "240p"],
                "low_latency": False,
            },
        )
        assert response.status_code == 201, response.text
        ingest = response.json()["ingest"]
        assert service.status(STREAM)["state"] == "waiting"
        publisher = PUBLISHERS[protocol](ingest)
        try:
            _wait_state(service, "live", 40)
            service.wait_segments(STREAM, at_least=4, timeout_s=40)
            with (
                player_harness.player(service.api_url, "hlsjs", service.hls_url(STREAM)) as hls,
                player_harness.player(service.api_url, "dashjs", service.dash_url(STREAM)) as dash,
            ):
                for session in (hls, dash):
                    state = session.wait_playing(min_advance_s=3.0, timeout_s=PLAY_TIMEOUT_S)
                    assert state.video_height in {240, 360}, session.diagnostics(state)
                epoch = service.status(STREAM)["encoder"]["epoch"]  # type: ignore[index]
                kill(publisher)
                _wait_state(service, "waiting", 15)
                time.sleep(5)
                publisher = PUBLISHERS[protocol](ingest)
                status = _wait_state(service, "live", 40)
                assert status["encoder"]["epoch"] == epoch + 1  # type: ignore[index]
                assert status["ingest"]["reconnects"] == 1  # type: ignore[index]
                assert status["restarts"] == 0
                playlist = service.client.get(f"/streams/{STREAM}/240p/playlist.m3u8").text
                assert "#EXT-X-DISCONTINUITY" in playlist
                # the players recover by themselves and are still playing 15 s later
                time.sleep(15)
                for session in (hls, dash):
                    try:
                        state = session.wait_playing(min_advance_s=3.0, timeout_s=PLAY_TIMEOUT_S)
                    except AssertionError:
                        if (protocol, session.engine) == ("whip", "dashjs"):
                            pytest.xfail(DASHJS_LONG_GAP)
                        raise
                    assert not state.fatal, session.diagnostics(state)
                    assert state.video_width > 0, session.diagnostics(state)
        finally:
            kill(publisher)
