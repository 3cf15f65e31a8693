"""Origin throughput: hlsdash origin vs plain nginx vs nginx in front (ops/nginx/hlsdash.conf).

    python -m ops.bench.origin                 # wrk -t2 -c64 -d5s per case, ~500 KB segment
    python -m ops.bench.origin --tiny          # 1 s per case (the smoke test)

A real service runs one stream (360p, 5 s segments at 800 kb/s ≈ 500 KB). Cases, same bytes:
hlsdash origin (segment from its memory, LL playlist), plain nginx serving a snapshot of those
exact bytes, and nginx with the shipped hlsdash.conf (segment from OUTPUT_DIR, playlist proxied to
the origin). Both nginx run under the same http-level settings (worker_processes auto, sendfile,
tcp_nopush, keep-alive) and plain nginx gets the shipped file's own ``open_file_cache`` lines, so
the baseline is nginx at its best, not a handicapped one.

Only successful answers are throughput: wrk's "Non-2xx or 3xx responses" (wrk 4 counts status
>= 400 there; 3xx cannot arise here, every URL is first checked to answer 200) and its socket
errors are reported per row as errors, and req/s and MB/s count 2xx responses only. Prints ratios
against plain nginx, then checks LL-HLS blocking reload and a growing segment through the front.
"""

from __future__ import annotations

import argparse
import math
import re
import shutil
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from actors.ffmpeg.process import die_with_this_thread
from ops.bench.common import (
    ROOT,
    fmt_ratio,
    free_port,
    header,
    http,
    last_part,
    lavfi_source,
    newest_segment,
    running_service,
    stop_process,
    wait_answering,
)

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
WRK = shutil.which("wrk") or "/usr/bin/wrk"
SHIPPED_CONF = ROOT / "ops" / "nginx" / "hlsdash.conf"
STREAM = "bench"


def nginx_main_conf(workdir: Path, server_block: str) -> str:
    return f"""
user root;
worker_processes auto;
daemon off;
pid {workdir}/nginx.pid;
error_log {workdir}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 100000;
    client_body_temp_path {workdir}/body;
    proxy_temp_path {workdir}/proxy;
    fastcgi_temp_path {workdir}/fastcgi;
    uwsgi_temp_path {workdir}/uwsgi;
    scgi_temp_path {workdir}/scgi;
    types {{ application/vnd.apple.mpegurl m3u8; video/mp4 m4s mp4; }}
{server_block}
}}
"""


def shipped_file_cache_directives() -> list[str]:
    """The ``open_file_cache*`` lines of the shipped front config, for the plain baseline."""
    found = [
        line.strip()
        for line in SHIPPED_CONF.read_text().splitlines()
        if line.strip().startswith("open_file_cache")
    ]
    if not found:
        raise RuntimeError(f"no open_file_cache in {SHIPPED_CONF}: update plain_server()")
    return found


def plain_server(port: int, root: Path) -> str:
    file_cache = "\n    ".join(shipped_file_cache_directives())
    return f"""
server {{
    listen 127.0.0.1:{port};
    root {root};
    {file_cache}
    location / {{
        add_header Cache-Control "public, max-age=31536000, immutable";
        add_header Access-Control-Allow-Origin "*";
    }}
}}"""


def front_server(port: int, output_dir: Path, origin_port: int) -> str:
    conf = SHIPPED_CONF.read_text()
    conf = re.sub(r"listen 8080;", f"listen 127.0.0.1:{port};", conf)
    conf = re.sub(r"root /var/www/streams;", f"root {output_dir};", conf)
    return re.sub(r"server 127\.0\.0\.1:8084;", f"server 127.0.0.1:{origin_port};", conf)


