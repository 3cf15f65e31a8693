"""Source URL validation: the only door a client-supplied string has into FFmpeg's argv.

FFmpeg treats its input string as a tiny language: ``concat:a|b``, ``subfile,,start,0,,:x``,
``crypto+http://…``, ``async:``, ``cache:``, ``data:`` nest protocols, and a string without a
``scheme:`` prefix is a *local file path*. So a client URL is accepted only when it has an explicit,
allowed, plain scheme, and every accepted URL gets input options that (a) make a dead source end
FFmpeg instead of hanging it and (b) pin FFmpeg's own ``-protocol_whitelist`` to what that scheme
needs, so e.g. an HLS playlist fetched over http cannot pull ``file:`` entries.

A pull source must never turn the service into a server: listener-mode URLs (``srt://…?mode=
listener``, ``udp://@:port``, ``tcp://…?listen``, ``rist://@…``, a unicast UDP/RTP port, an RTSP
``listen``) are refused here; push ingest is its own feature. Which *hosts* a source may reach is
the operator's host policy (``host_policy``, checked by ``host_guard``); this module extracts the
host exactly as FFmpeg will (``av_url_split``) so the two cannot disagree.

Pure: no trio, no HTTP.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from actors.ffmpeg.host_policy import parse_address

DEFAULT_ALLOWED_PROTOCOLS: tuple[str, ...] = (
    "http",
    "https",
    "rtmp",
    "rtmps",
    "rtsp",
    "rtsps",
    "srt",
    "udp",
    "rtp",
)
# Operator-only: these read local files, run filter graphs (lavfi's movie= reads files too) or nest
# other protocols. Never enable them for untrusted clients.
OPERATOR_PROTOCOLS: tuple[str, ...] = (
    "file",
    "lavfi",
    "concat",
    "subfile",
    "pipe",
    "data",
    "async",
    "cache",
    "crypto",
)

MAX_URL_LENGTH = 2048
# A dead network source must make FFmpeg exit so the actor can restart it; 10 s rides out a
# normal network hiccup while staying well under the watchdog's patience for a new stream.
READ_TIMEOUT_US = 10_000_000

# Not allowed by default, but network pulls like the defaults once an operator adds them.
OPERATOR_NETWORK_PROTOCOLS: tuple[str, ...] = ("tcp", "rist")
NETWORK_SCHEMES = frozenset((*DEFAULT_ALLOWED_PROTOCOLS, *OPERATOR_NETWORK_PROTOCOLS))
# Port FFmpeg uses when the URL names none (for the "own ports" rule of the host policy).
DEFAULT_PORTS: dict[str, int] = {
    "http": 80,
    "https": 443,
    "rtmp": 1935,
    "rtmps": 443,
    "rtsp": 554,
    "rtsps": 322,
}
# Longest DNS name; FFmpeg copies the host into a fixed buffer, so a longer one would be cut.
MAX_HOST_CHARS = 253
# Query options (as FFmpeg's av_find_info_tag reads them, case-insensitively here) that make a
# protocol bind or listen instead of connecting out: tcp/udp/rtp/srt/rist/rtsp's listen, local
# binds, socket reuse (stealing another listener's traffic) and RTSP's UDP transports (which bind
# local RTP ports). ``mode`` is checked separately: only srt's ``caller`` connects out.
_LISTENER_OPTIONS = frozenset(
    {
        "listen",
        "listen_timeout",
        "localport",
        "local_port",
        "localaddr",
        "local_addr",
        "reuse",
        "reuse_socket",
        "rtsp_flags",
    }
)
_RTSP_UDP_OPTIONS = frozenset({"udp", "multicast"})
# FFmpeg's URL_SCHEME_CHARS: it reads the protocol as the longest prefix of these before ':'.
_FFMPEG_SCHEME_PREFIX_RE = re.compile(r"^[A-Za-z0-9+.-]*")
_NAME_RE = re.compile(r"^[a-z][a-z0-9]*$")

# What FFmpeg may open underneath each scheme (its -protocol_whitelist). crypto is allowed below
# http(s) only so AES-128 HLS sources work; it can only wrap the listed transports.
_WHITELIST: dict[str, str] = {
    "http": "http,https,tcp,tls,crypto",
    "https": "http,https,tcp,tls,crypto",
    "rtmp": "rtmp,rtmps,tcp,tls",
    "rtmps": "rtmp,rtmps,tcp,tls",
    "rtsp": "rtsp,rtsps,rtp,srtp,udp,tcp,tls",
    "rtsps": "rtsp,rtsps,rtp,srtp,udp,tcp,tls",
    "srt": "srt",
    "udp": "udp",
    "rtp": "rtp,udp",
    "tcp": "tcp",
    "rist": "rist",
    "file": "file",
}


class SourceError(ValueError):
    """The source URL was refused; ``str(err)`` is safe and meant for API clients."""


@dataclass(frozen=True, slots=True)
class ValidatedSource:
    """A URL safe to pass as the value of ``-i``, plus the input options that go before it."""

    url: str  # what goes after -i (for lavfi: the filter graph)
    scheme: str
    input_args: tuple[str, ...]
    host: str | None = None  # network sources: the host FFmpeg will connect to, for the policy
    port: int | None = None  # the port it connects to (the scheme's default when none is named)


def synthetic_source(filter_graph: str) -> ValidatedSource:
    """A lavfi source built by the service itself (``hlsdash demo``), never from a request.

    It bypasses ``ALLOWED_PROTOCOLS`` on purpose: no client can name it, so lavfi never has to be
    opened to the network for the demo to run.
    """
    # -re paces the generator at real time; without it testsrc runs as fast as the CPU allows
    # and the live edge would race ahead of the wall clock.
    return ValidatedSource(url=filter_graph, scheme="lavfi", input_args=("-re", "-f", "lavfi"))


def _network_input_args(scheme: str) -> tuple[str, ...]:
    """Read timeouts, per FFmpeg 9's option names (checked with ``ffmpeg -h protocol=…``).

    ``-rw_timeout`` is the generic URLContext I/O timeout and is the right one for http and rtmp
    (rtmp's own ``-timeout`` means *listen* and would turn the client into a server). rtsp, srt,
    udp and rtp have their own socket ``-timeout`` in µs.

    ``-fflags nobuffer`` drops the packets read while FFmpeg probes the input instead of queueing
    them for decoding. Queued, they are a backlog of live media (~4 s for MPEG-TS over HTTP) that
    comes out late, and the packager anchors the timeline on the first fragment's arrival, so the
    backlog stayed in every PDT / DASH availability time: players aimed at "1.5 s" and showed
    frames ~5.5 s old. Losing a second of a live source at start-up costs nothing.
    """
    timeout = str(READ_TIMEOUT_US)
    # -fflags nobuffer: packets read while probing are not queued: queued, they were a start-up
    # backlog the timeline's wall-clock anchor kept for the stream's life (issue 10)
    whitelist = ("-protocol_whitelist", _WHITELIST[scheme], "-fflags", "nobuffer")
    if scheme in {"http", "https", "rtmp", "rtmps", "rist"}:
        # librist has no socket timeout of its own; -rw_timeout is the generic one
        return (*whitelist, "-rw_timeout", timeout)
    if scheme in {"rtsp", "rtsps"}:
        # TCP interleaving: survives NAT and firewalls and does not drop packets under load.
        return (*whitelist, "-rtsp_transport", "tcp", "-timeout", timeout)
    return (*whitelist, "-timeout", timeout)


def _ffmpeg_protocol_names(url: str) -> tuple[str, ...]:
    """Protocol names FFmpeg would open for ``url``, outermost first (as url_find_protocol).

    ``crypto+http://h/x`` → ("crypto", "http"); ``subfile,,…:x`` → ("subfile",).
    """
    if url.startswith("subfile,"):
        return ("subfile",)
    prefix = _FFMPEG_SCHEME_PREFIX_RE.match(url)
    scheme = prefix.group(0) if prefix else ""
    if not scheme or url[len(scheme) : len(scheme) + 1] != ":":
        # FFmpeg would treat a scheme-less string as a local path.
        raise SourceError("source URL needs a scheme such as rtmp://")
    names = tuple(scheme.split("+"))
    if not all(_NAME_RE.match(name) for name in names):
        raise SourceError(f"malformed protocol {scheme!r}")
    return names


def validate_source_url(
    url: str, allowed: frozenset[str] = frozenset(DEFAULT_ALLOWED_PROTOCOLS)
) -> ValidatedSource:
    """Accept ``url`` only if FFmpeg will read it as the plain protocol it appears to be.

    Raises:
        SourceError: with a short client-facing reason.
    """
    if not url:
        raise SourceError("source URL is empty")
    if len(url) > MAX_URL_LENGTH:
        raise SourceError(f"source URL is longer than {MAX_URL_LENGTH} characters")
    if any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in url):
        raise SourceError("source URL contains whitespace or control characters")
    if url.startswith("-"):
        raise SourceError("source URL must not start with '-'")
    names = _ffmpeg_protocol_names(url)
    for name in names:
        if name not in NETWORK_SCHEMES and name not in OPERATOR_PROTOCOLS:
            raise SourceError(f"unknown protocol {name!r}")
        if name not in allowed:
            if len(names) > 1 or name == "subfile":
                raise SourceError("nested FFmpeg protocols are not allowed")
            raise SourceError(f"protocol {name!r} is not allowed")
    scheme = names[0]
    if len(names) > 1 or scheme == "subfile":
        # Explicitly allowed by the operator: passed through untouched.
        return ValidatedSource(url=url, scheme=scheme, input_args=())

    rest = url[len(scheme) + 1 :]
    if scheme in NETWORK_SCHEMES:
        host, port = _network_endpoint(scheme, url, rest)
        _refuse_listener_mode(scheme, url, host)
        return ValidatedSource(
            url=url,
            scheme=scheme,
            input_args=_network_input_args(scheme),
            host=host,
            port=port if port is not None else DEFAULT_PORTS.get(scheme),
        )
    if scheme == "lavfi":
        if not rest or rest.startswith("-"):
            raise SourceError("lavfi source needs a filter graph")
        return synthetic_source(rest)
    if scheme == "file":
        if not rest:
            raise SourceError("file source needs a path")
        # A file is replayed as an endless live source.
        return ValidatedSource(
            url=url,
            scheme=scheme,
            input_args=("-protocol_whitelist", "file", "-re", "-stream_loop", "-1"),
        )
    # Other operator-only protocols (concat, subfile, pipe, data, async, cache, crypto): passed
    # through as-is because the operator asked for them explicitly.
    return ValidatedSource(url=url, scheme=scheme, input_args=())


def _ffmpeg_host_port(rest: str) -> tuple[str, str | None]:
    """Host and port text of ``//authority…`` exactly as libavformat's ``av_url_split`` reads it.

    The authority ends at the first ``/``, ``?`` or ``#``; user info ends at its *last* ``@``;
    ``[v6]`` brackets; otherwise the host ends at the first ``:``.
    """
    after = rest[2:]
    end = min((i for i in (after.find(c) for c in "/?#") if i >= 0), default=len(after))
    hostport = after[:end].rpartition("@")[2]
    if hostport.startswith("[") and "]" in hostport:
        host, _, tail = hostport[1:].partition("]")
        return host, tail[1:] if tail.startswith(":") else None
    host, colon, port = hostport.partition(":")
    return host, port if colon else None


def _atoi(text: str | None) -> int | None:
    """C's atoi, which FFmpeg applies to the port text (None when there is no port)."""
    if text is None:
        return None
    digits = re.match(r"[+-]?\d+", text)
    return int(digits.group()) if digits else 0


def _network_endpoint(scheme: str, url: str, rest: str) -> tuple[str, int | None]:
    """(host, port) of a network URL; refuses anything FFmpeg and Python would read differently,
    since the host policy checks Python's reading and FFmpeg connects to its own."""
    if not rest.startswith("//"):
        raise SourceError("source URL has no host")
    try:
        parts = urlsplit(url)
        python_host = parts.hostname or ""
        port = parts.port  # raises ValueError for a non-numeric or out-of-range port
    except ValueError as exc:
        raise SourceError("source URL has an invalid host or port") from exc
    if parts.netloc.startswith("@"):
        # udp://@:1234, rtp://@:5004, rist://@host:port: FFmpeg (librist) binds and listens
        raise SourceError(_listener_message(scheme, "'@' (a local bind)"))
    if not python_host:
        raise SourceError("source URL has no host")
    ffmpeg_host, ffmpeg_port = _ffmpeg_host_port(rest)
    if ffmpeg_host.lower() != python_host.lower() or _atoi(ffmpeg_port) != port:
        raise SourceError("source URL has an ambiguous host or port")
    if len(python_host) > MAX_HOST_CHARS:
        raise SourceError(f"source host is longer than {MAX_HOST_CHARS} characters")
    if port == 0:
        raise SourceError("source URL has an invalid host or port")
    return python_host, port


def _listener_message(scheme: str, what: str) -> str:
    return (
        f"source_url must name a server to pull from: {scheme} with {what} would make the service "
        "listen for a sender (push ingest is not a pull source)"
    )


def _query_options(url: str) -> list[tuple[str, str]]:
    """Every ``key=value`` FFmpeg could read from ``url``, over-approximated.

    Protocols read their options from the first ``?`` of the *whole* URL (a ``#`` does not stop
    them) and rtsp from the last ``?`` of its path, so every ``?``- or ``&``-separated piece after
    the first ``?`` counts.
    """
    _, question, query = url.partition("?")
    if not question:
        return []
    options = []
    for piece in re.split(r"[?&]", query):
        key, _, value = piece.partition("=")
        options.append((key.strip().lower(), value.replace("+", " ").strip().lower()))
    return options


def _refuse_listener_mode(scheme: str, url: str, host: str) -> None:
    """Refuse a URL that would make FFmpeg bind a port and wait for a sender."""
    for key, value in _query_options(url):
        if key in _LISTENER_OPTIONS:
            raise SourceError(_listener_message(scheme, f"the {key!r} option"))
        if key == "mode" and value != "caller":
            raise SourceError(_listener_message(scheme, f"mode={value}"))
        if scheme in {"rtsp", "rtsps"} and key in _RTSP_UDP_OPTIONS:
            raise SourceError(_listener_message(scheme, f"the {key!r} transport (local ports)"))
    if scheme in {"udp", "rtp"}:
        # Reading udp:// or rtp:// binds the URL's port on this host whatever the host says;
        # only a multicast group is a pull (FFmpeg then binds the group address and joins it).
        group = parse_address(host)
        if group is None or not group.is_multicast:
            raise SourceError(
                _listener_message(scheme, "a unicast address")
                + f"; {scheme} sources must name a multicast group"
            )


# user:pass@ of a URL anywhere in a text (up to the last @ of its authority), and the value of
# any query option whose name looks secret (passphrase, token, key, sig, auth, streamid, …)
_USERINFO = re.compile(r"([a-z][a-z0-9+.-]*://)[^/?#\s'\"]*@", re.IGNORECASE)
_SECRET_QUERY = re.compile(
    r"([?&;][a-z0-9_.-]*(?:pass|pwd|token|key|secret|sig|auth|credential|streamid)[a-z0-9_.-]*=)"
    r"[^&;\s'\"]*",
    re.IGNORECASE,
)


def redact_url(text: str) -> str:
    """Hide credentials (``user:pass@``, ``passphrase=…``, ``token=…``, ``sig=…``) in a URL or in
    any text that contains URLs (an FFmpeg log line, an error), before it is shown or logged."""
    text = _USERINFO.sub(r"\1***@", text)
    return _SECRET_QUERY.sub(r"\1***", text)
