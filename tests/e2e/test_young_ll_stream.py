"""Shaka plays an LL-HLS stream that has only two segments yet (issue 10).

Shaka 5.2 probes media segments for CEA-608/708 captions unless the multivariant playlist says
``CLOSED-CAPTIONS=NONE``; its probe (``HlsParser.getClosedCaptionProbeSegments_``) picks
segments around a quarter and three quarters of the playlist, and with two complete segments and
the growing one (listed through its ``EXT-X-PART``s only, no URI of its own) it picked the growing
one, requested it with no URI and failed: "Cannot read properties of undefined (reading
'match')". Our playlists now say ``CLOSED-CAPTIONS=NONE`` (true: transcoded rungs drop the
source's captions), so no player needs to probe. 4 s segments keep the two-segment window wide
enough to load in on a busy machine; the test checks that the playlist Shaka got had two.
"""

from __future__ import annotations

import time

import httpx
import pytest
from playwright.sync_api import Response

from tests.e2e.harness import PlayerHarness, player_url
from tests.e2e.live_service import run_service

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

STREAM = "young"
SEGMENT_DURATION_S = 4.0
TWO_SEGMENTS = 2


def _complete_segments(playlist: str) -> int:
    return playlist.count("#EXTINF")


def test_shaka_plays_an_ll_hls_stream_with_two_segments(player_harness: PlayerHarness) -> None:
    with run_service(segment_duration_s=SEGMENT_DURATION_S, part_target_s=0.5) as service:
        service.create_stream(STREAM, low_latency=True)
        media_url = f"{service.api_url}/streams/{STREAM}/360p/playlist.m3u8"
        deadline = time.monotonic() + 40
        while True:
            service.check_alive()
            response = httpx.get(media_url, timeout=5)
            if response.status_code == 200 and _complete_segments(response.text) >= TWO_SEGMENTS:
                break
            assert time.monotonic() < deadline, f"no two segments in 40 s: {response.text}"
            time.sleep(0.1)
        src = service.hls_url(STREAM)
        first_media_playlists: list[str] = []

        def keep_first_media_playlist(resp: Response) -> None:
            if "/360p/playlist.m3u8" in resp.url and not first_media_playlists:
                first_media_playlists.append(resp.text())

        with player_harness.session("shaka-hls", src) as session:
            session.page.on("response", keep_first_media_playlist)
            session.page.goto(player_url(service.api_url, "shaka-hls", src, low_latency=True))
            state = session.wait_playing(min_advance_s=2.0, timeout_s=25.0)
            diagnostics = session.diagnostics(state)
            assert not state.fatal, diagnostics
            assert not any("load failed" in error for error in state.errors), diagnostics
            assert [level.height for level in state.levels] == [240, 360], diagnostics
            assert first_media_playlists, diagnostics
            # the condition under test: Shaka parsed a playlist with two complete segments
            assert _complete_segments(first_media_playlists[0]) == TWO_SEGMENTS, (
                first_media_playlists[0]
            )
