"""Control plane under many live streams: API latency at 200 req/s and service RSS per stream.

    python -m ops.bench.control_plane             # ramp up to 64 streams (4 at a time), 20 s load
    python -m ops.bench.control_plane --tiny      # 2 streams, 3 s of load (the smoke test)
    python -m ops.bench.control_plane --passthrough --max 50   # "qualities": ["source"]

Streams are the cheapest real ones: 240p from a 426x240 lavfi source + AAC, x264 ultrafast; or,
with --passthrough, the ``source`` rung (video copied, no x264 at all) from a looping H.264 file
(made once by the bench: 360p, 1 s GOP, AAC), which is what lets one machine carry 50 streams. The
ramp adds streams until an encoder can no longer keep real time (speed < 0.95, a stream not
live) or --max is reached; N is the last count that held. Then GET /streams, GET /streams/{id}
and POST /streams/{id}/heartbeat are sent open-loop at --rate req/s (latency counted from each
request's scheduled time, so a stalled server is not hidden), and the service's RSS (its own
process, FFmpeg excluded) is compared with the idle service.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import random
import subprocess
import tempfile
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ops.bench.common import (
    FFMPEG,
    cpu_seconds,
    header,
    lavfi_source,
    percentile,
    running_service,
)

SOURCE = "lavfi:" + lavfi_source(426, 240)


def passthrough_source(workdir: Path) -> str:
    """A 10 s H.264 + AAC file with a keyframe every second, for ``file:`` looping sources."""
    path = workdir / "source.mp4"
    subprocess.run(
        [
            FFMPEG, "-hide_banner", "-loglevel", "error", "-y",
            "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30",
            "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
            "-t", "10", "-c:v", "libx264", "-preset", "veryfast", "-b:v", "800k",
            "-g", "30", "-keyint_min", "30", "-sc_threshold", "0", "-pix_fmt", "yuv420p",
            "-c:a", "aac", "-b:a", "96k", "-movflags", "+faststart", str(path),
        ],
        check=True,
    )  # fmt: skip
    return f"file://{path}"


def healthy(service, ids: Sequence[str]) -> tuple[bool, float]:  # type: ignore[no-untyped-def]
    """(all live and real time, slowest encoder speed)."""
    slowest = 99.0
    for sid in ids:
        asked = time.monotonic()
        info = service.stream(sid)
        if time.monotonic() - asked > 0.25:  # the API itself must stay responsive
            return False, slowest
        encoder = info.get("encoder") or {}
        speed = float(encoder.get("speed") or 0.0)  # type: ignore[union-attr]
        slowest = min(slowest, speed)
        if info.get("state") != "live" or speed < 0.95:
            return False, slowest
    return True, slowest


def load(api: str, ids: Sequence[str], rate: float, seconds: float) -> dict[str, list[float]]:
    host, port = api.removeprefix("http://").split(":")
    local = threading.local()
    results: dict[str, list[float]] = {"GET /streams": [], "GET /streams/{id}": [], "heartbeat": []}
    errors: list[str] = []
    lock = threading.Lock()
    kinds = list(results)
    start = time.monotonic() + 0.5
    total = int(rate * seconds)

    def job(i: int) -> None:
        scheduled = start + i / rate
        delay = scheduled - time.monotonic()
        if delay < -5:  # hopelessly behind: count it as lost rather than wait forever
            with lock:
                errors.append("skipped (>5 s behind schedule)")
            return
        if delay > 0:
            time.sleep(delay)
        kind = kinds[i % 3]
        sid = random.choice(ids)
        method, path = {
            "GET /streams": ("GET", "/streams"),
            "GET /streams/{id}": ("GET", f"/streams/{sid}"),
            "heartbeat": ("POST", f"/streams/{sid}/heartbeat"),
        }[kind]
        conn = getattr(local, "conn", None)
        if conn is None:
            conn = local.conn = http.client.HTTPConnection(host, int(port), timeout=10)
        try:
            conn.request(method, path)
            response = conn.getresponse()
            response.read()
            status = response.status
        except (OSError, http.client.HTTPException) as error:
            local.conn = None
            with lock:
                errors.append(repr(error))
            return
        took = time.monotonic() - scheduled
        with lock:
            if status != 200:
                errors.append(f"{kind} {status}")
            results[kind].append(took)

    with ThreadPoolExecutor(max_workers=32) as pool:
        list(pool.map(job, range(total)))
    if errors:
        print(f"   {len(errors)} errors, e.g. {errors[:3]}")
    return results


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--max", type=int, default=64, help="most streams to try")
    parser.add_argument("--step", type=int, default=4)
    parser.add_argument("--settle", type=float, default=6, help="seconds after each step")
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--tiny", action="store_true")
    parser.add_argument(
        "--passthrough", action="store_true", help='"source" rung (video copy) from a looping file'
    )
    args = parser.parse_args(argv)
    if args.tiny:
        args.max, args.step, args.settle, args.seconds = 2, 2, 2, 3
    with tempfile.TemporaryDirectory(prefix="hlsbench-cp-") as tmp:
        run(args, Path(tmp))


def run(args: argparse.Namespace, workdir: Path) -> None:
    source, qualities = SOURCE, ["240p"]
    if args.passthrough:
        source, qualities = passthrough_source(workdir), ["source"]
    print(f"control plane bench: streams of {qualities} from {source.split(':')[0]}")
    with running_service(workdir, ENCODER_PRESET="ultrafast") as service:
        time.sleep(1)
        idle_rss = service.ps.memory_info().rss
        ids: list[str] = []
        header(f"ramp (step {args.step}, max {args.max})")
        held: list[str] = []
        while len(ids) < args.max:
            batch = [f"cp{len(ids) + i:03d}" for i in range(min(args.step, args.max - len(ids)))]
            try:
                for sid in batch:
                    ids.append(sid)
                    service.create(sid, source, qualities=qualities, low_latency=True)
                for sid in batch:
                    service.wait_segments(sid, 1, timeout_s=60)
                time.sleep(args.settle)
                ok, slowest = healthy(service, ids)
            except (OSError, RuntimeError) as error:  # an API call timed out: it does not hold
                print(f"{len(ids):3d} streams: control API failed ({error!r}) -> does NOT hold")
                break
            rss = service.ps.memory_info().rss
            print(
                f"{len(ids):3d} streams: slowest encoder {slowest:.2f}x (API < 0.25 s), "
                f"service RSS "
                f"{rss / 2**20:.0f} MiB -> {'holds' if ok else 'does NOT hold'}",
                flush=True,
            )
            if not ok:
                break
            held = list(ids)
        if len(held) < len(ids):
            for sid in ids[len(held) :]:
                with contextlib.suppress(OSError, RuntimeError):
                    service.delete(sid)
            time.sleep(5)
        n = len(held)
        if n == 0:
            print("not even one stream holds real time on this machine now")
            return
        rss = service.ps.memory_info().rss
        header(f"N = {n} live streams: control API at {args.rate:g} req/s for {args.seconds:g} s")
        cpu0, t0 = cpu_seconds(service.ps), time.monotonic()
        results = load(service.api, held, args.rate, args.seconds)
        cpu1, t1 = cpu_seconds(service.ps), time.monotonic()
        for kind, values in results.items():
            print(
                f"{kind:<18} n={len(values):5d}  p50 {percentile(values, 50) * 1000:6.1f} ms  "
                f"p99 {percentile(values, 99) * 1000:6.1f} ms"
            )
        print(
            f"service process CPU during the load (FFmpeg excluded): "
            f"{(cpu1 - cpu0) / (t1 - t0):.2f} cores over {t1 - t0:.1f} s"
        )
        print(
            f"service RSS: idle {idle_rss / 2**20:.1f} MiB, with {n} streams "
            f"{rss / 2**20:.1f} MiB -> {(rss - idle_rss) / n / 2**20:.2f} MiB per stream "
            f"(FFmpeg excluded)"
        )
        for sid in held:
            service.delete(sid)


if __name__ == "__main__":
    main()
