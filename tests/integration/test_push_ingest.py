"""Push ingest end to end: FFmpeg publishes to the service (RTMP, SRT) through the HTTP contract;
waiting → live → waiting → live, numbers continue across the publisher's reconnect with
EXT-X-DISCONTINUITY; wrong keys are refused before any FFmpeg spawns, a second publisher while
one is live is refused (RTMP)."""

from __future__ import annotations

import re
import socket
from pathlib import Path

import pytest
import trio

from actors.ingest.publisher import IngestProtocol
from tests.integration.http_helpers import (
    Front,
    assert_error,
    running_front,
    stream_body,
    wait_live_segments,
)
from tests.integration.live import free_port, wait_for
from tests.integration.push import (
    kill,
    one_keyframe_clip,
    publishing,
    sending_clip,
    start_publisher,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

QUALITIES = ["360p", "240p"]
# 1 s segments: each publisher session publishes ~20 s, so FFmpeg publishes for >= 40 s in all
SEGMENTS_PER_SESSION = 20


async def _state(front: Front, stream_id: str) -> dict[str, object]:
    response = await front.api.get(f"/streams/{stream_id}")
    assert response.status_code == 200, response.text
    payload: dict[str, object] = response.json()
    return payload


async def _wait_state(front: Front, stream_id: str, state: str, timeout_s: float) -> None:
    actor = front.service.get(stream_id)
    await wait_for(
        lambda: actor.status.state.value == state,
        timeout_s,
        f"{stream_id} {state} (now {actor.status.state}, error {actor.status.last_error})",
    )


def _numbers(playlist: str) -> list[int]:
    return [int(n) for n in re.findall(r"seg_(\d+)\.m4s", playlist)]


async def _publish_reconnect_and_check(
    front: Front, stream_id: str, publish_url: str, container: str
) -> None:
    actor = front.service.get(stream_id)
    assert actor.status.state.value == "waiting"
    assert actor.status.encoder_pid is None  # nothing runs before a publisher comes
    rendition = front.service.settings.output_dir / stream_id / "240p" / "playlist.m3u8"

    with publishing(publish_url, container) as first:
        await _wait_state(front, stream_id, "live", 40)
        await wait_live_segments(front, stream_id, SEGMENTS_PER_SESSION, timeout_s=60)
        body = await _state(front, stream_id)
        ingest = body["ingest"]
        assert isinstance(ingest, dict)
        publisher = ingest["publisher"]
        assert isinstance(publisher, dict), ingest
        assert publisher["protocol"] == container_protocol(container)
        assert publisher["bytes_in"] > 100_000
        assert ingest["stream_key"] is None  # shown once, at creation
        assert body["audio"] is True  # the short FLV probe still finds both tracks
        assert body["source"]["height"] == 720  # type: ignore[index]
        assert body["qualities_produced"] == QUALITIES
        if container == "flv":
            # a second publisher while one is live is refused; the first goes on
            second = start_publisher(publish_url, "flv", size="640x360")
            returncode = await trio.to_thread.run_sync(lambda: second.wait(timeout=20))
            assert returncode != 0
            assert second.stderr is not None
            assert b"already has a publisher" in second.stderr.read()
            kill(second)
        assert first.poll() is None
    before = _numbers(rendition.read_text())
    epoch_before = actor.status.epoch
    # the publisher was SIGKILLed: the stream goes back to waiting, not failed nor restarting
    await _wait_state(front, stream_id, "waiting", 15)
    assert actor.status.restarts == 0
    await trio.sleep(5)
    assert actor.status.state.value == "waiting"
    with publishing(publish_url, container):
        await _wait_state(front, stream_id, "live", 40)
        produced = actor.status.segments_produced
        await wait_live_segments(front, stream_id, produced + SEGMENTS_PER_SESSION, timeout_s=60)
        after_text = rendition.read_text()
        after = _numbers(after_text)
        body = await _state(front, stream_id)
    assert min(after) > max(before) - len(before)  # the window moved on, never back
    assert max(after) > max(before)
    assert after == sorted(after)
    assert "#EXT-X-DISCONTINUITY" in after_text
    assert actor.status.epoch == epoch_before + 1
    ingest = body["ingest"]
    assert isinstance(ingest, dict)
    assert ingest["reconnects"] == 1
    assert actor.status.restarts == 0
    assert body["history"][0]["state"] == "waiting"  # type: ignore[index]


def container_protocol(container: str) -> str:
    return "rtmp" if container == "flv" else "srt"


async def test_rtmp_publish_reconnect_continues_the_timeline(tmp_path: Path) -> None:
    async with running_front(tmp_path, RTMP_PORT=str(free_port())) as front:
        response = await front.api.post(
            "/streams", json={"stream_id": "cam", "ingest": "rtmp", "qualities": QUALITIES}
        )
        assert response.status_code == 201, response.text
        assert response.headers["cache-control"] == "no-store"
        ingest = response.json()["ingest"]
        key = ingest["stream_key"]
        port = front.service.rtmp_port
        assert ingest["server"] == f"rtmp://127.0.0.1:{port}/live"
        assert ingest["publish_url"] == f"rtmp://127.0.0.1:{port}/live/{key}"
        assert key.startswith("cam.")

        # a wrong key is refused at publish, before any FFmpeg is spawned
        wrong = start_publisher(f"rtmp://127.0.0.1:{port}/live/cam.{'A' * 32}", "flv")
        returncode = await trio.to_thread.run_sync(lambda: wrong.wait(timeout=20))
        assert returncode != 0
        assert wrong.stderr is not None
        assert b"unknown stream or wrong stream key" in wrong.stderr.read()
        kill(wrong)
        assert front.service.get("cam").status.encoder_pid is None

        await _publish_reconnect_and_check(front, "cam", ingest["publish_url"], "flv")


async def test_an_rtmp_publishers_first_picture_is_decoded(tmp_path: Path) -> None:
    """The pipe from an RTMP publisher's first byte (sequence headers, then a keyframe) keeps
    what FFmpeg probed: that first keyframe is decoded, and the short probe still describes the
    source. The publisher sends a clip as it is, whose only keyframe is its first frame: with the
    probed packets dropped (``nobuffer``) no video segment ever came (a live publisher with a
    10 s GOP: video began 11.4 s in)."""
    clip = await trio.to_thread.run_sync(one_keyframe_clip, tmp_path / "clip.flv")
    async with running_front(tmp_path, RTMP_PORT=str(free_port())) as front:
        response = await front.api.post(
            "/streams", json={"stream_id": "cam", "ingest": "rtmp", "qualities": QUALITIES}
        )
        assert response.status_code == 201, response.text
        actor = front.service.get("cam")
        with sending_clip(clip, response.json()["ingest"]["publish_url"]):
            await wait_for(lambda: actor.status.segments_produced >= 2, 30, "2 segments")
            source = actor.status.source
            assert source is not None
            assert (source.width, source.height, source.frame_rate) == (640, 360, 30.0)
            assert (source.video_codec, source.has_audio) == ("h264", True)


async def test_srt_publish_reconnect_continues_the_timeline(tmp_path: Path) -> None:
    port = free_port(socket.SOCK_DGRAM)
    async with running_front(tmp_path, SRT_PORT_RANGE=f"{port}-{port}") as front:
        response = await front.api.post(
            "/streams",
            json={
                "stream_id": "srtcam",
                "ingest": "srt",
                "qualities": QUALITIES,
                "srt_latency_ms": 80,
            },
        )
        assert response.status_code == 201, response.text
        ingest = response.json()["ingest"]
        key = ingest["stream_key"]
        assert len(key) == 32
        assert ingest["latency_ms"] == 80
        assert ingest["publish_url"].endswith(f"?passphrase={key}&pbkeylen=16")
        await trio.sleep(1)  # the relay binds its port

        wrong_url = ingest["publish_url"].replace(key, "x" * 32)
        wrong = start_publisher(wrong_url, "mpegts")
        returncode = await trio.to_thread.run_sync(lambda: wrong.wait(timeout=20))
        assert returncode != 0
        kill(wrong)
        assert front.service.get("srtcam").status.state.value == "waiting"
        assert front.service.get("srtcam").status.encoder_pid is None

        await _publish_reconnect_and_check(front, "srtcam", ingest["publish_url"], "mpegts")


async def test_the_push_contract_over_http(tmp_path: Path) -> None:
    """422 for both/neither, the key shown once and stored hashed, rotate-key, 404/409."""
    async with running_front(tmp_path) as front:
        both = await front.api.post(
            "/streams", json={"stream_id": "x", "ingest": "rtmp", "source_url": "rtmp://h/a"}
        )
        assert_error(both, 422, "source_and_ingest")
        neither = await front.api.post("/streams", json={"stream_id": "x"})
        assert_error(neither, 422, "source_or_ingest_required")
        created = await front.api.post("/streams", json={"stream_id": "cam", "ingest": "rtmp"})
        assert created.status_code == 201, created.text
        old_key = created.json()["ingest"]["stream_key"]
        assert created.json()["state"] == "waiting"
        shown = (await front.api.get("/streams/cam")).json()["ingest"]
        assert shown["stream_key"] is None
        assert old_key not in (await front.api.get("/streams")).text

        rotated = await front.api.post("/streams/cam/ingest/rotate-key")
        assert rotated.status_code == 200, rotated.text
        assert rotated.headers["cache-control"] == "no-store"
        new_key = rotated.json()["ingest"]["stream_key"]
        assert new_key != old_key
        assert rotated.json()["ingest"]["publish_url"].endswith(f"/live/{new_key}")
        push = front.service.push_input("cam", IngestProtocol.RTMP)
        assert push is not None
        assert push.check_key(new_key)
        assert not push.check_key(old_key)
        assert front.service.push_input("cam", IngestProtocol.SRT) is None

        pulled = await front.api.post("/streams", json=stream_body("pulled"))
        assert pulled.status_code == 201
        assert pulled.json()["ingest"] is None
        assert_error(await front.api.post("/streams/pulled/ingest/rotate-key"), 409)
        assert_error(await front.api.post("/streams/nope/ingest/rotate-key"), 404)
        assert_error(await front.api.get("/streams/cam/ingest/rotate-key"), 405)


async def test_a_replan_under_a_connected_publisher_replays_its_preamble(tmp_path: Path) -> None:
    """720p asked of a 360p publisher: the ladder is re-planned (a second FFmpeg) while the
    publisher stays connected; that FFmpeg reads the FLV header and codec configuration again
    first, so the stream goes live without the publisher reconnecting."""
    async with running_front(tmp_path, RTMP_PORT=str(free_port())) as front:
        response = await front.api.post(
            "/streams", json={"stream_id": "small", "ingest": "rtmp", "qualities": ["720p", "240p"]}
        )
        url = response.json()["ingest"]["publish_url"]
        with publishing(url, "flv", size="640x360") as publisher:
            await _wait_state(front, "small", "live", 40)
            await wait_live_segments(front, "small", 3)
            body = await _state(front, "small")
            assert body["qualities_produced"] == ["240p"]
            assert body["qualities_dropped"] == ["720p"]
            assert body["audio"] is True
            assert body["ingest"]["publishes"] == 1  # type: ignore[index]
            assert publisher.poll() is None
