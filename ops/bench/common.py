"""Shared helpers for the benchmarks: the real service as a subprocess, HTTP, CPU accounting.

Benchmarks compare against a baseline run in the same invocation (the machine is shared and
noisy); they print numbers and ratios and assert nothing about speed.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import resource
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import imageio_ffmpeg
import psutil

from actors.ffmpeg.process import die_with_this_thread

ROOT = Path(__file__).resolve().parents[2]
# The service under test runs from this tree (default: this checkout). ops.bench.compare points it
# at a worktree of another commit, so one bench's code measures two versions of the service.
SERVICE_TREE_VARIABLE = "HLSDASH_BENCH_SERVICE_TREE"


def service_tree() -> Path:
    return Path(os.environ.get(SERVICE_TREE_VARIABLE) or ROOT)
FFMPEG = os.environ.get("FFMPEG_PATH") or imageio_ffmpeg.get_ffmpeg_exe()
FPS = 30


def lavfi_source(width: int, height: int, *, audio: bool = True, duration_s: float = 0) -> str:
    """The graph after ``-f lavfi -i`` (testsrc2 + a tone), optionally ending by itself."""
    dur = f":duration={duration_s:g}" if duration_s else ""
    graph = f"testsrc2=size={width}x{height}:rate={FPS}{dur}[out0]"
    if audio:
        graph += f";sine=frequency=440:sample_rate=48000{dur}[out1]"
    return graph


def parse_size(text: str) -> tuple[int, int]:
    width, height = text.lower().split("x")
    return int(width), int(height)


# Kernel receive timestamps (wall clock) on a socket: when an answer really arrived, whatever the
# benchmark process was busy with at the time.
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)  # Linux; not exported by every Python
TIMESTAMP_SPACE = socket.CMSG_SPACE(16)


def kernel_receive_time(ancillary: Sequence[tuple[int, int, bytes]]) -> float | None:
    """The SO_TIMESTAMPNS stamp (unix seconds) in recvmsg()'s ancillary data, if there is one."""
    for level, kind, raw in ancillary:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(raw) >= 16:
            seconds, nanoseconds = struct.unpack("qq", raw[:16])
            return float(seconds + nanoseconds / 1e9)
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def raise_fd_limit(wanted: int = 65536) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = min(wanted, hard) if hard != resource.RLIM_INFINITY else wanted
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def percentile(values: Sequence[float], pct: float) -> float:
    """Linear-interpolated percentile; ``+inf`` values (timeouts, failures) count, never dropped."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = (len(ordered) - 1) * pct / 100
    lo = int(k)
    hi = min(lo + 1, len(ordered) - 1)
    fraction = k - lo
    if fraction == 0 or ordered[lo] == ordered[hi]:
        return ordered[lo]
    if math.isinf(ordered[hi]):
        return math.inf  # any share of an infinite neighbour is infinite (inf - x is not a number)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * fraction


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def fmt_spread(values: Sequence[float], digits: int = 3) -> str:
    """``median (min–max, n=N)`` of repeated measurements."""
    if not values:
        return "n/a"
    return (
        f"{median(values):.{digits}f} "
        f"({min(values):.{digits}f}–{max(values):.{digits}f}, n={len(values)})"
    )


def fmt_ms(seconds: float) -> str:
    """Milliseconds with one decimal; ``inf`` stays ``inf`` (a timeout or a failed answer)."""
    return "inf" if math.isinf(seconds) else f"{seconds * 1000:.1f}"


def cpu_seconds(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return float(times.user + times.system)


def children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


# --- HTTP (standard library, keep-alive not needed for control calls) ---------------------------


def http(
    method: str, url: str, body: object | None = None, timeout: float = 10.0
) -> tuple[int, bytes, dict[str, str]]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        request.add_header("content-type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read(), dict(response.headers.items())
    except urllib.error.HTTPError as error:
        return error.code, error.read(), dict(error.headers.items())


def get_json(url: str) -> dict[str, object]:
    status, body, _ = http("GET", url)
    if status != 200:
        raise RuntimeError(f"GET {url} → {status}: {body[:200]!r}")
    data: dict[str, object] = json.loads(body)
    return data


# --- the service as a real process -------------------------------------------------------------


@dataclass
class Service:
    process: subprocess.Popen[bytes]
    api: str
    origin: str
    origin_port: int
    output_dir: Path
    log_path: Path

    @property
    def ps(self) -> psutil.Process:
        return psutil.Process(self.process.pid)

    def create(self, stream_id: str, source: str, **fields: object) -> dict[str, object]:
        body = {"stream_id": stream_id, "source_url": source, **fields}
        status, data, _ = http("POST", f"{self.api}/streams", body)
        if status != 201:
            raise RuntimeError(f"POST /streams → {status}: {data[:300]!r}")
        result: dict[str, object] = json.loads(data)
        return result

    def delete(self, stream_id: str) -> None:
        http("DELETE", f"{self.api}/streams/{stream_id}", timeout=30)

    def stream(self, stream_id: str) -> dict[str, object]:
        return get_json(f"{self.api}/streams/{stream_id}")

    def wait_segments(self, stream_id: str, count: int, timeout_s: float = 60) -> dict[str, object]:
        deadline = time.monotonic() + timeout_s
        while True:
            info = self.stream(stream_id)
            produced = info.get("segments_produced")
            if isinstance(produced, int) and produced >= count:
                return info
            if time.monotonic() > deadline:
                raise RuntimeError(f"{stream_id}: no {count} segments: {info}")
            time.sleep(0.2)


def service_environment(output_dir: Path, **overrides: str) -> dict[str, str]:
    env = {
        **os.environ,
        "OUTPUT_DIR": str(output_dir),
        "API_HOST": "127.0.0.1",
        "SEGMENT_DURATION": "2",
        "PART_TARGET": "0.5",
        "PLAYLIST_SIZE": "10",
        "MAX_STREAMS": "500",
        "ALLOWED_PROTOCOLS": "http,https,rtmp,rtmps,rtsp,rtsps,srt,udp,rtp,lavfi,file",
        "LOG_LEVEL": "warning",
        "STALE_THRESHOLD": "600",
        "PYTHONPATH": str(service_tree()),
    }
    env.update(overrides)
    return env


@contextlib.contextmanager
def running_service(
    workdir: Path | None = None,
    *,
    ports: tuple[int, int] | None = None,
    log_name: str = "service.log",
    **overrides: str,
) -> Iterator[Service]:
    """``python -m supervisor.cli serve`` on free ports (or ``ports``: API, origin, to start it
    again where players look); SIGTERM (then SIGKILL) at the end."""
    with contextlib.ExitStack() as stack:
        if workdir is None:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="hlsbench-")))
        output_dir = workdir / "streams"
        output_dir.mkdir(parents=True, exist_ok=True)
        api_port, origin_port = ports if ports is not None else (free_port(), free_port())
        env = service_environment(
            output_dir,
            API_PORT=str(api_port),
            ORIGIN_PORT=str(origin_port),
            RTMP_PORT=str(free_port()),  # push ingest: never the shared default 1935
            **overrides,
        )
        log_path = workdir / log_name
        log = stack.enter_context(log_path.open("wb"))
        process = subprocess.Popen(
            [sys.executable, "-m", "supervisor.cli", "serve"],
            env=env,
            cwd=service_tree(),
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=die_with_this_thread(),  # noqa: PLW1509 - prctl only
        )
        service = Service(
            process,
            f"http://127.0.0.1:{api_port}",
            f"http://127.0.0.1:{origin_port}",
            origin_port,
            output_dir,
            log_path,
        )
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    if http("GET", f"{service.api}/health", timeout=2)[0] == 200:
                        break
                except OSError:
                    pass
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("service did not start:\n" + log_path.read_text()[-3000:])
                time.sleep(0.1)
            yield service
        finally:
            stop_process(process, timeout_s=15)


def wait_answering(url: str, process: subprocess.Popen[bytes], timeout_s: float = 10) -> bool:
    """Poll ``url`` until it answers (any status): True, or False if ``process`` exited or
    ``timeout_s`` passed first."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            http("GET", url, timeout=1)
            return True
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                return False
            time.sleep(0.05)


