"""The source host policy and listener-mode refusal against the real service and real FFmpeg
(issue 11, defects 2, 3 and 10c).

Only loopback traffic: 169.254.169.254 is refused before anything connects, "a name resolving to a
denied address" is ``localhost`` with loopback denied, and the connect-time check is proven with a
redirect to 127.0.0.2, a loopback address the test's policy denies.
"""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import trio

from actors.ffmpeg.process import die_with_this_thread
from actors.status import StreamState
from tests.integration.http_helpers import Front, assert_error, running_front, stream_body
from tests.integration.live import (
    FFMPEG,
    LAVFI_SOURCE,
    Publisher,
    ffmpeg_pids,
    free_port,
    running_publisher,
    wait_for,
)
from tests.threaded_http import QuietHandler, serving

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
DENIED_LOOPBACK = "127.0.0.2"  # on lo like all of 127/8; the tests' policy denies it


async def post_source(front: Front, stream_id: str, source_url: str) -> dict[str, object]:
    response = await front.api.post("/streams", json=stream_body(stream_id, source_url=source_url))
    error = assert_error(response, 422)
    assert error["field"] == "source_url", error
    return error


async def test_ssrf_and_listener_sources_are_422_and_nothing_starts(tmp_path: Path) -> None:
    async with running_front(tmp_path / "out") as front:
        own_api = f"http://localhost:{front.api_port}/streams"
        refused = {
            "metadata": ("http://169.254.169.254/latest/meta-data/iam/", "cloud metadata"),
            "metadata-v6": ("http://[fd00:ec2::254]/latest/", "cloud metadata"),
            "metadata-name": ("http://metadata.google.internal/computeMetadata/v1/", "metadata"),
            "link-local": ("rtsp://169.254.10.20/cam", "link-local"),
            "own-port": (own_api, "own listener"),  # a name: resolved, then refused
            "srt-listener": ("srt://127.0.0.1:9000?mode=listener", "mode=listener"),
            "udp-at": ("udp://@:1234", "'@'"),
            "udp-unicast": ("udp://127.0.0.1:1234", "multicast group"),
            "rtmp-listen": ("rtmp://127.0.0.1/live/x?listen=1", "'listen'"),
        }
        for stream_id, (url, reason) in refused.items():
            error = await post_source(front, stream_id, url)
            assert reason in str(error["message"]), (url, error)
            assert error["code"] == "source_refused"
        listed = (await front.api.get("/streams")).json()
        assert listed == {"streams": []}
        assert ffmpeg_pids() == set()  # our children only


async def test_a_name_resolving_to_a_denied_address_is_422(tmp_path: Path) -> None:
    async with running_front(tmp_path / "out", SOURCE_DENY_LOOPBACK="true") as front:
        error = await post_source(front, "via-name", "http://localhost:8080/live.ts")
        assert "'localhost' resolves to a refused address" in str(error["message"])
        assert "loopback" in str(error["message"])


async def test_an_allowed_loopback_http_source_goes_live_under_the_watch(tmp_path: Path) -> None:
    with running_publisher("http", width=426, height=240, audio=False) as pub:
        async with running_front(tmp_path / "out") as front:
            assert front.service.stream_settings.source_watch is not None
            response = await front.api.post(
                "/streams", json=stream_body("loop-http", source_url=pub.url)
            )
            assert response.status_code == 201, response.text
            actor = front.service.get("loop-http")
            await wait_for(
                lambda: actor.status.segments_produced >= 2,
                40,
                f"segments (state {actor.status.state}, error {actor.status.last_error})",
            )
            assert actor.status.state is StreamState.LIVE
            # (a restart is possible: the publisher may not listen yet on the first try)
            assert "refused address" not in (actor.status.last_error or "")
            await trio.sleep(1.5)  # the watch keeps polling FFmpeg's peers: still live
            assert actor.status.state is StreamState.LIVE


@contextlib.contextmanager
def redirecting_to(target: str) -> Iterator[str]:
    """An allowed HTTP source on 127.0.0.1 that 302-redirects every request to ``target``."""

    class Redirect(QuietHandler):
        def do_GET(self) -> None:
            self.send_response(302)
            self.send_header("Location", target)
            self.send_header("Content-Length", "0")
            self.end_headers()

    with serving(Redirect) as url:
        yield url


@contextlib.contextmanager
def holding_server(host: str) -> Iterator[tuple[int, list[socket.socket]]]:
    """Accepts connections on ``host`` and never answers (a peer that keeps FFmpeg connected)."""
    listener = socket.create_server((host, 0))
    listener.settimeout(0.2)
    accepted: list[socket.socket] = []
    running = True

    def accept() -> None:
        while running:
            with contextlib.suppress(TimeoutError, OSError):
                accepted.append(listener.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1], accepted
    finally:
        running = False
        thread.join(timeout=5)
        for conn in accepted:
            conn.close()
        listener.close()