class Nginx:
    def __init__(self, workdir: Path, server_block: str, port: int) -> None:
        self.workdir = workdir
        self.port = port
        workdir.mkdir(parents=True, exist_ok=True)
        self.conf = workdir / "nginx.conf"
        self.conf.write_text(nginx_main_conf(workdir, server_block))
        check = subprocess.run(
            [NGINX, "-t", "-c", str(self.conf)], capture_output=True, text=True, check=False
        )
        if check.returncode != 0:
            raise RuntimeError(f"nginx config invalid:\n{check.stderr}")

    def __enter__(self) -> Nginx:
        self.process = subprocess.Popen(
            [NGINX, "-c", str(self.conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=die_with_this_thread(),  # noqa: PLW1509 - prctl only
        )
        if not wait_answering(f"http://127.0.0.1:{self.port}/", self.process):
            raise RuntimeError(
                "nginx did not start: " + (self.workdir / "nginx-error.log").read_text()
            )
        return self

    def __exit__(self, *exc: object) -> None:
        stop_process(self.process, timeout_s=5)  # SIGTERM = fast shutdown; workers follow


_TIME_UNITS_S = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_WRK_SUMMARY = re.compile(r"(\d+) requests in ([0-9.]+)(us|ms|s|m|h), ([0-9.]+)([KMGTP]?)B read")
_BYTE_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4, "P": 1024**5}


@dataclass(frozen=True, slots=True)
class WrkResult:
    """What one wrk run did, with failed answers kept apart from throughput."""

    responses: int  # complete responses, any status
    non_2xx: int  # wrk's "Non-2xx or 3xx responses" (status >= 400 in wrk 4)
    socket_errors: int  # connect + read + write + timeout
    duration_s: float
    bytes_read: int

    @property
    def ok_responses(self) -> int:
        return self.responses - self.non_2xx

    @property
    def ok_per_s(self) -> float:
        return self.ok_responses / self.duration_s if self.duration_s > 0 else math.nan

    @property
    def errors(self) -> int:
        return self.non_2xx + self.socket_errors


def parse_wrk_output(text: str) -> WrkResult:
    """Parse wrk 4's summary (the lines it prints only when non-zero count as 0)."""
    summary = _WRK_SUMMARY.search(text)
    if summary is None:
        raise ValueError(f"no wrk summary in:\n{text}")
    responses, duration, time_unit, size, size_unit = summary.groups()
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    sockets = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text
    )
    return WrkResult(
        responses=int(responses),
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=sum(int(n) for n in sockets.groups()) if sockets else 0,
        duration_s=float(duration) * _TIME_UNITS_S[time_unit],
        bytes_read=round(float(size) * _BYTE_UNITS[size_unit]),
    )


def wrk(url: str, *, threads: int, connections: int, seconds: float) -> WrkResult:
    result = subprocess.run(
        [WRK, f"-t{threads}", f"-c{connections}", f"-d{seconds:g}s", url],
        capture_output=True,
        text=True,
        check=True,
    )
    return parse_wrk_output(result.stdout)


def body_size_checked(url: str) -> int:
    """One GET before a wrk case: it must answer 200 (so wrk's counts mean what we say)."""
    status, body, _ = http("GET", url)
    if status != 200:
        raise RuntimeError(f"GET {url} -> {status} before the wrk run: {body[:200]!r}")
    return len(body)


def fetch(url: str, timeout: float = 30) -> tuple[int, bytes, dict[str, str], float]:
    started = time.monotonic()
    status, body, headers = http("GET", url, timeout=timeout)
    return status, body, {k.lower(): v for k, v in headers.items()}, time.monotonic() - started


