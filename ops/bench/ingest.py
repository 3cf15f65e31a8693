"""Push ingest cost and start-up: RTMP push vs pulling the same media over HTTP, same run.

    python -m ops.bench.ingest              # 720p30 clip → 720p/360p ladder, 20 s windows
    python -m ops.bench.ingest --tiny       # 240p → 240p, 4 s windows (the smoke test)

One real service (subprocess, RTMP_PORT on a free port). The media is one clip encoded once
(testsrc2 + tone, x264, 1 s GOP) and sent twice, each time by an FFmpeg copying it in real time
(``-re -c copy``): (a) *pull*: FFmpeg serves it as FLV over HTTP (``-listen 1``) and a stream pulls
it; (b) *push*: FFmpeg publishes it to the stream's RTMP ``publish_url``. Both carry the same bytes
in the same container (FLV), so the difference is the ingest path: FFmpeg's own HTTP client
vs our RTMP listener (Python: chunk stream, FLV re-wrap) plus a pipe.

CPU per ingested media second = CPU seconds of the service process and its FFmpeg children over
a steady window (after the stream is live) / the window's wall seconds (the media is real time).
The publishing FFmpeg is ours, not the service's, and is not counted. "Publish → first part" is
from starting the publisher (push; the stream already waits) or from POST (pull) to the first
LL-HLS part fetched from the origin. Noisy on a shared machine: compare the ratio within a run.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import psutil

from actors.ffmpeg.process import die_with_this_thread
from ops.bench.common import (
    FFMPEG,
    cpu_seconds,
    fmt_ratio,
    free_port,
    header,
    http,
    lavfi_source,
    parse_size,
    running_service,
    stop_process,
)


def make_clip(path: Path, width: int, height: int, seconds: float) -> None:
    subprocess.run(
        [
            FFMPEG, "-hide_banner", "-loglevel", "error", "-y",
            "-f", "lavfi", "-i", lavfi_source(width, height, duration_s=seconds),
            "-c:v", "libx264", "-preset", "veryfast", "-g", "30", "-pix_fmt", "yuv420p",
            "-c:a", "aac", "-b:a", "128k", "-f", "flv", str(path),
        ],
        check=True,
        timeout=600,
    )  # fmt: skip


def sender(clip: Path, url: str, *, listen: bool) -> subprocess.Popen[bytes]:
    argv = [FFMPEG, "-hide_banner", "-loglevel", "error", "-nostdin", "-re", "-i", str(clip)]
    argv += ["-c", "copy", "-f", "flv", *(["-listen", "1"] if listen else []), url]
    return subprocess.Popen(
        argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        preexec_fn=die_with_this_thread(),  # noqa: PLW1509 - prctl only
    )


def tree_cpu_s(service: psutil.Process) -> tuple[float, float]:
    """(service process alone, service + its children) CPU seconds."""
    own = cpu_seconds(service)
    total = own
    for child in service.children(recursive=True):
        try:
            total += cpu_seconds(child)
        except psutil.Error:
            continue
    return own, total


def first_part_s(origin: str, stream_id: str, rendition: str, started: float) -> float:
    base = f"{origin}/{stream_id}/{rendition}"
    deadline = started + 60
    while time.monotonic() < deadline:
        status, body, _ = http("GET", f"{base}/playlist.m3u8")
        if status == 200:
            part = re.search(r'#EXT-X-PART:[^\n]*URI="([^"]+)"', body.decode())
            if part and http("GET", f"{base}/{part.group(1)}")[0] == 200:
                return time.monotonic() - started
        time.sleep(0.01)
    return float("inf")


def wait_live(api: str, stream_id: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status, body, _ = http("GET", f"{api}/streams/{stream_id}")
        if status == 200 and b'"state": "live"' in body:
            return
        time.sleep(0.1)
    raise RuntimeError(f"{stream_id} not live in {timeout_s} s")


def measure(service_ps: psutil.Process, window_s: float) -> tuple[float, float]:
    """(service-only, whole tree) CPU seconds per wall second over ``window_s``."""
    own0, total0 = tree_cpu_s(service_ps)
    started = time.monotonic()
    time.sleep(window_s)
    own1, total1 = tree_cpu_s(service_ps)
    elapsed = time.monotonic() - started
    return (own1 - own0) / elapsed, (total1 - total0) / elapsed


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", default="1280x720")
    parser.add_argument("--qualities", default="720p,360p")
    parser.add_argument("--window", type=float, default=20.0, help="steady window, seconds")
    parser.add_argument("--tiny", action="store_true")
    args = parser.parse_args(argv)
    if args.tiny:
        args.size, args.qualities, args.window = "426x240", "240p", 4.0
    width, height = parse_size(args.size)
    qualities = args.qualities.split(",")
    # long enough for start-up + the window, both cases
    clip_s = args.window + 25.0
    with tempfile.TemporaryDirectory(prefix="hlsbench-ingest-") as scratch:
        clip = Path(scratch) / "clip.flv"
        make_clip(clip, width, height, clip_s)
        # running_service gives the RTMP listener a free port; the publish_url names it
        with running_service(ENCODER_PRESET="veryfast") as service:
            header(
                f"ingest: {args.size} clip → {qualities}, {args.window:g} s windows, "
                "pull (HTTP, FFmpeg reads) vs push (RTMP, our listener)"
            )
            results: dict[str, tuple[float, float, float]] = {}
            # (a) pull over HTTP
            port = free_port()
            url = f"http://127.0.0.1:{port}/live.flv"
            served = sender(clip, url, listen=True)
            try:
                time.sleep(0.5)  # the HTTP listener binds
                started = time.monotonic()
                service.create("pull", url, qualities=qualities, low_latency=True)
                first = first_part_s(service.origin, "pull", qualities[0], started)
                wait_live(service.api, "pull")
                own, total = measure(service.ps, args.window)
                results["pull"] = (own, total, first)
                service.delete("pull")
            finally:
                stop_process(served)
            # (b) push over RTMP
            status, body, _ = http(
                "POST",
                f"{service.api}/streams",
                {"stream_id": "push", "ingest": "rtmp", "qualities": qualities,
                 "low_latency": True},
            )  # fmt: skip
            if status != 201:
                raise RuntimeError(f"POST /streams (push) → {status}: {body[:300]!r}")
            publish_url = re.search(rb'"publish_url": "([^"]+)"', body)
            assert publish_url is not None
            started = time.monotonic()
            pushed = sender(clip, publish_url.group(1).decode(), listen=False)
            try:
                first = first_part_s(service.origin, "push", qualities[0], started)
                wait_live(service.api, "push")
                own, total = measure(service.ps, args.window)
                results["push"] = (own, total, first)
            finally:
                stop_process(pushed)
            for name, (own, total, first) in results.items():
                print(
                    f"{name}: {total:.3f} CPU-s per media second (service process alone "
                    f"{own:.3f}), start → first part {first * 1000:.0f} ms",
                    flush=True,
                )
            pull_own, pull_total, pull_first = results["pull"]
            push_own, push_total, push_first = results["push"]
            print(
                f"ratios push/pull: CPU per media second {fmt_ratio(push_total, pull_total)}, "
                f"service process alone {fmt_ratio(push_own, pull_own)}, first part "
                f"{fmt_ratio(push_first, pull_first)}; push ingest adds "
                f"{(push_total - pull_total) / pull_total * 100:+.1f} % to the stream's CPU"
                if pull_total
                else "ratios: n/a (no pull CPU measured)",
                flush=True,
            )


if __name__ == "__main__":
    main()
