"""WHIP through the whole service: a push stream created with ``"ingest": "whip"``, FFmpeg's own
``whip`` muxer publishing a 720p30 test pattern + tone at 4 Mb/s for over 40 s, waiting → live →
the ladder; the publisher killed (no goodbye) and restarted 5 s later → waiting → live, segment
numbers continue, EXT-X-DISCONTINUITY; and the abuse cases on the same stream while another
stream's segment numbers keep advancing.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import trio

from actors.status import StreamState
from tests.integration.http_helpers import Front, running_front, stream_body
from tests.integration.live import ffmpeg_decode_errors, wait_for
from tests.integration.push import kill
from tests.integration.whip_helpers import (
    FFMPEG_OFFER,
    VP8_ONLY_OFFER,
    post_reading_early,
    whip_peer_children,
    whip_publisher,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]
QUALITIES = ["360p", "240p"]


def numbers(playlist: str) -> list[int]:
    return [int(n) for n in re.findall(r"^seg_(\d+)\.m4s$", playlist, re.MULTILINE)]


async def _abuse(front: Front, stream_id: str, key: str) -> None:
    """Every refusal, on a live stream: none may reach its publisher or another stream."""
    url = f"/streams/{stream_id}/whip"
    sdp = {"Content-Type": "application/sdp"}
    cases = [
        ({**sdp}, FFMPEG_OFFER, 401),
        ({**sdp, "Authorization": "Bearer nope"}, FFMPEG_OFFER, 401),
        ({"Content-Type": "text/plain", "Authorization": f"Bearer {key}"}, FFMPEG_OFFER, 415),
        ({**sdp, "Authorization": f"Bearer {key}"}, VP8_ONLY_OFFER, 400),
        ({**sdp, "Authorization": f"Bearer {key}"}, b"\x16\x03\x01garbage" * 50, 400),
        ({**sdp, "Authorization": f"Bearer {key}"}, FFMPEG_OFFER, 409),  # a second publisher
    ]
    for headers, body, status in cases:
        response = await front.api.post(url, content=body, headers=headers)
        assert response.status_code == status, (status, response.text)
        assert response.json()["error"]["code"]
    status, payload = await trio.to_thread.run_sync(
        post_reading_early,
        f"{front.api_url}{url}",
        FFMPEG_OFFER * 700,  # ~1 MB
        {**sdp, "Authorization": f"Bearer {key}"},
    )
    assert status == 413
    assert json.loads(payload)["error"]["code"] == "offer_too_large"


async def test_whip_publisher_goes_live_reconnects_and_continues(tmp_path: Path) -> None:
    async with running_front(tmp_path, WEBRTC_HOST_ADDRESSES="127.0.0.1") as front:
        other = await front.api.post("/streams", json=stream_body("other"))
        assert other.status_code == 201, other.text
        created = await front.api.post(
            "/streams", json={"stream_id": "w1", "ingest": "whip", "qualities": QUALITIES}
        )
        assert created.status_code == 201, created.text
        ingest = created.json()["ingest"]
        key, publish_url = ingest["stream_key"], ingest["publish_url"]
        assert publish_url.endswith("/streams/w1/whip")
        actor = front.service.get("w1")
        await wait_for(lambda: actor.status.state is StreamState.WAITING, 20, "waiting")
        # a warm spare is ready for the publisher
        await wait_for(lambda: front.service.whip.spare_pid is not None, 5, "a warm spare")

        with whip_publisher(publish_url, key) as publisher:
            await wait_for(lambda: actor.status.state is StreamState.LIVE, 30, "live")
            await wait_for(lambda: actor.status.segments_produced >= 3, 30, "3 segments")
            view = (await front.api.get("/streams/w1")).json()
            assert view["ingest"]["publisher"]["protocol"] == "whip"
            assert view["ingest"]["publisher"]["codec"] == "h264/opus"
            assert view["ingest"]["publisher"]["bitrate_in_bps"] > 1_000_000
            assert view["ingest"]["stream_key"] is None  # shown once, at creation
            master = (await front.api.get("/streams/w1/playlist.m3u8")).text
            for quality in QUALITIES:
                assert f"{quality}/playlist.m3u8" in master

            # abuse while live: the publisher and the other stream do not notice
            other_actor = front.service.get("other")
            other_before = other_actor.status.segments_produced
            w1_before = actor.status.segments_produced
            await _abuse(front, "w1", key)
            await wait_for(
                lambda: other_actor.status.segments_produced >= other_before + 2, 20, "other"
            )
            await wait_for(lambda: actor.status.segments_produced >= w1_before + 2, 20, "w1")
            assert actor.status.state is StreamState.LIVE
            assert len(whip_peer_children(besides=front.service.whip.spare_pid)) == 1

            # ≥ 40 s of publishing in all
            await trio.sleep(max(0.0, 40 - actor.status.segments_produced))
            assert publisher.poll() is None, (
                publisher.stderr.read() if publisher.stderr else b"",
                front.service.get("w1").status,
                front.service.whip.last_end_reason,
            )
            before_kill = actor.status.segments_produced
            kill(publisher)  # no DELETE, no RTCP BYE: gone

        # noticed by the media timeout (3 s), not ICE consent (~30 s)
        await wait_for(lambda: actor.status.state is StreamState.WAITING, 15, "waiting again")
        await trio.sleep(5)
        with whip_publisher(publish_url, key, seconds=30):
            await wait_for(lambda: actor.status.state is StreamState.LIVE, 30, "live again")
            await wait_for(
                lambda: actor.status.segments_produced >= before_kill + 4, 40, "new segments"
            )
        view = (await front.api.get("/streams/w1")).json()
        assert view["ingest"]["reconnects"] == 1
        metrics = (await front.api.get("/metrics")).text
        bytes_in = re.search(
            r'^hlsdash_ingest_bytes_total\{protocol="whip",stream_id="w1"\} (\S+)$',
            metrics,
            re.MULTILINE,
        )
        assert bytes_in is not None, metrics[-2000:]
        assert float(bytes_in.group(1)) > 10_000_000  # > 40 s at 4 Mb/s, both publishers
        assert re.search(
            r'^hlsdash_ingest_reconnects_total\{protocol="whip",stream_id="w1"\} 1\.0$',
            metrics,
            re.MULTILINE,
        )
        playlist = (tmp_path / "w1" / "240p" / "playlist.m3u8").read_text()
        listed = numbers(playlist)
        assert listed == list(range(listed[0], listed[0] + len(listed)))  # no reuse, no gap
        assert "#EXT-X-DISCONTINUITY\n" in playlist
        assert max(listed) >= before_kill
        folder = tmp_path / "w1" / "240p"
        inits = sorted(folder.glob("init*.mp4"))
        newest = folder / f"seg_{max(listed)}.m4s"
        assert ffmpeg_decode_errors(inits[-1], newest) == ""
        await wait_for(
            lambda: not whip_peer_children(besides=front.service.whip.spare_pid),
            15,
            "the sessions' children reaped",
        )
    assert whip_peer_children() == []


async def test_the_publishers_first_picture_is_decoded_and_the_source_described(
    tmp_path: Path,
) -> None:
    """The pipe from a WHIP publisher's first byte is probed briefly and keeps what was probed:
    its first IDR is decoded (this publisher sends the next one 10 s later), and the ladder
    still learns the picture size, frame rate and audio from that short probe. With the probed
    packets dropped (``nobuffer``), FFmpeg saw no IDR: no picture size, and on a busy machine no
    segment within 40 s. (Where video starts in the output is no proof here: the timestamps
    begin at the publisher's first unit of either track, on its RTCP sender reports' clock.)"""
    async with running_front(tmp_path, WEBRTC_HOST_ADDRESSES="127.0.0.1") as front:
        created = await front.api.post(
            "/streams", json={"stream_id": "w2", "ingest": "whip", "qualities": QUALITIES}
        )
        assert created.status_code == 201, created.text
        ingest = created.json()["ingest"]
        actor = front.service.get("w2")
        url, key = ingest["publish_url"], ingest["stream_key"]
        with whip_publisher(url, key, size="640x360", seconds=20, gop_frames=300):
            await wait_for(lambda: actor.status.segments_produced >= 2, 40, "2 segments")
            source = actor.status.source
            assert source is not None
            assert (source.width, source.height, source.frame_rate) == (640, 360, 30.0)
            assert (source.video_codec, source.has_audio) == ("h264", True)
            assert actor.status.qualities == tuple(QUALITIES)


async def test_whip_on_a_stream_that_does_not_take_it(tmp_path: Path) -> None:
    async with running_front(tmp_path, WEBRTC_HOST_ADDRESSES="127.0.0.1") as front:
        await front.api.post("/streams", json=stream_body("pulled"))
        rtmp = await front.api.post("/streams", json={"stream_id": "r1", "ingest": "rtmp"})
        rtmp_key = rtmp.json()["ingest"]["stream_key"]
        headers = {"Content-Type": "application/sdp", "Authorization": f"Bearer {rtmp_key}"}
        for stream_id in ("pulled", "r1", "nope"):
            response = await front.api.post(
                f"/streams/{stream_id}/whip", content=FFMPEG_OFFER, headers=headers
            )
            assert response.status_code == 404, response.text
            assert response.json()["error"]["code"] == "stream_not_found"
        preflight = await front.api.options("/streams/r1/whip")
        assert preflight.status_code == 204
        assert "GET" not in preflight.headers.get("allow", "")
        assert whip_peer_children() == []
