"""``ops/nginx/run-edge``: the edge cache in the foreground (Ctrl-C / SIGTERM stops it).

    ops/nginx/run-edge --origin http://127.0.0.1:8084 --listen 8090                # Varnish
    ops/nginx/run-edge --cache nginx --origin http://127.0.0.1:8084 --listen 8090  # nginx

The config is generated into a temporary directory (with the cache's own files), removed on exit.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from ops.edge.upstream import BadOriginError, HostPort, parse_origin
from ops.nginx import edge as nginx_edge
from ops.varnish import edge as varnish_edge


def parser_for_run_edge() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ops/nginx/run-edge",
        description="Run an edge cache (Varnish or nginx) in front of an hlsdash origin.",
    )
    parser.add_argument("--origin", required=True, help="the hlsdash origin, http://host:port")
    parser.add_argument("--listen", required=True, type=int, help="port the edge listens on")
    parser.add_argument("--listen-host", default="127.0.0.1", help="address (default 127.0.0.1)")
    parser.add_argument(
        "--cache",
        choices=("varnish", "nginx"),
        default="varnish",
        help="varnish (default): collapsed requests are released when the origin answers; "
        "nginx: released by a 500 ms cache-lock poll (README, Edge cache)",
    )
    parser.add_argument("--cache-max-size-mb", type=int, default=1024)
    parser.add_argument(
        "--access-log", type=Path, help="log every request with its cache status to this file"
    )
    varnish = parser.add_argument_group("varnish only")
    varnish.add_argument(
        "--varnish-param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a varnishd run-time parameter (varnishd -p), repeatable",
    )
    nginx = parser.add_argument_group("nginx only")
    nginx.add_argument(
        "--nginx-unlocked",
        choices=nginx_edge.UNLOCKED_CHOICES,
        default="nothing",
        help="requests that skip nginx's cache lock and each go to the origin: blocking "
        "playlist reloads, or those and parts (the live edge)",
    )
    nginx.add_argument(
        "--nginx-cache-lock-timeout-ms",
        type=int,
        default=nginx_edge.CACHE_LOCK_TIMEOUT_S * 1000,
        help="how long a request waits on the cache lock before nginx sends it to the origin "
        "uncached (default: longer than a blocking reload is held)",
    )
    return parser


def nginx_commands(
    args: argparse.Namespace, origin: HostPort, workdir: Path
) -> list[list[str]] | str:
    """[nginx argv], or the reason nginx refuses the generated config."""
    conf = workdir / "nginx.conf"
    conf.write_text(
        nginx_edge.edge_config(
            origin=origin,
            listen_host=args.listen_host,
            listen_port=args.listen,
            workdir=workdir,
            run_as_root=os.geteuid() == 0,
            cache_max_size_mb=args.cache_max_size_mb,
            unlocked=args.nginx_unlocked,
            cache_lock_timeout_ms=args.nginx_cache_lock_timeout_ms,
            access_log=args.access_log,
        )
    )
    argv = [nginx_edge.NGINX, "-p", str(workdir), "-c", str(conf)]
    check = subprocess.run([*argv, "-t", "-q"], capture_output=True, text=True, check=False)
    return [argv] if check.returncode == 0 else check.stderr


def varnish_commands(args: argparse.Namespace, origin: HostPort, workdir: Path) -> list[list[str]]:
    """[varnishd argv] and, with --access-log, the varnishncsa that writes it."""
    vcl = workdir / "edge.vcl"
    vcl.write_text(
        varnish_edge.edge_vcl(origin=origin, origin_timeout_s=nginx_edge.ORIGIN_READ_TIMEOUT_S)
    )
    commands = [
        varnish_edge.varnishd_argv(
            workdir=workdir,
            vcl=vcl,
            listen=HostPort(args.listen_host, args.listen),
            cache_max_size_mb=args.cache_max_size_mb,
            parameters=args.varnish_param,
        )
    ]
    if args.access_log:
        commands.append(
            varnish_edge.varnishncsa_argv(workdir=workdir, access_log=args.access_log.resolve())
        )
    return commands


def _run(commands: list[list[str]]) -> int:
    """Run the cache (the first command) and its helpers (the access logger, started first so it
    is attached before the first request); signals go to all of them; when the cache exits, the
    helpers are stopped. Returns the cache's exit status."""
    helpers: list[subprocess.Popen[bytes]] = []
    processes: list[subprocess.Popen[bytes]] = []

    def forward(signum: int, _frame: FrameType | None) -> None:
        for process in processes:
            process.send_signal(signum)  # SIGTERM/SIGINT: a fast shutdown, workers follow

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGHUP):
        signal.signal(signum, forward)
    try:
        for argv in commands[1:]:
            helpers.append(subprocess.Popen(argv))
        processes.extend(helpers)
        cache = subprocess.Popen(commands[0])
        processes.append(cache)
        return cache.wait()
    finally:
        for process in helpers:
            process.terminate()
        for process in helpers:
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def main(argv: Sequence[str] | None = None) -> int:
    parser = parser_for_run_edge()
    args = parser.parse_args(argv)
    try:
        origin = parse_origin(args.origin)
    except BadOriginError as error:
        parser.error(str(error))
    if not 0 < args.listen < 65536:
        parser.error(f"--listen must be a port number, got {args.listen}")
    if args.nginx_cache_lock_timeout_ms <= 0:
        parser.error("--nginx-cache-lock-timeout-ms must be positive")
    workdir = Path(tempfile.mkdtemp(prefix="hlsdash-edge-"))
    try:
        # varnishd's unprivileged child (user vcache when started as root) reads its instance
        # directory inside workdir
        workdir.chmod(0o755)
        if args.cache == "nginx":
            commands = nginx_commands(args, origin, workdir)
        else:
            commands = varnish_commands(args, origin, workdir)
        if isinstance(commands, str):
            print(commands, file=sys.stderr)
            return 1
        print(
            f"run-edge ({args.cache}): http://{args.listen_host}:{args.listen} -> "
            f"{origin.authority}",
            file=sys.stderr,
            flush=True,
        )
        return _run(commands)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
