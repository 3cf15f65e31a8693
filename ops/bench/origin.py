"""Origin throughput: hlsdash origin vs plain nginx vs nginx in front (ops/nginx/hlsdash.conf).

    python -m ops.bench.origin                 # wrk -t2 -c64 -d5s per case, ~500 KB segment
    python -m ops.bench.origin --tiny          # 1 s per case (the smoke test)

A real service runs one stream (360p, 5 s segments at 800 kb/s ≈ 500 KB). Cases, same bytes:
hlsdash origin (segment from its memory, LL playlist), plain nginx serving a snapshot of those
exact bytes, and nginx with the shipped hlsdash.conf (segment from OUTPUT_DIR, playlist proxied to
the origin). Prints req/s, MB/s and ratios, then checks LL-HLS blocking reload and a growing
segment through the nginx front.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from ops.bench.common import (
    ROOT,
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


def plain_server(port: int, root: Path) -> str:
    return f"""
server {{
    listen 127.0.0.1:{port};
    root {root};
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
        )
        if not wait_answering(f"http://127.0.0.1:{self.port}/", self.process):
            raise RuntimeError(
                "nginx did not start: " + (self.workdir / "nginx-error.log").read_text()
            )
        return self

    def __exit__(self, *exc: object) -> None:
        stop_process(self.process, timeout_s=5)  # SIGTERM = fast shutdown; workers follow


def wrk(url: str, *, threads: int, connections: int, seconds: float) -> tuple[float, float]:
    """(requests/s, MB/s) from wrk."""
    result = subprocess.run(
        [WRK, f"-t{threads}", f"-c{connections}", f"-d{seconds:g}s", url],
        capture_output=True,
        text=True,
        check=True,
    )
    out = result.stdout
    rps = float(re.search(r"Requests/sec:\s+([0-9.]+)", out).group(1))  # type: ignore[union-attr]
    value, unit = re.search(r"Transfer/sec:\s+([0-9.]+)(\w+)", out).groups()  # type: ignore[union-attr]
    scale = {"B": 1e-6, "KB": 1024 / 1e6, "MB": 1024**2 / 1e6, "GB": 1024**3 / 1e6}[unit]
    if "Non-2xx" in out or "Socket errors" in out:
        print(
            "   wrk:",
            " ".join(
                line.strip() for line in out.splitlines() if "rror" in line or "Non-2xx" in line
            ),
        )
    return rps, float(value) * scale


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
            results: dict[tuple[str, str], tuple[float, float]] = {}
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
                header("throughput")
                for name, base in cases:
                    for what, rel in (("segment", rel_seg), ("playlist", rel_pl)):
                        rps, mbs = wrk(
                            f"{base}/{rel}",
                            threads=args.threads,
                            connections=args.connections,
                            seconds=args.seconds,
                        )
                        results[name, what] = (rps, mbs)
                        print(f"{name:<15} {what:<8} {rps:9.0f} req/s {mbs:8.1f} MB/s", flush=True)
                nginx_seg = results["nginx (plain)", "segment"][0]
                nginx_pl = results["nginx (plain)", "playlist"][0]
                print(
                    f"ratios: origin/nginx segment "
                    f"{results['hlsdash origin', 'segment'][0] / nginx_seg:.3f} (goal >= 0.25), "
                    f"playlist {results['hlsdash origin', 'playlist'][0] / nginx_pl:.3f}; "
                    f"front/nginx segment {results['nginx front', 'segment'][0] / nginx_seg:.3f} "
                    f"(goal >= 0.9), playlist (proxied) "
                    f"{results['nginx front', 'playlist'][0] / nginx_pl:.3f}"
                )
                check_ll_through_front(
                    f"http://127.0.0.1:{front_port}", rendition, int(seg_s / 0.5)
                )
            service.delete(STREAM)


if __name__ == "__main__":
    main()
