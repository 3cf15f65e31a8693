"""Pure HTTP/1.1 pieces of the origin's fast path: read a request head, write a response head.

The fast path (``origin_server``) only takes the requests players and CDNs send all day: ``GET``,
``HEAD`` and ``OPTIONS`` in origin-form over HTTP/1.1, with a Host and no body. Anything else —
HTTP/1.0, the HTTP/2 preface, ``Upgrade: h2c``, a body, odd bytes in the target, a malformed or
oversized head — is :data:`HAND_OVER`: the connection goes to Hypercorn (h11/h2) with the bytes
already read, so every edge of the protocol keeps one, well-tested implementation.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from email.utils import formatdate
from enum import Enum
from http import HTTPStatus
from typing import Final
from urllib.parse import unquote

from supervisor.http.origin_core import lower_headers

# Hypercorn's h11_max_incomplete_size: a longer head is handed over and h11 answers it.
MAX_HEAD_BYTES: Final = 16 * 1024
HEAD_END: Final = b"\r\n\r\n"
FAST_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS"})
# Headers that mean "not a plain read": a body, an upgrade, an expectation.
_HAND_OVER_HEADERS: Final = ("upgrade", "transfer-encoding", "expect", "http2-settings")
_NO_BODY_STATUSES: Final = frozenset({204, 304})


class Verdict(Enum):
    HAND_OVER = "hand_over"


HAND_OVER: Final = Verdict.HAND_OVER


@dataclass(frozen=True, slots=True)
class RequestHead:
    method: str
    path: str  # percent-decoded, as ASGI's scope["path"]
    query: str  # raw query string, not decoded
    headers: dict[str, str]  # lower-case names; repeated fields joined with ", "
    keep_alive: bool


def parse_request_head(head: bytes) -> RequestHead | Verdict:
    """Parse one request head (request line + fields, blank line included or not)."""
    if len(head) > MAX_HEAD_BYTES + len(HEAD_END):
        return HAND_OVER
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3:
        return HAND_OVER
    method, target, version = parts
    if version != "HTTP/1.1" or method not in FAST_METHODS:
        return HAND_OVER
    if not target.startswith("/") or not target.isascii() or not target.isprintable():
        return HAND_OVER
    fields: list[tuple[str, str]] = []
    for line in lines[1:]:
        if not line:
            continue
        name, colon, value = line.partition(":")
        # no obsolete line folding, no space before the colon, no control bytes (RFC 9112 §5)
        if not colon or not name or not _is_token(name) or not _is_field_value(value):
            return HAND_OVER
        fields.append((name, value.strip(" \t")))
    headers = lower_headers(fields)
    if "host" not in headers or any(h in headers for h in _HAND_OVER_HEADERS):
        return HAND_OVER
    if headers.get("content-length", "0") != "0":
        return HAND_OVER
    raw_path, _, query = target.partition("?")
    connection = headers.get("connection", "")
    keep_alive = "close" not in (t.strip().lower() for t in connection.split(","))
    return RequestHead(method, unquote(raw_path), query, headers, keep_alive)


def is_blocking_reload(query: str) -> bool:
    """An LL-HLS blocking playlist reload (``_HLS_msn`` present; rfc8216bis §6.2.5.2)."""
    return "_HLS_msn=" in query


_TOKEN_CHARS: Final = frozenset(
    "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
)


def _is_token(name: str) -> bool:
    return all(c in _TOKEN_CHARS for c in name)


def _is_field_value(value: str) -> bool:
    # visible ASCII, obs-text and SP/HTAB only
    return all(c == "\t" or " " <= c <= "~" or c >= "\x80" for c in value)


_REASONS: Final = {s.value: s.phrase for s in HTTPStatus}


def encode_response_head(
    status: int,
    headers: Iterable[tuple[str, str]],
    *,
    date: str,
    body_length: int | None,
    keep_alive: bool,
) -> bytes:
    """Status line + fields + blank line, latin-1.

    ``body_length`` is the length to announce when ``headers`` carry no Content-Length; ``None``
    means the body is streamed (chunked). 204/304 never get either.
    """
    lines = [f"HTTP/1.1 {status} {_REASONS.get(status, '')}"]
    has_length = False
    for name, value in headers:
        if name == "content-length":
            has_length = True
        lines.append(f"{name}: {value}")
    lines.append(f"date: {date}")
    if status not in _NO_BODY_STATUSES and not has_length:
        if body_length is None:
            lines.append("transfer-encoding: chunked")
        else:
            lines.append(f"content-length: {body_length}")
    if not keep_alive:
        lines.append("connection: close")
    lines.append("\r\n")
    return "\r\n".join(lines).encode("latin-1")


def encode_chunk(data: bytes) -> bytes:
    """One chunk of a chunked body (never empty: an empty chunk ends the body)."""
    return b"%x\r\n%b\r\n" % (len(data), data)


LAST_CHUNK: Final = b"0\r\n\r\n"


class HttpDate:
    """The IMF-fixdate for the current second, formatted once per second."""

    __slots__ = ("_second", "_text")

    def __init__(self) -> None:
        self._second = -1
        self._text = ""

    def at(self, unix_s: float) -> str:
        second = int(unix_s)
        if second != self._second:
            self._second = second
            self._text = formatdate(second, usegmt=True)
        return self._text
