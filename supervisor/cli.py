"""``hlsdash`` command line: ``serve`` (production), ``demo`` (service + synthetic live stream),
``drain`` (a cluster node hands its streams away)."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import structlog
import trio

from supervisor import __version__
from supervisor.config import ENV_VARS, Settings, load_settings
from supervisor.errors import ConfigError
from supervisor.otp.supervise import exception_leaves
from supervisor.registry.interface import RegistryUnavailable

log = structlog.get_logger(__name__)

# flag help; the flag name is the env var in kebab case (SEGMENT_DURATION → --segment-duration)
FLAG_HELP = {
    "SEGMENT_DURATION": "segment duration in seconds (default 2)",
    "PLAYLIST_SIZE": "segments listed in each playlist / DASH window (default 10)",
    "LOW_LATENCY_HLS": "allow LL-HLS and LL-DASH for streams that ask for it (default true)",
    "CLEANUP_INTERVAL": "seconds between sweeps for orphaned stream folders (default 300)",
    "STALE_THRESHOLD": "seconds without a heartbeat before a stream is stopped as stale "
    "(default 600)",
    "OUTPUT_DIR": "where stream folders live (default /var/www/streams)",
    "MAX_STREAMS": "maximum concurrent streams (default 16)",
    "ENCODER_PRESET": "x264 preset (default veryfast)",
    "HW_ENCODER": "none | nvenc | vaapi | qsv (default none)",
    "PART_TARGET": "LL-HLS part / LL-DASH chunk duration in seconds (default 0.333)",
    "ALLOWED_PROTOCOLS": "comma-separated source protocols allowed (default http,https,rtmp,"
    "rtmps,rtsp,rtsps,srt,udp,rtp; operators may add file,lavfi,tcp,rist)",
    "FFMPEG_PATH": "FFmpeg binary (default: the one bundled by imageio-ffmpeg)",
    "API_HOST": "address both listeners bind (default 0.0.0.0; demo: 127.0.0.1)",
    "API_PORT": "control API port (default 8083)",
    "ORIGIN_PORT": "CDN origin port (default 8084)",
    "PUBLIC_BASE_URL": "base URL clients use for the API, for playback URLs "
    "(default: the request's host)",
    "CDN_BASE_URL": "base URL of the CDN in front of the origin (default: origin on request host)",
    "API_TOKEN": "bearer token required by the control API (default: none)",
    "RESTART_MAX": "encoder restarts allowed within RESTART_PERIOD before a stream fails "
    "(default 10)",
    "RESTART_PERIOD": "window in seconds for RESTART_MAX (default 60)",
    "RESTART_BACKOFF_MAX": "longest pause in seconds between two encoder restarts; the pause "
    "doubles from 0.5 s up to it (default 30)",
    "WATCHDOG_SEGMENTS": "restart an encoder silent for this many segment durations (default 2)",
    "SEGMENT_MARGIN": "segments kept after leaving the window, for late players (default 3)",
    "TLS_CERT": "TLS certificate (PEM) for HTTP/2 over TLS on both listeners",
    "TLS_KEY": "TLS private key (PEM)",
    "LOG_LEVEL": "debug | info | warning | error (default info)",
    "ENCODER_NICE": "niceness of FFmpeg (0-19, default 15): under overload encoders yield to the "
    "API and the live edge",
    "WEBRTC_PUBLIC_IP": "WHIP: the address WebRTC answers advertise (1:1 NAT; default: the local "
    "addresses)",
    "WEBRTC_UDP_PORTS": "WHIP: UDP port range for WebRTC media, e.g. 40000-40100 (default: any)",
    "WEBRTC_HOST_ADDRESSES": "WHIP: comma-separated local addresses for ICE candidates (default: "
    "every interface but loopback)",
    "SOURCE_DENY_LOOPBACK": "refuse sources on this host (loopback, this host's addresses) "
    "(default false)",
    "SOURCE_DENY_PRIVATE": "refuse sources on private addresses (RFC 1918, 100.64/10, fc00::/7) "
    "(default false)",
    "SOURCE_DENY_NETWORKS": "comma-separated CIDR networks sources may not reach (default none)",
    "SOURCE_ALLOW_NETWORKS": "comma-separated CIDR networks allowed despite the link-local, "
    "loopback, private and SOURCE_DENY_NETWORKS rules (never cloud metadata; default none)",
    "ORIGIN_HEAD_TIMEOUT": "seconds a client has to send a whole request head to the origin "
    "(default 10)",
    "ORIGIN_IDLE_TIMEOUT": "seconds an idle keep-alive origin connection stays open (default 15)",
    "ORIGIN_SEND_TIMEOUT": "seconds without write progress before the origin closes a client "
    "that does not read (default 10)",
    "ORIGIN_MAX_CONNECTIONS": "origin connections at once, 503 beyond (default 0: derived from "
    "the file-descriptor limit minus what MAX_STREAMS needs)",
    "API_HEAD_TIMEOUT": "seconds a control-API connection has to send a whole request head, "
    "new or kept alive (default 10)",
    "API_SEND_TIMEOUT": "seconds without write progress before the API closes a client that "
    "does not read (default 10)",
    "API_MAX_CONNECTIONS": "control-API connections at once, 503 beyond (default 128)",
    "READY_MIN_FREE_MB": "free MiB in OUTPUT_DIR below which /ready is 503 (default 64)",
    "RTMP_PORT": "port of the RTMP listener for push streams (default 1935; 0: none)",
    "SRT_PORT_RANGE": "UDP ports for SRT push streams, one per stream (default 9000-9099)",
    "SRT_LATENCY": "SRT receiver latency in ms for push streams that ask for none (default 120)",
    "INGEST_PUBLIC_HOST": "host in the publish URLs handed out (default: the API request's host)",
    "REGISTRY_URL": "where streams are remembered across restarts: sqlite:///path/file.db, "
    "redis://host:port/db or rediss:// (TLS) (default sqlite:///<OUTPUT_DIR>/.hlsdash/"
    "registry.db)",
    "NODE_ID": "this node's name in the registry; a restarted service resumes the streams "
    "registered under it (default local)",
    "NODE_API_URL": "how other cluster nodes reach this API (default http://<host name>:API_PORT)",
    "NODE_ORIGIN_URL": "how other cluster nodes reach this origin "
    "(default http://<host name>:ORIGIN_PORT)",
    "NODE_CAPACITY_CORES": "encoder CPU cores this node offers the cluster's placement "
    "(default 0: its CPU count)",
    "CLUSTER_LEASE_TTL": "seconds a cluster node's stream leases and membership last without "
    "renewal; a dead node's streams move after about this (default 6)",
}
# extra spellings of a flag
FLAG_ALIASES = {"API_HOST": ("--host",)}
# the demo is for the machine it runs on: it listens on loopback unless told otherwise
DEMO_HOST = "127.0.0.1"


def _flag(env: str) -> str:
    return "--" + env.lower().replace("_", "-")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hlsdash",
        description="Live ABR transcoder, CMAF packager and CDN-ready origin (HLS, LL-HLS, "
        "DASH, LL-DASH). Every flag can also be set by the environment variable in brackets.",
    )
    parser.add_argument("--version", action="version", version=f"hlsdash {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    serve = commands.add_parser("serve", help="run the service (production)")
    demo = commands.add_parser(
        "demo", help="run the service with a built-in synthetic live stream named 'demo'"
    )
    drain = commands.add_parser(
        "drain",
        help="hand this cluster node's streams to the other nodes and wait (Kubernetes preStop)",
    )
    drain.add_argument("--timeout", type=float, default=60.0, help="seconds to wait (default 60)")
    for sub in (serve, demo):
        for env in ENV_VARS:
            sub.add_argument(
                _flag(env),
                *FLAG_ALIASES.get(env, ()),
                dest=env,
                metavar="VALUE",
                help=f"{FLAG_HELP[env]} [{env}]",
            )
    return parser


def settings_from_args(args: argparse.Namespace, environ: dict[str, str]) -> Settings:
    merged = dict(environ)
    for env in ENV_VARS:
        value = getattr(args, env, None)
        if value is not None:
            merged[env] = value
    if args.command == "demo":
        # The demo's synthetic source is built inside the service (sources.synthetic_source), so
        # lavfi stays off the client-facing ALLOWED_PROTOCOLS: a client could otherwise submit
        # filter graphs, some of which read and write files.
        merged.setdefault("API_HOST", DEMO_HOST)
        merged.setdefault("OUTPUT_DIR", str(Path(tempfile.gettempdir()) / "hlsdash-demo"))
    return load_settings(merged)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    if args.command == "drain":
        from supervisor.cluster.drain_command import drain  # noqa: PLC0415

        return drain(os.environ, timeout_s=args.timeout)
    try:
        settings = settings_from_args(args, dict(os.environ))
    except ConfigError as error:
        print(f"hlsdash: configuration error: {error}", file=sys.stderr)
        return 2
    from supervisor import allocator, memory_trace  # noqa: PLC0415

    allocator.fix_mmap_threshold(os.environ)  # before the service allocates its buffers
    memory_trace.start()  # HLSDASH_TRACEMALLOC=1 only; before the imports it should see
    from supervisor.logging import configure_logging  # noqa: PLC0415
    from supervisor.main import run_service  # noqa: PLC0415

    configure_logging(settings.log_level)
    try:
        trio.run(run_service, settings, args.command == "demo")
    except KeyboardInterrupt:
        return 130
    except (OSError, RegistryUnavailable) as error:
        print(f"hlsdash: cannot start: {error}", file=sys.stderr)
        return 1
    except BaseExceptionGroup as group:
        # trio wraps start-up failures (a port in use, say) in exception groups: report the cause
        cause = _first_start_error(group)
        if cause is None:
            raise
        print(f"hlsdash: cannot start: {cause}", file=sys.stderr)
        return 1
    return 0


def _first_start_error(group: BaseExceptionGroup[BaseException]) -> Exception | None:
    return next(
        (e for e in exception_leaves(group) if isinstance(e, OSError | RegistryUnavailable)),
        None,
    )


if __name__ == "__main__":
    raise SystemExit(main())
