"""Source URL validation: the only door a client-supplied string has into FFmpeg's argv.

FFmpeg treats its input string as a tiny language: ``concat:a|b``, ``subfile,,start,0,,:x``,
``crypto+http://…``, ``async:``, ``cache:``, ``data:`` nest protocols, and a string without a
``scheme:`` prefix is a *local file path*. So a client URL is accepted only when it has an explicit,
allowed, plain scheme, and every accepted URL gets input options that (a) make a dead source end
FFmpeg instead of hanging it and (b) pin FFmpeg's own ``-protocol_whitelist`` to what that scheme
needs, so e.g. an HLS playlist fetched over http cannot pull ``file:`` entries.

Pure: no trio, no HTTP.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

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

NETWORK_SCHEMES = frozenset(DEFAULT_ALLOWED_PROTOCOLS)
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
    whitelist = ("-protocol_whitelist", _WHITELIST[scheme], "-fflags", "nobuffer")
    if scheme in {"http", "https", "rtmp", "rtmps"}:
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
        if name not in DEFAULT_ALLOWED_PROTOCOLS and name not in OPERATOR_PROTOCOLS:
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
        if not rest.startswith("//"):
            raise SourceError("source URL has no host")
        try:
            parts = urlsplit(url)
            host = parts.hostname
            port = parts.port  # raises ValueError for a non-numeric or out-of-range port
        except ValueError as exc:
            raise SourceError("source URL has an invalid host or port") from exc
        # FFmpeg's ``udp://@:1234`` / ``rtp://@:1234`` means "listen on this port": no host, but
        # then a port is required
        listens = scheme in {"udp", "rtp"} and parts.netloc.startswith("@") and port is not None
        if not host and not listens:
            raise SourceError("source URL has no host")
        if port == 0:
            raise SourceError("source URL has an invalid host or port")
        return ValidatedSource(url=url, scheme=scheme, input_args=_network_input_args(scheme))
    if scheme == "lavfi":
        if not rest or rest.startswith("-"):
            raise SourceError("lavfi source needs a filter graph")
        # -re paces the generator at real time; without it testsrc runs as fast as the CPU
        # allows and the live edge would race ahead of the wall clock.
        return ValidatedSource(url=rest, scheme=scheme, input_args=("-re", "-f", "lavfi"))
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


_USERINFO = re.compile(r"^([a-z][a-z0-9+.-]*://)[^/@]*@", re.IGNORECASE)
_SECRET_QUERY = re.compile(r"((?:pass(?:word|phrase)?|token|key|secret|streamid)=)[^&]*", re.I)


def redact_url(url: str) -> str:
    """Hide credentials (user:pass@, passphrase=…, token=…) before a URL is shown or logged."""
    url = _USERINFO.sub(r"\1***@", url)
    return _SECRET_QUERY.sub(r"\1***", url)