def stop_process(process: subprocess.Popen[bytes], timeout_s: float = 5) -> None:
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def last_part(playlist: str) -> tuple[int, int] | None:
    """(segment number, part index) of the newest EXT-X-PART in a media playlist."""
    found = re.findall(r'#EXT-X-PART:[^\n]*URI="part_(\d+)_(\d+)\.m4s"', playlist)
    if not found:
        return None
    n, k = found[-1]
    return int(n), int(k)


def wait_first_part_and_segment(
    base: str, started: float, timeout_s: float = 60
) -> tuple[float | None, float | None]:
    """Poll the media playlist at ``base``/playlist.m3u8 every 10 ms: seconds from ``started``
    (time.monotonic) until a listed EXT-X-PART, and a listed full segment, are fetched with a 200
    (None: not within ``timeout_s``)."""
    first_part = first_segment = None
    deadline = started + timeout_s
    while (first_part is None or first_segment is None) and time.monotonic() < deadline:
        status, body, _ = http("GET", f"{base}/playlist.m3u8")
        if status == 200:
            text = body.decode()
            if first_part is None:
                part = re.search(r'#EXT-X-PART:[^\n]*URI="([^"]+)"', text)
                if part and http("GET", f"{base}/{part.group(1)}")[0] == 200:
                    first_part = time.monotonic() - started
            if first_segment is None:
                seg = re.search(r"^(seg_\d+\.m4s)$", text, flags=re.MULTILINE)
                if seg and http("GET", f"{base}/{seg.group(1)}")[0] == 200:
                    first_segment = time.monotonic() - started
        time.sleep(0.01)
    return first_part, first_segment


def newest_segment(playlist: str) -> int | None:
    found = re.findall(r"^seg_(\d+)\.m4s", playlist, flags=re.MULTILINE)
    return int(found[-1]) if found else None


def fmt_ratio(num: float, den: float) -> str:
    return f"{num / den:.3f}" if den else "n/a"


def header(title: str) -> None:
    print(f"\n== {title} ==", flush=True)
