"""WHIP test helpers: FFmpeg's own WHIP muxer as the publisher, and offers that must be refused."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import threading
import urllib.parse
from collections.abc import AsyncIterator, Iterator, Mapping
from functools import partial
from pathlib import Path

import psutil
import trio
from quart_trio import QuartTrio

from actors.ffmpeg.process import die_with_this_thread
from actors.ingest.whip_session import WhipPeerSettings
from supervisor.config import load_settings
from supervisor.http.api_server import serve_api
from supervisor.http.whip_routes import register_whip_routes
from supervisor.ingest.whip import WhipIngest, WhipTarget
from tests.integration.live import FFMPEG, free_port
from tests.integration.push import kill

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "whip"
FFMPEG_OFFER = (FIXTURES / "ffmpeg_offer.sdp").read_bytes()
VP8_ONLY_OFFER = FFMPEG_OFFER.replace(b"H264/90000", b"VP8/90000")
AUDIO_ONLY_OFFER = FFMPEG_OFFER[: FFMPEG_OFFER.index(b"m=video")]


def whip_publisher_argv(
    url: str,
    key: str,
    *,
    size: str = "1280x720",
    rate: int = 30,
    video_bitrate: str = "4M",
    seconds: float | None = None,
    gop_frames: int | None = None,
) -> list[str]:
    """FFmpeg publishing a test pattern + tone over WHIP (its ``whip`` muxer), in real time, an
    IDR every ``gop_frames`` (default: every second)."""
    duration = ["-t", f"{seconds:g}"] if seconds is not None else []
    return [
        FFMPEG, "-hide_banner", "-loglevel", "error", "-nostdin",
        "-re", "-f", "lavfi", "-i", f"testsrc2=size={size}:rate={rate}",
        "-re", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
        *duration,
        "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-bf", "0",
        "-g", str(gop_frames or rate), "-b:v", video_bitrate, "-pix_fmt", "yuv420p",
        "-c:a", "libopus", "-ac", "2", "-ar", "48000", "-b:a", "64k",
        "-f", "whip", "-authorization", key, url,
    ]  # fmt: skip


def start_whip_publisher(url: str, key: str, **kwargs: object) -> subprocess.Popen[bytes]:
    """A running FFmpeg WHIP publisher (niced: it shares 2 cores with the service under test),
    in its own process group (``tests.integration.push.kill`` ends it without a goodbye)."""
    return subprocess.Popen(
        ["nice", "-n", "10", *whip_publisher_argv(url, key, **kwargs)],  # type: ignore[arg-type]
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
        preexec_fn=die_with_this_thread(),  # noqa: PLW1509 - prctl only
    )


@contextlib.contextmanager
def whip_publisher(url: str, key: str, **kwargs: object) -> Iterator[subprocess.Popen[bytes]]:
    """``start_whip_publisher`` for the block; killed (its whole group) on exit."""
    process = start_whip_publisher(url, key, **kwargs)
    try:
        yield process
    finally:
        kill(process)


def whip_peer_children(*, besides: int | None = None) -> list[psutil.Process]:
    """The WHIP peer children of this process still alive, but for the pid ``besides`` (the
    warm spare): none must outlive its session."""
    found = []
    for child in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            cmdline = " ".join(child.cmdline())
            if child.pid == besides or "actors.ingest.whip_peer" not in cmdline:
                continue
            if child.status() != psutil.STATUS_ZOMBIE:
                found.append(child)
    return found


def post_reading_early(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
    """POST ``body`` while reading the answer, as a careful client does: the service answers an
    oversized request (413) from its Content-Length alone and closes without reading the rest
    (Hypercorn has no lingering close), so a client that writes the whole megabyte first may get
    a connection reset instead of the answer. Returns (status, response body)."""
    parsed = urllib.parse.urlsplit(url)
    head = [f"POST {parsed.path} HTTP/1.1", f"Host: {parsed.netloc}", "Connection: close"]
    head += [f"{name}: {value}" for name, value in headers.items()]
    head.append(f"Content-Length: {len(body)}")
    with socket.create_connection((parsed.hostname, parsed.port or 80), timeout=10) as sock:
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())

        def send_body() -> None:
            with contextlib.suppress(OSError):
                sock.sendall(body)

        sender = threading.Thread(target=send_body, daemon=True)
        sender.start()
        received = b""
        with contextlib.suppress(OSError):
            while chunk := sock.recv(65536):
                received += chunk
        sender.join(timeout=10)
    status_line, _, rest = received.partition(b"\r\n")
    _, _, payload = rest.partition(b"\r\n\r\n")
    return int(status_line.split()[1]), payload


@contextlib.asynccontextmanager
async def serve_whip(
    targets: Mapping[str, WhipTarget], *, trust_forwarded_address: bool = False
) -> AsyncIterator[tuple[str, WhipIngest]]:
    """The WHIP routes alone (Quart-Trio on Hypercorn, 127.0.0.1, a free port) over stand-in
    push streams (``targets``: stream id → target), with a prepared warm spare; yields the base
    URL and the ingest. ``trust_forwarded_address``: as a cluster node's routes are."""

    def lookup(stream_id: str) -> WhipTarget:
        return targets[stream_id]  # KeyError is a LookupError: 404

    ingest = WhipIngest(
        peer_settings=WhipPeerSettings(host_addresses=("127.0.0.1",)), lookup=lookup
    )
    app = QuartTrio(__name__)
    register_whip_routes(app, ingest, trust_forwarded_address=trust_forwarded_address)
    port = free_port()
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        await nursery.start(ingest.run)
        ingest.prepare()  # as the service does when a WHIP stream is created
        await nursery.start(
            partial(serve_api, app, load_settings({"API_HOST": "127.0.0.1"}), port, stop.wait)
        )
        try:
            yield f"http://127.0.0.1:{port}", ingest
        finally:
            stop.set()
            nursery.cancel_scope.cancel()
