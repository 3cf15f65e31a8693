"""The origin fast path's HTTP/1.1 head parser and response-head writer (pure)."""

from __future__ import annotations

import h11
import pytest
from hypothesis import given
from hypothesis import strategies as st

from supervisor.http.http1 import (
    HAND_OVER,
    LAST_CHUNK,
    MAX_HEAD_BYTES,
    HttpDate,
    RequestHead,
    encode_chunk,
    encode_response_head,
    parse_request_head,
)

DATE = "Wed, 25 Nov 2026 22:00:00 GMT"


def _head(lines: list[str]) -> bytes:
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def test_plain_get_is_parsed_like_asgi_would() -> None:
    head = _head(
        [
            "GET /demo/v0/seg%2D1.m4s?_HLS_msn=3&_HLS_part=1 HTTP/1.1",
            "Host: origin",
            "Range: bytes=0-99",
            "Accept-Encoding: gzip",
            "accept-encoding: br",
        ]
    )
    request = parse_request_head(head)
    assert request == RequestHead(
        method="GET",
        path="/demo/v0/seg-1.m4s",
        query="_HLS_msn=3&_HLS_part=1",
        headers={"host": "origin", "range": "bytes=0-99", "accept-encoding": "gzip, br"},
        keep_alive=True,
    )


@pytest.mark.parametrize(
    ("connection", "keep_alive"),
    [(None, True), ("keep-alive", True), ("close", False), ("Upgrade-Insecure, Close", False)],
)
def test_keep_alive_follows_connection_header(connection: str | None, keep_alive: bool) -> None:
    lines = ["HEAD /x/playlist.m3u8 HTTP/1.1", "Host: a"]
    if connection is not None:
        lines.append(f"Connection: {connection}")
    request = parse_request_head(_head(lines))
    assert isinstance(request, RequestHead)
    assert request.keep_alive is keep_alive


@pytest.mark.parametrize(
    "lines",
    [
        ["PRI * HTTP/2.0"],  # HTTP/2 prior knowledge
        ["GET / HTTP/1.0"],  # HTTP/1.0: h11 knows its keep-alive rules
        ["POST /x HTTP/1.1", "Host: a", "Content-Length: 3"],  # a body / another method
        ["DELETE /x HTTP/1.1", "Host: a"],  # 405 comes from the one ASGI path
        ["GET /x HTTP/1.1", "Host: a", "Upgrade: h2c", "HTTP2-Settings: AAA"],
        ["GET /x HTTP/1.1", "Host: a", "Transfer-Encoding: chunked"],
        ["GET /x HTTP/1.1", "Host: a", "Expect: 100-continue"],
        ["GET /x HTTP/1.1"],  # no Host: h11 answers 400
        ["GET http://a/x HTTP/1.1", "Host: a"],  # absolute-form
        ["GET /x\x01 HTTP/1.1", "Host: a"],  # control byte in the target
        ["GET /x HTTP/1.1", "Host: a", " folded"],  # obsolete line folding
        ["GET /x HTTP/1.1", "Host : a"],  # space before the colon
        ["GET /x HTTP/1.1", "Host: a", "X-Bad: a\x00b"],
        ["GET  /x HTTP/1.1", "Host: a"],
        ["garbage"],
    ],
)
def test_anything_unusual_is_handed_over(lines: list[str]) -> None:
    assert parse_request_head(_head(lines)) is HAND_OVER


def test_oversized_head_is_handed_over() -> None:
    lines = ["GET /x HTTP/1.1", "Host: a", "X-Big: " + "a" * MAX_HEAD_BYTES]
    assert parse_request_head(_head(lines)) is HAND_OVER


@given(st.binary(max_size=600))
def test_arbitrary_bytes_never_raise(data: bytes) -> None:
    result = parse_request_head(data)
    assert result is HAND_OVER or isinstance(result, RequestHead)


