"""WHIP ingest against real publishers: FFmpeg's ``whip`` muxer → our RFC 9725 routes → the aiortc
child (H.264 passed through undecoded, Opus) → MPEG-TS → a real FFmpeg that decodes it once.

The stream side here is a small decoding target (the push-stream seam's shape: key check, one
publisher, a byte feed into FFmpeg's stdin); the full service path (waiting → live → ladder) is in
``test_whip_stream.py``.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from functools import partial

import httpx
import pytest
import trio

from supervisor.cluster.front import CLIENT_ADDRESS_HEADER, FORWARDED_HEADER
from supervisor.ingest.whip import FeedGoneError, PublisherBusyError, WhipIngest
from tests.integration.live import FFMPEG, wait_for
from tests.integration.whip_helpers import (
    AUDIO_ONLY_OFFER,
    FFMPEG_OFFER,
    VP8_ONLY_OFFER,
    post_reading_early,
    serve_whip,
    whip_peer_children,
    whip_publisher,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]
KEY = "cam.0123456789abcdefghijklmnopqrstuv"


@dataclass
class DecodedInput:
    video_frames: int
    audio_frames: int
    video_pts: list[int]


@dataclass
class _Feed:
    send_channel: trio.MemorySendChannel[bytes]
    codec: str | None = None
    bytes_sent: int = 0
    runs: int = 1  # one FFmpeg per publisher here
    ended: trio.Event = field(default_factory=trio.Event)

    async def send(self, data: bytes) -> None:
        self.bytes_sent += len(data)
        try:
            await self.send_channel.send(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            raise FeedGoneError("decoder gone") from None

    def note_codec(self, codec: str) -> None:
        self.codec = codec

    def end(self) -> None:
        self.send_channel.close()
        self.ended.set()


@dataclass
class DecodingTarget:
    """A push stream reduced to its input: each publisher's bytes go to a fresh FFmpeg that
    decodes everything (``-f framecrc``: one line per decoded frame, per stream)."""

    nursery: trio.Nursery
    feeds: list[_Feed] = field(default_factory=list)
    results: list[DecodedInput] = field(default_factory=list)
    publisher_addresses: list[str] = field(default_factory=list)

    def check_key(self, candidate: str) -> bool:
        return hmac.compare_digest(candidate.encode(), KEY.encode())

    @property
    def busy(self) -> bool:
        return any(not feed.ended.is_set() for feed in self.feeds)

    def attach_publisher(self, address: str) -> _Feed:
        if self.busy:
            raise PublisherBusyError("already publishing")
        self.publisher_addresses.append(address)
        send, receive = trio.open_memory_channel[bytes](256)
        feed = _Feed(send)
        self.feeds.append(feed)
        self.nursery.start_soon(self._decode, receive)
        return feed

    async def _decode(self, receive: trio.MemoryReceiveChannel[bytes]) -> None:
        argv = [FFMPEG, "-hide_banner", "-loglevel", "error", "-f", "mpegts", "-i", "pipe:0",
                "-map", "0", "-f", "framecrc", "-"]  # fmt: skip
        process = await trio.lowlevel.open_process(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
        )
        assert process.stdin is not None
        assert process.stdout is not None
        out = bytearray()

        async def read() -> None:
            assert process.stdout is not None
            while chunk := await process.stdout.receive_some():
                out.extend(chunk)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(read)
            async with receive:
                async for chunk in receive:
                    await process.stdin.send_all(chunk)
            await process.stdin.aclose()
        await process.wait()
        lines = [line for line in out.decode().splitlines() if not line.startswith("#")]
        video = [line for line in lines if line.startswith("0,")]
        self.results.append(
            DecodedInput(
                video_frames=len(video),
                audio_frames=sum(1 for line in lines if line.startswith("1,")),
                video_pts=[int(line.split(",")[1]) for line in video],
            )
        )


@contextlib.asynccontextmanager
async def whip_front(
    nursery: trio.Nursery,
) -> AsyncIterator[tuple[str, DecodingTarget, WhipIngest]]:
    target = DecodingTarget(nursery)
    async with serve_whip({"cam": target}) as (base, ingest):
        yield base, target, ingest


async def test_ffmpeg_publishes_over_whip_and_the_input_decodes_once(nursery: trio.Nursery) -> None:
    async with whip_front(nursery) as (base, target, ingest):
        url = f"{base}/streams/cam/whip"
        with whip_publisher(url, KEY, seconds=6) as publisher:
            await wait_for(lambda: target.feeds, 15, "the publisher attached")
            await wait_for(lambda: ingest.session_count("cam") == 1, 5, "a session")
            # FFmpeg ends after 6 s of media and DELETEs its session
            await trio.to_thread.run_sync(partial(publisher.wait, 40))
            assert publisher.returncode == 0, publisher.stderr.read() if publisher.stderr else ""
        await wait_for(lambda: target.results, 20, "the decoder finished")
        await wait_for(lambda: ingest.session_count() == 0, 10, "the session to end")
    decoded = target.results[0]
    # 6 s at 30 fps = 180 pictures. UDP on a loaded 2-core machine loses a burst now and then
    # (the peer's socket buffer overflows while it is descheduled), so: most of them, and
    assert decoded.video_frames >= 120, decoded
    assert decoded.audio_frames >= 200, decoded  # 20 ms Opus frames: 300 in 6 s
    assert target.feeds[0].codec == "h264/opus"
    # one timeline: framecrc counts video PTS in frames (1/30 s); they only ever go forward,
    # and almost always by exactly one frame
    steps = [b - a for a, b in zip(decoded.video_pts, decoded.video_pts[1:], strict=False)]
    assert min(steps) >= 1, steps
    assert steps.count(1) >= 0.9 * len(steps), steps


async def test_the_warm_spare_answers_the_next_publish_and_nothing_outlives_the_service(
    nursery: trio.Nursery,
) -> None:
    async with whip_front(nursery) as (base, _, ingest):
        spare = ingest.spare_pid
        assert spare is not None
        assert [p.pid for p in whip_peer_children()] == [spare]
        with whip_publisher(f"{base}/streams/cam/whip", KEY, size="426x240", seconds=2):
            await wait_for(lambda: ingest.session_ids("cam"), 15, "a session")
            (session_id,) = ingest.session_ids("cam")
            status = ingest.session_status(session_id)
            assert status is not None
            assert status.pid == spare  # the spare answered
            assert ingest.spare_pid not in {None, spare}  # and a new one waits
            await wait_for(lambda: not ingest.session_ids(), 20, "the session to end")
        assert [p.pid for p in whip_peer_children()] == [ingest.spare_pid]
    # the service (the ingest's nursery) ended: the spare is reaped too
    await wait_for(lambda: not whip_peer_children(), 10, "no WHIP peer children")


async def _post(
    client: httpx.AsyncClient, path: str, body: bytes, **headers: str
) -> httpx.Response:
    return await client.post(path, content=body, headers=headers)


async def test_refusals_are_clean_json_with_cors_and_spawn_nothing(nursery: trio.Nursery) -> None:
    async with (
        whip_front(nursery) as (base, target, ingest),
        httpx.AsyncClient(base_url=base) as client,
    ):
        sdp = "application/sdp"
        auth = f"Bearer {KEY}"
        cases = [
            ("/streams/nope/whip", FFMPEG_OFFER, {"Content-Type": sdp, "Authorization": auth},
             404, "stream_not_found"),
            ("/streams/cam/whip", FFMPEG_OFFER, {"Content-Type": sdp}, 401, "unauthorized"),
            ("/streams/cam/whip", FFMPEG_OFFER,
             {"Content-Type": sdp, "Authorization": "Bearer wrong"}, 401, "unauthorized"),
            ("/streams/cam/whip", FFMPEG_OFFER,
             {"Content-Type": sdp, "Authorization": KEY}, 401, "unauthorized"),
            ("/streams/cam/whip", FFMPEG_OFFER,
             {"Content-Type": "application/json", "Authorization": auth},
             415, "unsupported_media_type"),
            ("/streams/cam/whip", AUDIO_ONLY_OFFER, {"Content-Type": sdp, "Authorization": auth},
             400, "sdp_no_video"),
            ("/streams/cam/whip", VP8_ONLY_OFFER, {"Content-Type": sdp, "Authorization": auth},
             400, "sdp_no_h264"),
            ("/streams/cam/whip", b"\x00\xff" * 500, {"Content-Type": sdp, "Authorization": auth},
             400, "sdp_invalid"),
            # passes the text checks, but H.264 packetization-mode 0 only: aiortc has no match
            ("/streams/cam/whip", FFMPEG_OFFER.replace(b"packetization-mode=1", b"packetization-mode=0"),
             {"Content-Type": sdp, "Authorization": auth}, 400, "offer_refused"),
        ]  # fmt: skip
        for path, body, headers, status, code in cases:
            response = await _post(client, path, body, **headers)
            assert response.status_code == status, (code, response.text)
            assert response.json()["error"]["code"] == code
            assert response.headers["access-control-allow-origin"] == "*"
            if status == 401:
                assert response.headers["www-authenticate"].startswith("Bearer")
        status, payload = await trio.to_thread.run_sync(
            post_reading_early,
            f"{base}/streams/cam/whip",
            FFMPEG_OFFER * 700,  # ~1 MB
            {"Content-Type": sdp, "Authorization": auth},
        )
        assert status == 413
        assert json.loads(payload)["error"]["code"] == "offer_too_large"
        preflight = await client.options("/streams/cam/whip")
        assert preflight.status_code == 204
        assert preflight.headers["accept-post"] == "application/sdp"
        assert "Authorization" in preflight.headers["access-control-allow-headers"]
        assert "Location" in preflight.headers["access-control-expose-headers"]
        missing = await client.delete("/streams/cam/whip/not-a-session")
        assert missing.status_code == 404
        assert missing.json()["error"]["code"] == "session_not_found"
        # the refused offers attached nothing and left no child behind (the spare was used up
        # by the one offer that reached a peer, and replaced)
        assert target.feeds == []
        await wait_for(
            lambda: not whip_peer_children(besides=ingest.spare_pid), 10, "no WHIP peer children"
        )


async def test_a_second_publisher_is_409_and_the_first_keeps_publishing(
    nursery: trio.Nursery,
) -> None:
    async with (
        whip_front(nursery) as (base, target, ingest),
        httpx.AsyncClient(base_url=base) as client,
    ):
        with whip_publisher(f"{base}/streams/cam/whip", KEY, size="640x360", seconds=20):
            await wait_for(lambda: target.feeds, 15, "the first publisher attached")
            await wait_for(lambda: target.feeds[0].bytes_sent > 100_000, 15, "media flowing")
            second = await _post(
                client, "/streams/cam/whip", FFMPEG_OFFER,
                **{"Content-Type": "application/sdp", "Authorization": f"Bearer {KEY}"},
            )  # fmt: skip
            assert second.status_code == 409
            assert second.json()["error"]["code"] == "publisher_exists"
            assert len(target.feeds) == 1
            assert ingest.session_count("cam") == 1
            assert not target.feeds[0].ended.is_set()
            assert len(whip_peer_children(besides=ingest.spare_pid)) == 1
            # DELETE of the first session (as a browser would) ends it; the stream is free again
            (session_id,) = ingest.session_ids("cam")
            deleted = await client.delete(f"/streams/cam/whip/{session_id}")
            assert deleted.status_code == 200
            await wait_for(target.feeds[0].ended.is_set, 10, "the session ended")
            await wait_for(lambda: target.results, 20, "the decoder finished")
        assert target.results[0].video_frames > 0
        await wait_for(
            lambda: not whip_peer_children(besides=ingest.spare_pid), 10, "no WHIP peer children"
        )


@pytest.mark.parametrize("in_a_cluster", [True, False], ids=["cluster", "single"])
async def test_a_forwarded_offer_records_the_publishers_address_only_in_a_cluster(
    nursery: trio.Nursery, in_a_cluster: bool
) -> None:
    """A cluster node forwards a WHIP offer for a stream another node runs, naming the address
    it came from: the owner records that, not the forwarding node's. A single node ignores the
    headers: nothing forwards to it, so they could only be a publisher lying about itself."""
    target = DecodingTarget(nursery)
    async with (
        serve_whip({"cam": target}, trust_forwarded_address=in_a_cluster) as (base, ingest),
        httpx.AsyncClient(base_url=base) as client,
    ):
        answer = await _post(
            client, "/streams/cam/whip", FFMPEG_OFFER,
            **{"Content-Type": "application/sdp", "Authorization": f"Bearer {KEY}",
               FORWARDED_HEADER: "n1", CLIENT_ADDRESS_HEADER: "203.0.113.7"},
        )  # fmt: skip
        assert answer.status_code == 201, answer.text
        assert target.publisher_addresses == ["203.0.113.7" if in_a_cluster else "127.0.0.1"]
        deleted = await client.delete(answer.headers["Location"])
        assert deleted.status_code == 200
        await wait_for(
            lambda: not whip_peer_children(besides=ingest.spare_pid), 10, "no WHIP peer children"
        )
