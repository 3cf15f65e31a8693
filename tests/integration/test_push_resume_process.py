"""Push streams outlive the process (issue 14 for issue 12's streams), with ``hlsdash serve`` as a
real process and FFmpeg publishers: an RTMP stream is live, its key was rotated, the service is
SIGKILLed and started again → the stream is ``waiting`` with the same (rotated) key; the old key
is still refused, a publisher with the current key makes it live again numbered above everything
published before, with a discontinuity. An SRT stream comes back on the same port with the same
passphrase (even when a lower port of the range is free) and its publisher is accepted."""

from __future__ import annotations

import json
import signal
import socket
import time
import urllib.request
from pathlib import Path

import pytest

from tests.integration.live import free_port
from tests.integration.push import kill, publishing, start_publisher
from tests.integration.test_resume_process import media_playlist, wait_live_above
from tests.integration.test_service_process import get_json, served, wait_gone

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PUBLISH_SIZE = "640x360"  # small: the test checks resume, not the ladder


def call(api_port: int, method: str, path: str, body: object = None) -> dict[str, object]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{api_port}{path}",
        data=None if body is None else json.dumps(body).encode(),
        headers={"content-type": "application/json"},
        method=method,
    )
    with urllib.request.urlopen(request, timeout=15) as response:
        payload: dict[str, object] = json.loads(response.read())
        return payload


def create_push(api_port: int, stream_id: str, protocol: str) -> dict[str, object]:
    created = call(
        api_port, "POST", "/streams",
        {"stream_id": stream_id, "ingest": protocol, "qualities": ["240p"], "low_latency": True},
    )  # fmt: skip
    ingest = created["ingest"]
    assert isinstance(ingest, dict)
    return ingest


def wait_state(api_port: int, stream_id: str, state: str, timeout_s: float) -> dict[str, object]:
    deadline = time.monotonic() + timeout_s
    while True:
        stream = get_json(f"http://127.0.0.1:{api_port}/streams/{stream_id}")
        if stream["state"] == state:
            return stream
        if time.monotonic() > deadline:
            raise AssertionError(f"{stream_id}: {stream['state']}, not {state}: {stream}")
        time.sleep(0.2)


def two_free_udp_ports() -> int:
    """``p`` with ``p`` and ``p + 1`` both free for UDP on loopback."""
    for _ in range(50):
        port = free_port(socket.SOCK_DGRAM)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            try:
                probe.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise AssertionError("no two adjacent free UDP ports")


def test_push_streams_resume_waiting_with_their_keys_after_sigkill(tmp_path: Path) -> None:
    ports = (free_port(), free_port())
    srt_first = two_free_udp_ports()
    settings = {"RTMP_PORT": str(free_port()), "SRT_PORT_RANGE": f"{srt_first}-{srt_first + 1}"}
    with served(tmp_path, ports=ports, **settings) as (process, api_port, origin_port):
        first_key_url = str(create_push(api_port, "cam", "rtmp")["publish_url"])
        rotated = call(api_port, "POST", "/streams/cam/ingest/rotate-key")["ingest"]
        assert isinstance(rotated, dict)
        publish_url = str(rotated["publish_url"])
        # SRT: the first stream takes the lowest port and is deleted (its record with it), so
        # the one kept sits on the second port, and a resume that just took the first free
        # port would move it
        create_push(api_port, "srt-gone", "srt")
        srt = create_push(api_port, "srtcam", "srt")
        assert srt["port"] == srt_first + 1
        call(api_port, "DELETE", "/streams/srt-gone")
        with publishing(publish_url, "flv", size=PUBLISH_SIZE):
            wait_state(api_port, "cam", "live", 40)
            deadline = time.monotonic() + 30
            while len(media_playlist(origin_port, "cam").numbers) < 3:
                assert time.monotonic() < deadline, "no segments from the publisher"
                time.sleep(0.3)
            encoder = get_json(f"http://127.0.0.1:{api_port}/streams/cam")["encoder"]
            assert isinstance(encoder, dict)
            before = media_playlist(origin_port, "cam")
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=20)
        assert wait_gone(int(encoder["pid"]), 5), "FFmpeg outlived its service"
    newest_seen = max(before.numbers)

    with served(tmp_path, ports=ports, log_name="service-2.log", **settings) as (
        _,
        api_port,
        origin_port,
    ):
        cam = wait_state(api_port, "cam", "waiting", 20)
        assert cam["ingest"]["stream_key"] is None  # type: ignore[index]  # never shown again
        srtcam = wait_state(api_port, "srtcam", "waiting", 20)
        assert srtcam["ingest"]["port"] == srt_first + 1  # type: ignore[index]
        listed = get_json(f"http://127.0.0.1:{api_port}/streams")["streams"]
        assert isinstance(listed, list)
        assert sorted(s["stream_id"] for s in listed) == ["cam", "srtcam"]  # not srt-gone

        # the key rotated before the restart is still revoked after it
        old = start_publisher(first_key_url, "flv", size=PUBLISH_SIZE)
        assert old.wait(timeout=20) != 0
        assert old.stderr is not None
        assert b"unknown stream or wrong stream key" in old.stderr.read()
        kill(old)
        assert get_json(f"http://127.0.0.1:{api_port}/streams/cam")["state"] == "waiting"

        srt_url = str(srt["publish_url"])
        with (
            publishing(publish_url, "flv", size=PUBLISH_SIZE),
            publishing(srt_url, "mpegts", size=PUBLISH_SIZE),
        ):
            wait_live_above(origin_port, api_port, newest_seen, timeout_s=40, stream_id="cam")
            after = media_playlist(origin_port, "cam")
            wait_state(api_port, "srtcam", "live", 40)  # the old passphrase, the old port
        # numbers only go up, past anything published before; players are told of the break
        assert min(after.numbers) > newest_seen
        assert after.discontinuity_sequence >= before.discontinuity_sequence + 1
        stream = get_json(f"http://127.0.0.1:{api_port}/streams/cam")
        assert stream["ingest"]["publishes"] == 1  # type: ignore[index]  # this process's
