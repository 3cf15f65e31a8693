"""A live source whose frames carry their number in pixels, served like a real encoder.

A thread draws raw YUV 4:2:0 frames in real time (a static test picture with the frame counter of
``clockcode`` in a strip at the top) and writes them to one FFmpeg that encodes them (x264
``zerolatency``, a 1 s GOP, plus an AAC tone) to live MPEG-TS on its stdout. The moment each frame
is written is recorded: that is its capture time, what glass-to-glass latency is measured from.

A small HTTP server relays that TS stream to every client from the moment it connects, the way a
hardware encoder or a media server does: a client joins the live stream (and waits for the next
keyframe), nothing is buffered for it before it came, several clients (the service and the FFmpeg
baseline) watch the same clock, and a client that leaves and comes back finds the clock running.
(FFmpeg's own ``-listen 1`` server is not used: it reads and encodes before anyone connects, then
serves that backlog, so the source itself would run seconds behind.)
"""

from __future__ import annotations

import contextlib
import fcntl
import math
import os
import queue
import signal
import struct
import subprocess
import threading
import time
from collections.abc import Iterator
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import IO, Any

from actors.ffmpeg.process import die_with_this_thread
from ops.bench.clockcode import BLACK_Y, COUNTER_LIMIT, render_strip_luma, strip_height_px
from ops.bench.common import FFMPEG

TS_PACKET_BYTES = 188
AUDIO_RATE_HZ = 48_000
AUDIO_TONE_HZ = 440
# A writer more than this late re-anchors its schedule instead of bursting frames to catch up.
_MAX_LATENESS_S = 0.5
# Audio is written this many frames ahead of the video: FFmpeg's scheduler holds the video input
# back while the audio input is behind it, and a video write blocked on that, with the audio for
# that frame not written yet, would deadlock the two pipes.
_AUDIO_LEAD_FRAMES = 15
_AUDIO_PIPE_BYTES = 1 << 20
# A client this far behind (~16 s at 4 Mb/s) is too slow for a live source and is dropped, as a
# media server would; a busy machine's encoder that pauses for a second must not be.
_MAX_CLIENT_BACKLOG_BYTES = 8 << 20


