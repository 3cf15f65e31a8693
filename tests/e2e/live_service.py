"""Run the real hlsdash service (``hlsdash serve``) as a subprocess for the e2e player tests.

No fakes: the service is the installed console script, the source is a real live FFmpeg
``lavfi`` source (test pattern + sine), streams are created through ``POST /streams`` and
players fetch from the real control API (playback routes) and the real CDN origin.

Plain synchronous code (``httpx.Client``, ``subprocess``) on purpose: it is used from plain
``def`` tests next to Playwright's sync API, never from trio.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from actors.ffmpeg.process import die_with_this_thread
from tests.ports import free_port

HLSDASH_EXE = Path(sys.executable).with_name("hlsdash")

# A real live source: 30 fps test pattern (with a running clock burned in by testsrc2) and a
# 440 Hz tone, generated in real time by FFmpeg's lavfi device.
LIVE_SOURCE = "lavfi:testsrc2=size=640x360:rate=30[out0];sine=frequency=440:sample_rate=48000[out1]"
QUALITIES: tuple[str, ...] = ("360p", "240p")
QUALITY_HEIGHTS: dict[str, int] = {"360p": 360, "240p": 240, "480p": 480, "720p": 720}


@dataclass(slots=True)
class LiveService:
    """A running ``hlsdash serve`` and a client for its control API."""

    proc: subprocess.Popen[bytes]
    api_port: int
    origin_port: int
    output_dir: Path
    log_path: Path
    client: httpx.Client

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def origin_url(self) -> str:
        return f"http://127.0.0.1:{self.origin_port}"

    # ------------------------------------------------------------------ playback URLs

    def hls_url(self, stream_id: str) -> str:
        return f"{self.api_url}/streams/{stream_id}/playlist.m3u8"

    def dash_url(self, stream_id: str) -> str:
        return f"{self.api_url}/streams/{stream_id}/manifest.mpd"

    def cdn_hls_url(self, stream_id: str) -> str:
        return f"{self.origin_url}/{stream_id}/playlist.m3u8"

    def cdn_dash_url(self, stream_id: str) -> str:
        return f"{self.origin_url}/{stream_id}/manifest.mpd"

    # ------------------------------------------------------------------ control API

    def create_stream(
        self,
        stream_id: str,
        *,
        low_latency: bool,
        qualities: tuple[str, ...] = QUALITIES,
        source_url: str = LIVE_SOURCE,
    ) -> dict[str, Any]:
        resp = self.client.post(
            "/streams",
            json={
                "stream_id": stream_id,
                "source_url": source_url,
                "qualities": list(qualities),
                "low_latency": low_latency,
            },
        )
        assert resp.status_code in (200, 201, 202), (resp.status_code, resp.text)
        return dict(resp.json())

    def status(self, stream_id: str) -> dict[str, Any]:
        resp = self.client.get(f"/streams/{stream_id}")
        assert resp.status_code == 200, (resp.status_code, resp.text)
        return dict(resp.json())

    def wait_segments(
        self, stream_id: str, *, at_least: int = 3, timeout_s: float = 30.0
    ) -> dict[str, Any]:
        """Wait until the stream is live with ``at_least`` segments produced."""
        deadline = time.monotonic() + timeout_s
        status: dict[str, Any] = {}
        while time.monotonic() < deadline:
            self.check_alive()
            status = self.status(stream_id)
            if status["state"] in {"failed", "stopped", "stale"}:
                raise AssertionError(f"stream {stream_id} ended: {status}\n{self.log_tail()}")
            if status["state"] == "live" and status["segments_produced"] >= at_least:
                return status
            time.sleep(0.25)
        raise AssertionError(f"stream {stream_id} not live in {timeout_s} s: {status}")

    def kill_encoder(self, stream_id: str) -> int:
        """SIGKILL the stream's FFmpeg; return the killed pid."""
        status = self.status(stream_id)
        pid = int(status["encoder"]["pid"])
        assert pid > 0, status
        os.kill(pid, signal.SIGKILL)
        return pid

    def wait_restarted(
        self, stream_id: str, *, old_pid: int, old_segments: int, timeout_s: float = 20.0
    ) -> dict[str, Any]:
        """Wait for a new FFmpeg (new pid, restarts +1) that produces new segments again."""
        deadline = time.monotonic() + timeout_s
        status: dict[str, Any] = {}
        while time.monotonic() < deadline:
            status = self.status(stream_id)
            pid = (status.get("encoder") or {}).get("pid")
            if (
                status["state"] == "live"
                and pid not in (None, old_pid)
                and status["restarts"] >= 1
                and status["segments_produced"] >= old_segments + 2
            ):
                return status
            time.sleep(0.25)
        raise AssertionError(f"stream {stream_id} did not restart in {timeout_s} s: {status}")

    def delete_stream(self, stream_id: str) -> None:
        self.client.delete(f"/streams/{stream_id}")

    # ------------------------------------------------------------------ process

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            raise AssertionError(
                f"hlsdash serve exited with {self.proc.returncode}\n{self.log_tail()}"
            )

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "<no log>"
        return "\n".join(text.splitlines()[-lines:])


@contextmanager
def run_service(
    *,
    segment_duration_s: float = 1.0,
    part_target_s: float = 0.5,
    extra_env: Mapping[str, str] | None = None,
    startup_timeout_s: float = 20.0,
) -> Iterator[LiveService]:
    """Start ``hlsdash serve`` on free ports with a throw-away OUTPUT_DIR; stop it after."""
    root = Path(tempfile.mkdtemp(prefix="hlsdash-e2e-"))
    api_port, origin_port = free_port(), free_port()
    while origin_port == api_port:
        origin_port = free_port()
    # the caller's shell must not switch auth on by accident; extra_env may (API_TOKEN tests)
    inherited = {k: v for k, v in os.environ.items() if k != "API_TOKEN"}
    env = {
        **inherited,
        "OUTPUT_DIR": str(root / "out"),
        "API_HOST": "127.0.0.1",
        "API_PORT": str(api_port),
        "ORIGIN_PORT": str(origin_port),
        "RTMP_PORT": str(free_port()),  # the push-ingest listener: never the shared default 1935
        "ALLOWED_PROTOCOLS": "http,https,rtmp,rtsp,srt,udp,rtp,lavfi",
        "SEGMENT_DURATION": f"{segment_duration_s:g}",
        "PART_TARGET": f"{part_target_s:g}",
        "ENCODER_PRESET": "ultrafast",
        "LOG_LEVEL": "info",
        **(extra_env or {}),
    }
    log_path = root / "serve.log"
    with log_path.open("wb") as log_file:
        proc = subprocess.Popen(
            [str(HLSDASH_EXE), "serve"],
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=die_with_this_thread(),  # noqa: PLW1509 - prctl only
        )
    client = httpx.Client(base_url=f"http://127.0.0.1:{api_port}", timeout=10.0)
    service = LiveService(proc, api_port, origin_port, root / "out", log_path, client)
    try:
        deadline = time.monotonic() + startup_timeout_s
        while True:
            service.check_alive()
            try:
                if client.get("/health").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"hlsdash serve not healthy\n{service.log_tail()}")
            time.sleep(0.2)
        yield service
    finally:
        client.close()
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        shutil.rmtree(root, ignore_errors=True)