def check_ll_through_front(front: str, rendition: str, parts_per_segment: int) -> None:
    header("LL-HLS and LL-DASH through the nginx front")
    base = f"{front}/{STREAM}/{rendition}"
    _, body, _, _ = fetch(f"{base}/playlist.m3u8")
    position = last_part(body.decode())
    assert position is not None, "no EXT-X-PART in the playlist through nginx"
    n, k = position
    want = (n, k + 1) if k + 1 < parts_per_segment else (n + 1, 0)
    status, body, headers, took = fetch(
        f"{base}/playlist.m3u8?_HLS_msn={want[0]}&_HLS_part={want[1]}"
    )
    got = last_part(body.decode())
    ok_block = status == 200 and got is not None and got >= want
    print(
        f"blocking reload _HLS_msn={want[0]}&_HLS_part={want[1]}: {status} "
        f"in {took * 1000:.0f} ms, "
        f"newest part now {got}, cache-control {headers.get('cache-control')!r} "
        f"-> {'OK' if ok_block else 'FAILED'}"
    )
    _, body, _, _ = fetch(f"{base}/playlist.m3u8")
    newest = newest_segment(body.decode())
    if newest is not None:
        growing = newest + 1
        with urllib.request.urlopen(f"{base}/seg_{growing}.m4s", timeout=30) as response:
            started = time.monotonic()
            first = response.read(1)
            first_at = time.monotonic() - started
            rest = response.read()
            total = time.monotonic() - started
            print(
                f"growing segment seg_{growing}.m4s: {response.status}, "
                f"{len(first) + len(rest)} bytes, first byte {first_at * 1000:.0f} ms, "
                f"complete {total * 1000:.0f} ms, transfer-encoding "
                f"{response.headers.get('transfer-encoding')!r}, cache-control "
                f"{response.headers.get('cache-control')!r}"
            )
    status, _, headers, _ = fetch(f"{base}/seg_{newest}.m4s")
    print(
        f"finished segment from disk via nginx: {status}, cache-control "
        f"{headers.get('cache-control')!r}, etag {headers.get('etag')!r}, "
        f"acao {headers.get('access-control-allow-origin')!r}, type {headers.get('content-type')!r}"
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tiny", action="store_true")
    args = parser.parse_args(argv)
    if args.tiny:
        args.seconds, args.connections = 1, 16
    # 360p at 800 kb/s: 5 s segments ≈ 500 KB (tiny: 240p, 1 s segments)
    rendition, width, height, seg_s = ("240p", 426, 240, 2) if args.tiny else ("360p", 640, 360, 5)
    source = "lavfi:" + lavfi_source(width, height)
    with tempfile.TemporaryDirectory(prefix="hlsbench-origin-") as tmp_name:
        tmp = Path(tmp_name)
        with running_service(
            tmp, SEGMENT_DURATION=str(seg_s), ENCODER_PRESET="ultrafast", PLAYLIST_SIZE="6"
        ) as service:
            service.create(STREAM, source, qualities=[rendition])
            service.wait_segments(STREAM, 2, timeout_s=60)
            _, playlist, _ = http("GET", f"{service.origin}/{STREAM}/{rendition}/playlist.m3u8")
            number = newest_segment(playlist.decode())
            assert number is not None
            rel_seg = f"{STREAM}/{rendition}/seg_{number}.m4s"
            rel_pl = f"{STREAM}/{rendition}/playlist.m3u8"
            _, segment, _ = http("GET", f"{service.origin}/{rel_seg}")
            on_disk = (service.output_dir / rel_seg).read_bytes()
            assert segment == on_disk, "origin and disk disagree"
            snapshot = tmp / "snapshot"
            (snapshot / STREAM / rendition).mkdir(parents=True)
            (snapshot / rel_seg).write_bytes(segment)
            (snapshot / rel_pl).write_bytes(playlist)
            print(
                f"origin bench: segment {rel_seg} {len(segment) / 1000:.0f} KB, LL playlist "
                f"{len(playlist)} B; wrk -t{args.threads} -c{args.connections} "
                f"-d{args.seconds:g}s, keep-alive"
            )
            cases = [("hlsdash origin", service.origin)]
            plain_port, front_port = free_port(), free_port()
            results: dict[tuple[str, str], WrkResult] = {}
            with (
                Nginx(tmp / "nginx-plain", plain_server(plain_port, snapshot), plain_port),
                Nginx(
                    tmp / "nginx-front",
                    front_server(front_port, service.output_dir, service.origin_port),
                    front_port,
                ),
            ):
                cases += [
                    ("nginx (plain)", f"http://127.0.0.1:{plain_port}"),
                    ("nginx front", f"http://127.0.0.1:{front_port}"),
                ]
                header("throughput (2xx only; errors = non-2xx + socket errors)")
                for name, base in cases:
                    for what, rel in (("segment", rel_seg), ("playlist", rel_pl)):
                        body_bytes = body_size_checked(f"{base}/{rel}")
                        result = wrk(
                            f"{base}/{rel}",
                            threads=args.threads,
                            connections=args.connections,
                            seconds=args.seconds,
                        )
                        results[name, what] = result
                        print(
                            f"{name:<15} {what:<8} {result.ok_per_s:9.0f} req/s "
                            f"{result.ok_per_s * body_bytes / 1e6:8.1f} MB/s  "
                            f"errors {result.errors} (non-2xx {result.non_2xx}, "
                            f"socket {result.socket_errors}) of {result.responses} responses",
                            flush=True,
                        )

                def ratio(case: str, what: str) -> str:
                    return fmt_ratio(
                        results[case, what].ok_per_s, results["nginx (plain)", what].ok_per_s
                    )

                print(
                    f"ratios (2xx req/s): origin/nginx segment {ratio('hlsdash origin', 'segment')}"
                    f" (goal >= 0.25), playlist {ratio('hlsdash origin', 'playlist')}; "
                    f"front/nginx segment {ratio('nginx front', 'segment')} (goal >= 0.9), "
                    f"playlist (proxied) {ratio('nginx front', 'playlist')}"
                )
                check_ll_through_front(
                    f"http://127.0.0.1:{front_port}", rendition, int(seg_s / 0.5)
                )
            service.delete(STREAM)


if __name__ == "__main__":
    main()
