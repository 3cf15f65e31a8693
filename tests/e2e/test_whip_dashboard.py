"""The dashboard's "Go live from this browser" in headless Chromium against the real service.

Chromium's fake camera and microphone (``--use-fake-device-for-media-stream``) are published over
WHIP (H.264 preferred through ``setCodecPreferences``) to a push stream created with
``"ingest": "whip"``; other tabs play the result with hls.js and dash.js; stopping the button DELETEs the
session and the stream goes back to ``waiting``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.e2e.harness import PlayerHarness
from tests.e2e.live_service import LiveService, run_service

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

STREAM = "browser"
QUALITIES = ["360p", "240p"]
CODEC_ORDER = """async () => {
  const { preferH264 } = await import('/static/whip.js');
  const codecs = RTCRtpSender.getCapabilities('video').codecs;
  return preferH264(codecs).map((c) => c.mimeType.toLowerCase());
}"""


@pytest.fixture(scope="module")
def service() -> Iterator[LiveService]:
    with run_service(
        segment_duration_s=1.0, extra_env={"WEBRTC_HOST_ADDRESSES": "127.0.0.1"}
    ) as svc:
        yield svc


def _wait_state(service: LiveService, state: str, timeout_s: float) -> dict[str, object]:
    deadline = time.monotonic() + timeout_s
    while True:
        status = service.status(STREAM)
        if status["state"] == state:
            return status
        if time.monotonic() > deadline:
            raise AssertionError(f"{STREAM} never {state}: {status}\n{service.log_tail()}")
        time.sleep(0.25)


def test_go_live_from_this_browser_and_watch_it_in_another_tab(
    player_harness: PlayerHarness, service: LiveService
) -> None:
    created = service.client.post(
        "/streams",
        json={"stream_id": STREAM, "ingest": "whip", "qualities": QUALITIES, "low_latency": True},
    )
    assert created.status_code == 201, created.text
    key = created.json()["ingest"]["stream_key"]
    _wait_state(service, "waiting", 20)

    with player_harness.session("hlsjs", "") as publisher:
        page = publisher.page
        page.goto(service.api_url + "/")
        # H.264 first (with packetization-mode=1 first among them), everything else after
        order = page.evaluate(CODEC_ORDER)
        h264 = [i for i, mime in enumerate(order) if mime == "video/h264"]
        assert h264, order
        assert h264 == list(range(len(h264))), order

        page.fill("#golive-id", STREAM)
        page.fill("#golive-key", key)
        page.click("#golive")
        page.wait_for_function("() => window.__golive_state().status === 'live'", timeout=30_000)
        session_url = page.evaluate("() => window.__golive_state().session")
        assert f"/streams/{STREAM}/whip/" in session_url
        status = _wait_state(service, "live", 30)
        ingest = status["ingest"]
        assert isinstance(ingest, dict)
        publisher_info = ingest["publisher"]
        assert isinstance(publisher_info, dict)
        assert publisher_info["protocol"] == "whip"
        assert str(publisher_info["codec"]).startswith("h264")

        for engine, path in (("hlsjs", "playlist.m3u8"), ("dashjs", "manifest.mpd")):
            with player_harness.player(
                service.api_url, engine, f"/streams/{STREAM}/{path}", low_latency=True
            ) as viewer:
                state = viewer.wait_playing(min_advance_s=3.0, timeout_s=60)
                assert state.video_width > 0
                assert not viewer.console_errors, viewer.diagnostics(state)

        assert page.locator("#api-error-box").is_hidden(), page.locator("#api-errors").inner_text()
        page.click("#golive")  # stop: DELETE on the session URL
        page.wait_for_function("() => window.__golive_state().status === 'off'", timeout=10_000)
    _wait_state(service, "waiting", 15)


def test_a_wrong_key_is_shown_in_the_page(
    player_harness: PlayerHarness, service: LiveService
) -> None:
    with player_harness.session("hlsjs", "") as publisher:
        page = publisher.page
        page.goto(service.api_url + "/")
        page.fill("#golive-id", STREAM)
        page.fill("#golive-key", "not-the-key")
        page.click("#golive")
        page.wait_for_function("() => window.__golive_state().status === 'failed'", timeout=30_000)
        assert "401 unauthorized" in page.locator("#api-errors").inner_text()
