"""Service settings: typed, unit-suffixed, read once from the environment (CLI flags override).

Invalid values stop the service at start-up with one message that names the variable, e.g.
``SEGMENT_DURATION must be a number between 1 and 10 (got 'abc')``.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from actors.ffmpeg.host_policy import IpNetwork, parse_networks
from actors.ffmpeg.sources import redact_url
from supervisor.errors import ConfigError
from supervisor.registry import check_registry_url, default_registry_url

DEFAULT_ALLOWED_PROTOCOLS = ("http", "https", "rtmp", "rtmps", "rtsp", "rtsps", "srt", "udp", "rtp")
# Protocols an operator may add to ALLOWED_PROTOCOLS; anything else is refused even then.
OPERATOR_PROTOCOLS = ("file", "lavfi", "tcp", "rist")
X264_PRESETS = (
    "ultrafast",
    "superfast",
    "veryfast",
    "faster",
    "fast",
    "medium",
    "slow",
    "slower",
    "veryslow",
)
HW_ENCODERS = ("none", "nvenc", "vaapi", "qsv")


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the service needs to know, with the original service's defaults."""

    segment_duration_s: float = 2.0
    playlist_size: int = 10
    low_latency_hls: bool = True
    cleanup_interval_s: float = 300.0
    stale_threshold_s: float = 600.0
    output_dir: Path = Path("/var/www/streams")
    max_streams: int = 16
    encoder_preset: str = "veryfast"
    hw_encoder: str = "none"
    # 1/3 s: PART-HOLD-BACK (hls.js's target) and the MPD's Latency@target become 1 s; 10 frames
    # at 30 fps, 20 at 60. Smaller parts cost no ladder CPU and +0.1 % bytes, but one more
    # request per second per rendition for each viewer per 1/PT (ops/bench/parts.py, README).
    part_target_s: float = 0.333
    allowed_protocols: tuple[str, ...] = DEFAULT_ALLOWED_PROTOCOLS
    ffmpeg_path: str = ""  # empty → the imageio-ffmpeg bundled binary
    api_host: str = "0.0.0.0"  # noqa: S104 - a service binds all interfaces by default
    api_port: int = 8083
    origin_port: int = 8084
    public_base_url: str = ""  # how clients reach the API, for playback URLs; empty → request host
    cdn_base_url: str = ""  # the CDN edge in front of the origin; empty → origin on request host
    api_token: str = ""
    restart_max: int = 10
    restart_period_s: float = 60.0
    restart_backoff_max_s: float = 30.0  # ceiling of the exponential pause between restarts
    watchdog_segments: float = 2.0  # no media for this many segment durations → restart FFmpeg
    segment_margin: int = 3  # segments kept on disk after leaving the window, for late players
    tls_cert: str = ""
    tls_key: str = ""
    log_level: str = "info"
    encoder_nice: int = 15  # FFmpeg's niceness: encoders yield CPU to the service under load
    # --- WHIP (WebRTC) ingest: what the answer SDP advertises and where the media sockets bind
    webrtc_public_ip: str = ""  # 1:1 NAT: advertised instead of the local addresses
    webrtc_udp_ports: tuple[int, int] | None = None  # (first, last) e.g. 40000-40100; None = any
    # local addresses for ICE host candidates; () = every interface but loopback (aioice's
    # default); tests and single-host set-ups name 127.0.0.1 here
    webrtc_host_addresses: tuple[str, ...] = ()
    # --- source host policy (actors/ffmpeg/host_policy.py; link-local and cloud metadata are
    # always refused, the service's own ports too; these tighten or loosen the rest)
    source_deny_loopback: bool = False
    source_deny_private: bool = False
    source_deny_networks: tuple[IpNetwork, ...] = ()
    source_allow_networks: tuple[IpNetwork, ...] = ()
    # -- origin connections and readiness (slow clients, fd budget, full disk) --
    origin_head_timeout_s: float = 10.0  # a request head must arrive whole within this
    origin_idle_timeout_s: float = 15.0  # a keep-alive connection with no new request closes
    origin_send_timeout_s: float = 10.0  # a client that reads nothing for this long is closed
    origin_max_connections: int = 0  # 0 → derived from the fd budget (origin_limits)
    # -- control API connections (api_server.py) --
    api_head_timeout_s: float = 10.0  # a request head (new or kept-alive) must be whole by then
    api_send_timeout_s: float = 10.0  # a client that reads nothing for this long is closed
    api_max_connections: int = 128  # beyond it 503 + close; the origin's fd budget reserves it
    ready_min_free_mb: float = 64.0  # /ready is 503 with less free space in OUTPUT_DIR
    # -- push ingest (actors/ingest, supervisor/ingest) --
    rtmp_port: int = 1935  # the one RTMP listener for every push stream; 0: no RTMP listener
    srt_port_range: tuple[int, int] = (9000, 9099)  # one UDP port per SRT push stream
    srt_latency_ms: int = 120  # libsrt's receiver latency when a stream does not ask for one
    # host in the publish URLs handed out (rtmp://HOST:port/live/…); empty → the API's host as the
    # client reached it
    ingest_public_host: str = ""
    # -- the durable stream registry (supervisor/registry) --
    registry_url: str = ""  # empty → sqlite:///<OUTPUT_DIR>/.hlsdash/registry.db
    node_id: str = "local"  # whose streams these are in the registry (resume takes back its own)

    @property
    def effective_registry_url(self) -> str:
        return self.registry_url or default_registry_url(self.output_dir)

    # -- the cluster (REGISTRY_URL=redis://…, NODE_ID): supervisor/cluster --
    node_api_url: str = ""  # how peers reach this API; empty → http://<host name>:API_PORT
    node_origin_url: str = ""  # how peers reach this origin; empty → http://<host name>:ORIGIN_PORT
    node_capacity_cores: float = 0.0  # encoder CPU this node offers; 0 → its CPU count
    cluster_lease_ttl_s: float = 6.0  # stream leases and membership; renewed every third of it