async def test_a_redirect_to_a_denied_address_stops_the_stream(tmp_path: Path) -> None:
    with (
        holding_server(DENIED_LOOPBACK) as (held_port, accepted),
        redirecting_to(f"http://{DENIED_LOOPBACK}:{held_port}/held.ts") as source_url,
    ):
        async with running_front(
            tmp_path / "out", SOURCE_DENY_NETWORKS=f"{DENIED_LOOPBACK}/32"
        ) as front:
            # admitted: 127.0.0.1 is allowed; only FFmpeg's redirect reaches the denied address
            response = await front.api.post(
                "/streams", json=stream_body("redirected", source_url=source_url)
            )
            assert response.status_code == 201, response.text
            actor = front.service.get("redirected")
            await wait_for(actor.finished.is_set, 20, "the stream to end")
            assert actor.status.state is StreamState.FAILED
            error = actor.status.last_error or ""
            assert error.startswith("FFmpeg connected to a refused address"), error
            assert f"{DENIED_LOOPBACK} is in a network the operator denies" in error
            assert actor.status.restarts == 0  # not restarted into the same redirect
            assert accepted  # FFmpeg did follow the redirect: the watch saw the real peer
            view = (await front.api.get("/streams/redirected")).json()
            assert view["state"] == "failed"
            assert view["last_error"] == error
            await wait_for(lambda: not ffmpeg_pids(), 10, "FFmpeg to be gone")


@pytest.mark.parametrize("protocol", ["tcp", "rist"])
async def test_tcp_and_rist_sources_work_once_the_operator_adds_them(
    protocol: str, tmp_path: Path
) -> None:
    port = free_port(socket.SOCK_STREAM if protocol == "tcp" else socket.SOCK_DGRAM)
    serve, pull = {
        "tcp": (f"tcp://127.0.0.1:{port}?listen=1", f"tcp://127.0.0.1:{port}"),
        "rist": (f"rist://@127.0.0.1:{port}", f"rist://127.0.0.1:{port}"),
    }[protocol]
    pub = Publisher(
        protocol,
        pull,
        [FFMPEG, "-hide_banner", "-loglevel", "error", "-nostdin", "-re", "-f", "lavfi",
         "-i", "testsrc2=size=426x240:rate=30", "-c:v", "libx264", "-preset", "ultrafast",
         "-tune", "zerolatency", "-g", "30", "-pix_fmt", "yuv420p", "-f", "mpegts", serve],
    )  # fmt: skip
    pub.start()
    try:
        async with running_front(
            tmp_path / "out", ALLOWED_PROTOCOLS=f"http,rtmp,srt,{protocol}"
        ) as front:
            # the publisher's own listener-mode URL stays refused on the pull path
            await post_source(front, "as-listener", serve)
            response = await front.api.post(
                "/streams", json=stream_body(f"via-{protocol}", source_url=pull)
            )
            assert response.status_code == 201, response.text
            actor = front.service.get(f"via-{protocol}")
            await wait_for(
                lambda: actor.status.segments_produced >= 2,
                40,
                f"segments (state {actor.status.state}, error {actor.status.last_error})",
            )
            assert actor.status.state is StreamState.LIVE
    finally:
        pub.stop()


# ---------------------------------------------------------------- hlsdash demo (defect 2)


def _api(port: int, method: str, path: str, body: object = None) -> tuple[int, dict[str, object]]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=data,
        method=method,
        headers={"content-type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_demo_listens_on_loopback_and_refuses_lavfi_from_clients(tmp_path: Path) -> None:
    api_port, origin_port, rtmp_port = free_port(), free_port(), free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "supervisor.cli", "demo", "--api-port", str(api_port),
         "--origin-port", str(origin_port), "--rtmp-port", str(rtmp_port),
         "--output-dir", str(tmp_path / "demo"),
         "--encoder-preset", "ultrafast", "--log-level", "warning"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        preexec_fn=die_with_this_thread(),  # noqa: PLW1509 - prctl only
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        status: int | None = None
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                status, demo = _api(api_port, "GET", "/streams/demo")
                if status == 200:
                    break
            time.sleep(0.2)
        assert status == 200, "the demo stream never appeared"
        assert str(demo["source_url"]).startswith("lavfi:testsrc2")  # built by the service
        listening = {
            (c.laddr.ip, c.laddr.port)
            for c in psutil.Process(process.pid).net_connections(kind="inet")
            if c.status == psutil.CONN_LISTEN
        }
        # every listener on loopback, the push-ingest RTMP one included
        assert listening == {
            ("127.0.0.1", api_port),
            ("127.0.0.1", origin_port),
            ("127.0.0.1", rtmp_port),
        }
        status, body = _api(
            api_port, "POST", "/streams", {"stream_id": "mine", "source_url": LAVFI_SOURCE}
        )
        assert status == 422
        error = body["error"]
        assert isinstance(error, dict)
        assert error["field"] == "source_url"
        assert error["message"] == "protocol 'lavfi' is not allowed"
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    assert process.returncode == 0