def _test_picture(width: int, height: int) -> tuple[bytes, bytes, bytes]:
    """Luma below the strip, and the two chroma planes: colour bars over a luma ramp."""
    strip_rows = strip_height_px(width)
    gap_rows = 8  # a black gap under the strip keeps its lower edge clean
    luma = bytearray(bytes([BLACK_Y]) * width * gap_rows)
    for y in range(strip_rows + gap_rows, height):
        luma += bytes(16 + (x * 219 // width + y // 4) % 220 for x in range(width))
    half_w, half_h = width // 2, height // 2
    bars = (90, 54, 240, 128, 16, 200, 166, 34)  # Cb of eight colour bars; Cr mirrored
    grey_rows = (strip_rows + gap_rows) // 2  # no colour in the strip: pure black and white
    grey = bytes([128]) * half_w * grey_rows
    cb_row = bytes(bars[x * len(bars) // half_w] for x in range(half_w))
    cr_row = bytes(bars[-1 - x * len(bars) // half_w] for x in range(half_w))
    cb = grey + cb_row * (half_h - grey_rows)
    cr = grey + cr_row * (half_h - grey_rows)
    return bytes(luma), cb, cr


def _tone_second() -> bytes:
    """One second of a 440 Hz tone, s16le mono: whole cycles, so seconds join without a click."""
    return b"".join(
        struct.pack("<h", int(8000 * math.sin(2 * math.pi * AUDIO_TONE_HZ * i / AUDIO_RATE_HZ)))
        for i in range(AUDIO_RATE_HZ)
    )


def encoder_argv(width: int, height: int, fps: int, audio_fd: int, gop_s: int = 1) -> list[str]:
    """FFmpeg reading raw frames on stdin and raw audio on ``audio_fd``, live MPEG-TS on stdout.

    Both inputs are written by the same loop, frame by frame, so their timestamps (counted in
    frames and samples from 0) agree however late the loop runs: no input's clock can hold the
    other back in the muxer's interleaving.
    """
    return [
        FFMPEG,
        *("-hide_banner", "-loglevel", "error", "-nostats"),
        # Raw inputs need no probing, and must not get any: FFmpeg opens inputs one after the
        # other, and probing the audio for seconds while our loop waits to write a video frame
        # would deadlock the two pipes.
        *("-probesize", "32", "-analyzeduration", "0", "-f", "rawvideo", "-pix_fmt", "yuv420p"),
        *("-s", f"{width}x{height}", "-r", str(fps), "-i", "pipe:0"),
        *("-probesize", "32", "-analyzeduration", "0", "-f", "s16le"),
        *("-ar", str(AUDIO_RATE_HZ), "-ac", "1", "-i", f"pipe:{audio_fd}"),
        *("-map", "0:v", "-map", "1:a"),
        # what a live encoder tuned for latency does: no B-frames, no lookahead, a short GOP
        *("-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency"),
        *("-g", str(fps * gop_s), "-keyint_min", str(fps * gop_s)),
        *("-pix_fmt", "yuv420p", "-b:v", "4M"),
        *("-c:a", "aac", "-b:a", "96k"),
        # every TS packet leaves at once: no muxer buffering the benchmark would blame on us
        *("-f", "mpegts", "-flush_packets", "1", "pipe:1"),
    ]


class _Client:
    """One HTTP client's queue of live TS chunks (``queued_bytes`` is guarded by the source)."""

    def __init__(self) -> None:
        self.chunks: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self.queued_bytes = 0


class ClockedSource:
    """The running source: its URL and the wall-clock time each frame counter was written."""

    def __init__(self, width: int, height: int, fps: int, gop_s: int = 1) -> None:
        """``gop_s``: seconds between keyframes; a client joining mid-GOP decodes video only
        from the next one (audio from its first packet)."""
        self.width, self.height, self.fps = width, height, fps
        self._capture_time_s: dict[int, float] = {}
        self._clients: set[_Client] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._packet_phase = 0  # relayed bytes modulo the TS packet size
        self.stalls = 0  # times the frame writer fell more than _MAX_LATENESS_S behind
        self.newest_counter: int | None = None  # the frame handed to the encoder last
        # newest_counter when each client attached: where in the GOP it joined the stream
        self.join_counters: list[int | None] = []
        if AUDIO_RATE_HZ % fps:
            raise ValueError(f"{fps} fps does not divide {AUDIO_RATE_HZ} Hz audio into frames")
        audio_read, audio_write = os.pipe()
        with contextlib.suppress(OSError):  # room for seconds of audio: its writes never block
            fcntl.fcntl(audio_write, fcntl.F_SETPIPE_SZ, _AUDIO_PIPE_BYTES)
        try:
            self.process = subprocess.Popen(
                encoder_argv(width, height, fps, audio_read, gop_s),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                pass_fds=(audio_read,),
                start_new_session=True,
                preexec_fn=die_with_this_thread(),  # noqa: PLW1509 - prctl only
            )
        finally:
            os.close(audio_read)
        self._audio = os.fdopen(audio_write, "wb")
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        host, port = self._server.server_address[:2]
        self.url = f"http://{host!s}:{port}/live.ts"
        self._threads = [
            threading.Thread(target=self._write_frames, name="clock-frames", daemon=True),
            threading.Thread(target=self._relay, name="clock-relay", daemon=True),
            threading.Thread(target=self._server.serve_forever, name="clock-http", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    @property
    def clients(self) -> int:
        with self._lock:
            return len(self._clients)

    def captured_at(self, counter: int) -> float | None:
        """Wall-clock time (``time.time()``) frame ``counter`` was handed to the encoder."""
        with self._lock:
            return self._capture_time_s.get(counter)

    def _write_frames(self) -> None:
        body, cb, cr = _test_picture(self.width, self.height)
        tone = _tone_second()
        audio_bytes_per_frame = len(tone) // self.fps
        stdin = self.process.stdin
        assert stdin is not None
        counter = 0
        anchor_s, first = time.perf_counter(), 0
        while not self._stop.is_set():
            due_s = anchor_s + (counter - first) / self.fps
            wait_s = due_s - time.perf_counter()
            if wait_s > 0:
                time.sleep(wait_s)
            elif wait_s < -_MAX_LATENESS_S:  # starved of CPU: go on from now
                anchor_s, first = time.perf_counter(), counter
                self.stalls += 1
            frame = render_strip_luma(counter % COUNTER_LIMIT, self.width) + body + cb + cr
            written_at = time.time()
            # the audio of frame counter + lead (the first time: of every frame up to it)
            first_audio = counter + _AUDIO_LEAD_FRAMES if counter else 0
            audio = b"".join(
                tone[at : at + audio_bytes_per_frame]
                for at in (
                    (n % self.fps) * audio_bytes_per_frame
                    for n in range(first_audio, counter + _AUDIO_LEAD_FRAMES + 1)
                )
            )
            try:
                self._audio.write(audio)
                self._audio.flush()
                stdin.write(frame)
                stdin.flush()
            except (BrokenPipeError, ValueError, OSError):
                return
            with self._lock:
                self._capture_time_s[counter % COUNTER_LIMIT] = written_at
                self.newest_counter = counter % COUNTER_LIMIT
            counter += 1

    def _relay(self) -> None:
        stdout = self.process.stdout
        assert stdout is not None
        offset = 0  # bytes relayed so far: a new client starts on a TS packet boundary
        while True:
            chunk = stdout.read1(64 * 1024)  # type: ignore[attr-defined]
            if not chunk:
                break
            offset += len(chunk)
            with self._lock:  # a client attaching now gets the next chunk and its phase
                for client in list(self._clients):
                    if client.queued_bytes > _MAX_CLIENT_BACKLOG_BYTES:
                        self._clients.discard(client)
                        client.chunks.put(None)
                        continue
                    client.chunks.put(chunk)
                    client.queued_bytes += len(chunk)
                self._packet_phase = offset % TS_PACKET_BYTES
        with self._lock:
            for client in self._clients:
                client.chunks.put(None)

    def attach(self) -> tuple[_Client, int]:
        """A new client, and how many bytes of its first chunk to skip."""
        client = _Client()
        with self._lock:
            self._clients.add(client)
            self.join_counters.append(self.newest_counter)
            skip = (-self._packet_phase) % TS_PACKET_BYTES
        return client, skip

    def next_chunk(self, client: _Client) -> bytes | None:
        """The client's next chunk of the live stream; None when it ends for this client."""
        chunk = client.chunks.get()
        if chunk is not None:
            with self._lock:
                client.queued_bytes -= len(chunk)
        return chunk

    def detach(self, client: _Client) -> None:
        with self._lock:
            self._clients.discard(client)
        client.chunks.put(None)

    def stop(self) -> None:
        self._stop.set()
        self._server.shutdown()
        self._server.server_close()
        with self._lock:
            for client in self._clients:
                client.chunks.put(None)
        _stop_encoder(self.process, self._audio)
        for thread in self._threads:
            thread.join(timeout=5)


def _handler_for(source: ClockedSource) -> type[BaseHTTPRequestHandler]:
    class LiveTsHandler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"  # no length, the body ends when the stream does

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            if self.path.split("?")[0] != "/live.ts":
                self.send_error(HTTPStatus.NOT_FOUND)
                return
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", "video/mp2t")
            self.send_header("Cache-Control", "no-cache")
            self.end_headers()
            client, skip = source.attach()
            try:
                while (chunk := source.next_chunk(client)) is not None:
                    self.wfile.write(chunk[skip:])
                    self.wfile.flush()
                    skip = 0
            except OSError:
                pass  # the client left
            finally:
                source.detach(client)

    return LiveTsHandler


def _stop_encoder(process: subprocess.Popen[bytes], audio: IO[bytes]) -> None:
    with contextlib.suppress(OSError, ValueError):
        audio.close()
    if process.stdin is not None:
        with contextlib.suppress(OSError, ValueError):
            process.stdin.close()
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=3)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)


@contextlib.contextmanager
def clocked_source(
    width: int = 1280, height: int = 720, fps: int = 30, gop_s: int = 1
) -> Iterator[ClockedSource]:
    """Serve a clocked live source on a free loopback port until the block ends."""
    source = ClockedSource(width, height, fps, gop_s)
    try:
        yield source
    finally:
        source.stop()