def _parse_bool(raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ValueError("must be true or false")


def _number(low: float, high: float) -> Callable[[str], float]:
    def parse(raw: str) -> float:
        value = float(raw)
        if not low <= value <= high:
            raise ValueError(f"must be a number between {low:g} and {high:g}")
        return value

    return parse


def _integer(low: int, high: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        value = int(raw)
        if not low <= value <= high:
            raise ValueError(f"must be an integer between {low} and {high}")
        return value

    return parse


def _choice(options: tuple[str, ...]) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        value = raw.strip().lower()
        if value not in options:
            raise ValueError(f"must be one of {', '.join(options)}")
        return value

    return parse


def _protocols(raw: str) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(p.strip().lower() for p in raw.split(",") if p.strip()))
    if not names:
        raise ValueError("must list at least one protocol")
    known = set(DEFAULT_ALLOWED_PROTOCOLS) | set(OPERATOR_PROTOCOLS)
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(
            f"unknown protocol(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
        )
    return names


def _path(raw: str) -> Path:
    if not raw.strip():
        raise ValueError("must not be empty")
    return Path(raw).expanduser()


def _text(raw: str) -> str:
    return raw.strip()


def _ip_address(raw: str) -> str:
    text = raw.strip()
    if text:
        ipaddress.ip_address(text)  # ValueError names the problem
    return text


def _ip_addresses(raw: str) -> tuple[str, ...]:
    return tuple(_ip_address(part) for part in raw.split(",") if part.strip())


def _port_range(raw: str) -> tuple[int, int]:
    low_text, dash, high_text = raw.strip().partition("-")
    if not dash:
        raise ValueError("must be FIRST-LAST, e.g. 9000-9099")
    low, high = _port(low_text), _port(high_text)
    if low > high:
        raise ValueError("the first port must not be above the last")
    return low, high


def _port(raw: str) -> int:
    return _integer(1, 65535)(raw)


def _registry_url(raw: str) -> str:
    return check_registry_url(raw.strip())


_URL_VARIABLES = frozenset({"REGISTRY_URL", "PUBLIC_BASE_URL", "CDN_BASE_URL"})
_NODE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def _node_id(raw: str) -> str:
    value = raw.strip()
    if not _NODE_ID.fullmatch(value):
        raise ValueError("must be 1-64 letters, digits, '.', '_' or '-', starting alnum")
    return value


# env var → (settings field, parser). The env names of the original service are kept exactly.
ENV_VARS: dict[str, tuple[str, Callable[[str], Any]]] = {
    "SEGMENT_DURATION": ("segment_duration_s", _number(1, 10)),
    "PLAYLIST_SIZE": ("playlist_size", _integer(3, 100)),
    "LOW_LATENCY_HLS": ("low_latency_hls", _parse_bool),
    "CLEANUP_INTERVAL": ("cleanup_interval_s", _number(1, 86400)),
    "STALE_THRESHOLD": ("stale_threshold_s", _number(1, 7 * 86400)),
    "OUTPUT_DIR": ("output_dir", _path),
    "MAX_STREAMS": ("max_streams", _integer(1, 1000)),
    "ENCODER_PRESET": ("encoder_preset", _choice(X264_PRESETS)),
    "HW_ENCODER": ("hw_encoder", _choice(HW_ENCODERS)),
    "PART_TARGET": ("part_target_s", _number(0.2, 2.0)),
    "ALLOWED_PROTOCOLS": ("allowed_protocols", _protocols),
    "FFMPEG_PATH": ("ffmpeg_path", _text),
    "API_HOST": ("api_host", _text),
    "API_PORT": ("api_port", _port),
    "ORIGIN_PORT": ("origin_port", _port),
    "PUBLIC_BASE_URL": ("public_base_url", _text),
    "CDN_BASE_URL": ("cdn_base_url", _text),
    "API_TOKEN": ("api_token", _text),
    "RESTART_MAX": ("restart_max", _integer(0, 1000)),
    "RESTART_PERIOD": ("restart_period_s", _number(1, 86400)),
    "RESTART_BACKOFF_MAX": ("restart_backoff_max_s", _number(0.5, 3600)),
    "WATCHDOG_SEGMENTS": ("watchdog_segments", _number(1, 30)),
    "SEGMENT_MARGIN": ("segment_margin", _integer(0, 100)),
    "TLS_CERT": ("tls_cert", _text),
    "TLS_KEY": ("tls_key", _text),
    "LOG_LEVEL": ("log_level", _choice(("debug", "info", "warning", "error"))),
    "ENCODER_NICE": ("encoder_nice", _integer(0, 19)),
    "WEBRTC_PUBLIC_IP": ("webrtc_public_ip", _ip_address),
    "WEBRTC_UDP_PORTS": ("webrtc_udp_ports", _port_range),
    "WEBRTC_HOST_ADDRESSES": ("webrtc_host_addresses", _ip_addresses),
    # source host policy
    "SOURCE_DENY_LOOPBACK": ("source_deny_loopback", _parse_bool),
    "SOURCE_DENY_PRIVATE": ("source_deny_private", _parse_bool),
    "SOURCE_DENY_NETWORKS": ("source_deny_networks", parse_networks),
    "SOURCE_ALLOW_NETWORKS": ("source_allow_networks", parse_networks),
    "ORIGIN_HEAD_TIMEOUT": ("origin_head_timeout_s", _number(1, 300)),
    "ORIGIN_IDLE_TIMEOUT": ("origin_idle_timeout_s", _number(1, 3600)),
    "ORIGIN_SEND_TIMEOUT": ("origin_send_timeout_s", _number(1, 300)),
    "ORIGIN_MAX_CONNECTIONS": ("origin_max_connections", _integer(0, 10_000_000)),
    "API_HEAD_TIMEOUT": ("api_head_timeout_s", _number(1, 300)),
    "API_SEND_TIMEOUT": ("api_send_timeout_s", _number(1, 300)),
    "API_MAX_CONNECTIONS": ("api_max_connections", _integer(1, 100_000)),
    "READY_MIN_FREE_MB": ("ready_min_free_mb", _number(0, 10_000_000)),
    "RTMP_PORT": ("rtmp_port", _integer(0, 65535)),
    "SRT_PORT_RANGE": ("srt_port_range", _port_range),
    "SRT_LATENCY": ("srt_latency_ms", _integer(20, 8000)),
    "INGEST_PUBLIC_HOST": ("ingest_public_host", _text),
    "REGISTRY_URL": ("registry_url", _registry_url),
    "NODE_ID": ("node_id", _node_id),
    "NODE_API_URL": ("node_api_url", _text),
    "NODE_ORIGIN_URL": ("node_origin_url", _text),
    "NODE_CAPACITY_CORES": ("node_capacity_cores", _number(0, 4096)),
    "CLUSTER_LEASE_TTL": ("cluster_lease_ttl_s", _number(1.5, 300)),
}


def load_settings(
    environ: Mapping[str, str] | None = None, overrides: Mapping[str, Any] | None = None
) -> Settings:
    """Build Settings from env vars, then apply already-typed overrides (CLI flags).

    Raises ConfigError naming the first invalid variable.
    """
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for name, (field_name, parse) in ENV_VARS.items():
        raw = env.get(name)
        if raw is None:
            continue
        try:
            values[field_name] = parse(raw)
        except ValueError as error:
            reason = (
                str(error) if not str(error).startswith(("could not", "invalid literal")) else ""
            )
            detail = reason or "has an invalid value"
            # a URL may carry a password (redis://:secret@host): never echo it
            shown = redact_url(raw) if name in _URL_VARIABLES else raw
            raise ConfigError(name, f"{detail} (got {shown!r})") from None
    known = {f.name for f in fields(Settings)}
    for key, value in (overrides or {}).items():
        if key not in known:
            raise ConfigError(key, "is not a setting")
        if value is not None:
            values[key] = value
    settings = Settings(**values)
    _check_consistency(settings)
    return settings


def _check_consistency(settings: Settings) -> None:
    if settings.part_target_s * 2 > settings.segment_duration_s:
        raise ConfigError(
            "PART_TARGET",
            f"must be at most half of SEGMENT_DURATION (got {settings.part_target_s:g})",
        )
    if bool(settings.tls_cert) != bool(settings.tls_key):
        raise ConfigError("TLS_CERT", "TLS_CERT and TLS_KEY must be set together")
    if settings.api_port == settings.origin_port:
        raise ConfigError("ORIGIN_PORT", f"must differ from API_PORT (got {settings.origin_port})")
    if settings.rtmp_port in {settings.api_port, settings.origin_port}:
        raise ConfigError(
            "RTMP_PORT", f"must differ from API_PORT and ORIGIN_PORT (got {settings.rtmp_port})"
        )