_TOKEN = st.text(alphabet="abcdefghijklmnopqrstuvwxyz-", min_size=1, max_size=12).filter(
    lambda s: (
        s not in {"host", "content-length", "connection", "upgrade", "expect", "te"}
        and s not in {"transfer-encoding", "http2-settings"}
    )
)
_VALUE = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789=;,/ ", max_size=20).map(str.strip)
_PATH = st.lists(
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789._-", min_size=1, max_size=10),
    min_size=1,
    max_size=4,
).map(lambda parts: "/" + "/".join(parts))


@given(
    method=st.sampled_from(["GET", "HEAD", "OPTIONS"]),
    path=_PATH,
    query=st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_=&", max_size=20),
    fields=st.dictionaries(_TOKEN, _VALUE, max_size=5),
)
def test_agrees_with_h11_on_what_h11_accepts(
    method: str, path: str, query: str, fields: dict[str, str]
) -> None:
    """Whatever we parse, h11 (what Hypercorn would have used) parses the same way."""
    target = f"{path}?{query}" if query else path
    lines = [f"{method} {target} HTTP/1.1", "Host: origin"]
    lines += [f"{k}: {v}" for k, v in fields.items()]
    raw = _head(lines)
    ours = parse_request_head(raw)
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(raw)
    theirs = conn.next_event()
    assert isinstance(theirs, h11.Request)
    assert isinstance(ours, RequestHead)
    assert ours.method == theirs.method.decode()
    assert ours.path + (f"?{ours.query}" if query else "") == theirs.target.decode()
    assert ours.headers == {k.decode(): v.decode() for k, v in theirs.headers}


def test_response_head_adds_date_and_length() -> None:
    head = encode_response_head(
        200, (("content-type", "video/mp4"),), date=DATE, body_length=5, keep_alive=True
    )
    assert head == (
        b"HTTP/1.1 200 OK\r\ncontent-type: video/mp4\r\n"
        b"date: Wed, 25 Nov 2026 22:00:00 GMT\r\ncontent-length: 5\r\n\r\n"
    )


def test_response_head_keeps_given_length_and_says_close() -> None:
    head = encode_response_head(
        206, (("content-length", "10"),), date=DATE, body_length=0, keep_alive=False
    )
    assert head.count(b"content-length") == 1
    assert head.startswith(b"HTTP/1.1 206 Partial Content\r\n")
    assert head.endswith(b"connection: close\r\n\r\n")


def test_304_gets_no_length_and_streamed_gets_chunked() -> None:
    not_modified = encode_response_head(304, (), date=DATE, body_length=0, keep_alive=True)
    assert b"content-length" not in not_modified
    assert b"transfer-encoding" not in not_modified
    streamed = encode_response_head(200, (), date=DATE, body_length=None, keep_alive=True)
    assert b"transfer-encoding: chunked\r\n" in streamed


def test_chunked_body_is_what_h11_reads() -> None:
    head = encode_response_head(200, (), date=DATE, body_length=None, keep_alive=True)
    wire = head + encode_chunk(b"hello ") + encode_chunk(b"x" * 300) + LAST_CHUNK
    client = h11.Connection(h11.CLIENT)
    client.send(h11.Request(method="GET", target="/", headers=[("host", "a")]))
    client.send(h11.EndOfMessage())
    client.receive_data(wire)
    events = []
    while True:
        event = client.next_event()
        if event is h11.NEED_DATA or isinstance(event, h11.EndOfMessage):
            events.append(event)
            break
        events.append(event)
    body = b"".join(bytes(e.data) for e in events if isinstance(e, h11.Data))
    assert isinstance(events[0], h11.Response)
    assert events[0].status_code == 200
    assert isinstance(events[-1], h11.EndOfMessage)
    assert body == b"hello " + b"x" * 300


def test_http_date_is_formatted_once_per_second() -> None:
    clock = HttpDate()
    first = clock.at(1_795_000_000.1)
    assert first == "Wed, 18 Nov 2026 11:06:40 GMT"
    assert clock.at(1_795_000_000.9) is first
    assert clock.at(1_795_000_001.0) == "Wed, 18 Nov 2026 11:06:41 GMT"
