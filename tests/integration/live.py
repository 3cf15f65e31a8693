"""Real live sources and a real in-process service for integration tests.

A *publisher* is an FFmpeg child encoding ``testsrc2`` + ``sine`` in real time (``-re``) and
serving it as a live source the stream under test pulls: RTMP (FFmpeg as an RTMP server with
``-listen 1``), MPEG-TS over HTTP (FFmpeg's HTTP server), or SRT (listener mode).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import imageio_ffmpeg
import trio

from actors.ffmpeg.process import die_with_this_thread
from actors.packager.bmff import split_stream
from actors.packager.model import Fragment, InitSegment
from actors.status import StreamSpec, StreamState
from actors.stream import StreamActor
from supervisor.config import load_settings
from supervisor.requests import parse_stream_request
from supervisor.service import StreamService
from tests.ports import free_port

FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()
# the cheapest real source: a 240p test pattern + tone, generated in real time
LAVFI_SOURCE = (
    "lavfi:testsrc2=size=426x240:rate=30[out0];sine=frequency=440:sample_rate=48000[out1]"
)


@dataclass
class Publisher:
    """A live source that, like a real media server, accepts a new client after one leaves.

    FFmpeg in listen mode serves a single client and exits when it disconnects; a small thread
    starts it again (the stream under test reconnects after every encoder restart).
    """

    protocol: str
    url: str  # what the stream pulls
    argv: list[str]
    process: subprocess.Popen[bytes] | None = None
    _running: bool = False
    _thread: threading.Thread | None = None
    _spawn_lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> None:
        self._running = True
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        time.sleep(0.5)  # let the first listener bind

    def _loop(self) -> None:
        while True:
            with self._spawn_lock:
                # checked and spawned under the lock that stop() takes: a listener started
                # just after stop() killed the previous one would outlive the test (and be
                # counted as an FFmpeg child by the next test in this process)
                if not self._running:
                    return
                process = subprocess.Popen(
                    self.argv,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    start_new_session=True,
                    preexec_fn=die_with_this_thread(),  # noqa: PLW1509 - prctl only
                )
                self.process = process
            process.wait()
            if self._running:
                time.sleep(0.1)

    def stop(self) -> None:
        """Kill the source (a dead publisher); ``start()`` brings it back."""
        with self._spawn_lock:
            self._running = False
            process = self.process
            if process is not None and process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.process = None


def live_encode_argv(
    *,
    width: int = 640,
    height: int = 360,
    audio: bool = True,
    keyframe_args: tuple[str, ...] = ("-g", "30"),
) -> list[str]:
    """FFmpeg encoding testsrc2 (+ a tone) in real time, up to its output options."""
    source = [
        "-re",
        "-f",
        "lavfi",
        "-i",
        f"testsrc2=size={width}x{height}:rate=30",
    ]
    if audio:
        source += ["-re", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"]
    encode = [
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-tune",
        "zerolatency",
        *keyframe_args,
        "-pix_fmt",
        "yuv420p",
    ]
    if audio:
        encode += ["-c:a", "aac", "-b:a", "96k"]
    return [FFMPEG, "-hide_banner", "-loglevel", "error", "-nostdin", *source, *encode]


def publisher(
    protocol: str,
    *,
    width: int = 640,
    height: int = 360,
    audio: bool = True,
    keyframe_args: tuple[str, ...] = ("-g", "30"),
) -> Publisher:
    """A live source; ``keyframe_args`` decide its GOP (what a passthrough rung's segments follow)."""
    base = live_encode_argv(width=width, height=height, audio=audio, keyframe_args=keyframe_args)
    if protocol == "rtmp":
        port = free_port()
        url = f"rtmp://127.0.0.1:{port}/live/test"
        return Publisher("rtmp", url, [*base, "-f", "flv", "-listen", "1", url])
    if protocol == "http":
        port = free_port()
        url = f"http://127.0.0.1:{port}/live.ts"
        return Publisher("http", url, [*base, "-f", "mpegts", "-listen", "1", url])
    if protocol == "srt":
        port = free_port(socket.SOCK_DGRAM)
        listen = f"srt://127.0.0.1:{port}?mode=listener&latency=50000"
        url = f"srt://127.0.0.1:{port}?mode=caller&latency=50000"
        return Publisher("srt", url, [*base, "-f", "mpegts", listen])
    raise ValueError(protocol)


@contextlib.contextmanager
def running_publisher(protocol: str, **kwargs: object) -> Iterator[Publisher]:
    pub = publisher(protocol, **kwargs)  # type: ignore[arg-type]
    pub.start()
    try:
        yield pub
    finally:
        pub.stop()


def service_env(output_dir: Path, **overrides: str) -> dict[str, str]:
    env = {
        "OUTPUT_DIR": str(output_dir),
        "SEGMENT_DURATION": "1",
        "PLAYLIST_SIZE": "4",
        "SEGMENT_MARGIN": "1",
        "PART_TARGET": "0.5",
        "ENCODER_PRESET": "ultrafast",
        "ALLOWED_PROTOCOLS": "http,https,rtmp,rtmps,rtsp,rtsps,srt,udp,rtp,lavfi,file",
        "CLEANUP_INTERVAL": "60",
        "STALE_THRESHOLD": "600",
        "RTMP_PORT": str(free_port()),  # the push-ingest listener: never the shared default 1935
    }
    env.update(overrides)
    return env


@contextlib.asynccontextmanager
async def running_service(output_dir: Path, **overrides: str) -> AsyncIterator[StreamService]:
    settings = load_settings(service_env(output_dir, **overrides))
    service = StreamService(settings)
    async with trio.open_nursery() as nursery:
        await nursery.start(service.run)
        try:
            yield service
        finally:
            nursery.cancel_scope.cancel()


async def start_stream(
    service: StreamService, stream_id: str, source_url: str, **fields: object
) -> StreamActor:
    body = {"stream_id": stream_id, "source_url": source_url, **fields}
    spec, source = parse_stream_request(
        body,
        allowed_protocols=frozenset(service.settings.allowed_protocols),
        default_low_latency=True,
    )
    assert isinstance(spec, StreamSpec)
    return await service.create(spec, source)


async def wait_for(predicate: object, timeout_s: float, what: str, poll_s: float = 0.1) -> None:
    assert callable(predicate)
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        await trio.sleep(poll_s)


async def wait_segments(actor: StreamActor, count: int, timeout_s: float = 40.0) -> None:
    await wait_for(
        lambda: actor.status.segments_produced >= count,
        timeout_s,
        f"{count} segments (state {actor.status.state}, error {actor.status.last_error})",
    )


async def wait_state(actor: StreamActor, state: StreamState, timeout_s: float = 30.0) -> None:
    await wait_for(lambda: actor.status.state is state, timeout_s, f"state {state}")


def read_media(*paths: Path) -> tuple[InitSegment | None, list[Fragment]]:
    """Parse init + segment files (a segment alone has no ftyp+moov)."""
    records = split_stream(b"".join(p.read_bytes() for p in paths))
    init = next((r for r in records if isinstance(r, InitSegment)), None)
    return init, [r for r in records if isinstance(r, Fragment)]


def ffmpeg_decode_errors(*files: Path) -> str:
    """Decode the concatenation of files with FFmpeg; returns its stderr ('' = clean)."""
    data = b"".join(f.read_bytes() for f in files)
    result = subprocess.run(
        [FFMPEG, "-v", "error", "-i", "pipe:0", "-f", "null", "-"],
        input=data,
        capture_output=True,
        timeout=60,
        check=False,
    )
    errors = result.stderr.decode("utf-8", "replace").strip()
    if result.returncode != 0 and not errors:
        errors = f"exit {result.returncode}"
    return errors


def ffmpeg_pids() -> set[int]:
    """PIDs of running FFmpeg processes that are children of this test process."""
    import psutil  # noqa: PLC0415

    me = psutil.Process()
    found = set()
    for child in me.children(recursive=True):
        with contextlib.suppress(psutil.Error):
            if "ffmpeg" in child.name() and child.status() != psutil.STATUS_ZOMBIE:
                found.add(child.pid)
    return found


async def stable_documents(folder: Path, names: list[str]) -> dict[str, str]:
    """The renditions' playlists as one consistent set: the stream keeps committing while we
    read them one after the other (CI once saw windows one segment apart), so read until two
    passes agree."""
    previous: dict[str, str] = {}
    for _ in range(50):
        current = {name: (folder / name).read_text() for name in names}
        if current == previous:
            return current
        previous = current
        await trio.sleep(0.05)
    raise AssertionError("the playlists never held still")
