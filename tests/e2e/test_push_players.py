"""hls.js, dash.js and Shaka (on the MPD) in headless Chromium play an RTMP- and a WHIP-published
stream and survive the publisher's reconnect (killed, back some seconds later: new epoch,
EXT-X-DISCONTINUITY / a new DASH Period that starts where the media stopped).

``hlsdash serve`` on free ports (RTMP_PORT too); FFmpeg (the wheel's) publishes a 720p30 test
pattern + tone with ``-re`` through the publish URL the API handed out (WHIP: its ``whip`` muxer
with the stream key as the bearer token). The gap in the media is the time the publisher is away
plus its reconnect; for WHIP also its 3 s silent-publisher timeout (a killed WebRTC publisher
sends no goodbye). With 1 s segments the MPD lists a 10 s window, so the 12 s cases are away for
longer than the window: before each run's Period started where the media stopped and the depth
stayed open while the publisher was away, dash.js 5.2.1 never played again after a gap of ~8 s
(README, *Push ingest*).
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import pytest

from tests.e2e.harness import PlayerHarness
from tests.e2e.live_service import LiveService, run_service
from tests.integration.push import kill, start_publisher
from tests.integration.whip_helpers import start_whip_publisher

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

STREAM = "pushed"
PLAY_TIMEOUT_S = 30.0
PUBLISHERS: dict[str, Callable[[dict[str, Any]], subprocess.Popen[bytes]]] = {
    "rtmp": lambda ingest: start_publisher(ingest["publish_url"], "flv"),
    "whip": lambda ingest: start_whip_publisher(ingest["publish_url"], ingest["stream_key"]),
}


@dataclass(frozen=True, slots=True)
class Reconnect:
    protocol: str
    away_s: float  # from the stream going back to ``waiting`` to the next publisher's start
    low_latency: bool
    engines: tuple[str, ...]

    @property
    def id(self) -> str:
        mode = "ll" if self.low_latency else "plain"
        return f"{self.protocol}-away{self.away_s:g}s-{mode}-{'+'.join(self.engines)}"


CASES = (
    Reconnect("rtmp", 5.0, low_latency=False, engines=("hlsjs", "dashjs")),
    Reconnect("whip", 5.0, low_latency=False, engines=("hlsjs", "dashjs")),
    # away longer than the MPD's 10 s window
    Reconnect("rtmp", 12.0, low_latency=False, engines=("hlsjs", "dashjs")),
    Reconnect("rtmp", 12.0, low_latency=True, engines=("dashjs",)),
    # Shaka on the MPD: a new Period after the gap, LL and plain
    Reconnect("rtmp", 5.0, low_latency=True, engines=("shaka",)),
    Reconnect("rtmp", 12.0, low_latency=False, engines=("shaka",)),
)


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


def _manifest(service: LiveService) -> str:
    response = service.client.get(f"/streams/{STREAM}/manifest.mpd")
    assert response.status_code == 200, response.text
    return response.text


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
def test_players_keep_playing_a_pushed_stream_across_a_publisher_reconnect(
    player_harness: PlayerHarness, case: Reconnect
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
                "ingest": case.protocol,
                "qualities": ["360p", "240p"],
                "low_latency": case.low_latency,
            },
        )
        assert response.status_code == 201, response.text
        ingest = response.json()["ingest"]
        assert service.status(STREAM)["state"] == "waiting"
        publisher = PUBLISHERS[case.protocol](ingest)
        try:
            _wait_state(service, "live", 40)
            service.wait_segments(STREAM, at_least=4, timeout_s=40)
            sources = {
                "hlsjs": service.hls_url(STREAM),
                "dashjs": service.dash_url(STREAM),
                "shaka": service.dash_url(STREAM),
            }
            with ExitStack() as stack:
                sessions = [
                    stack.enter_context(
                        player_harness.player(
                            service.api_url, engine, sources[engine], case.low_latency
                        )
                    )
                    for engine in case.engines
                ]
                for session in sessions:
                    state = session.wait_playing(min_advance_s=3.0, timeout_s=PLAY_TIMEOUT_S)
                    assert state.video_height in {240, 360}, session.diagnostics(state)
                epoch = service.status(STREAM)["encoder"]["epoch"]  # type: ignore[index]
                kill(publisher)
                _wait_state(service, "waiting", 15)
                # while nobody publishes, the MPD keeps what it listed available (an hour)
                assert 'timeShiftBufferDepth="PT3600S"' in _manifest(service)
                time.sleep(case.away_s)
                publisher = PUBLISHERS[case.protocol](ingest)
                status = _wait_state(service, "live", 40)
                assert status["encoder"]["epoch"] == epoch + 1  # type: ignore[index]
                assert status["ingest"]["reconnects"] == 1  # type: ignore[index]
                assert status["restarts"] == 0
                playlist = service.client.get(f"/streams/{STREAM}/240p/playlist.m3u8").text
                assert "#EXT-X-DISCONTINUITY" in playlist
                mpd = _manifest(service)
                assert len(re.findall(r"<Period ", mpd)) == 2, mpd
                assert 'timeShiftBufferDepth="PT10S"' in mpd, mpd
                # the players recover by themselves and are still playing 15 s later
                time.sleep(15)
                for session in sessions:
                    state = session.wait_playing(min_advance_s=3.0, timeout_s=PLAY_TIMEOUT_S)
                    assert not state.fatal, session.diagnostics(state)
                    assert state.video_width > 0, session.diagnostics(state)
        finally:
            kill(publisher)
