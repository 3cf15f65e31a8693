"""The peer proxy against a fake owner (an httpx transport answering like an origin).

Checked here: the owner's status, body and caching headers pass through; identical concurrent
requests make one upstream request; a growing segment is relayed chunk by chunk as the owner
produces it (a chunk reaches the client before the owner has the next); errors and timeouts
become JSON 502/504; the proxied mark is always sent (no loops). The same proxy against two real
``hlsdash serve`` processes is ``tests/integration/test_cluster_origin.py``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import httpx
import pytest
import trio

from supervisor.http.origin_core import OriginResponse
from supervisor.http.peer_proxy import (
    PROXIED_HEADER,
    ProxySettings,
    UpstreamBroken,
    flight_key,
    passed_headers,
    running_proxy,
    upstream_headers,
    upstream_url,
)
from supervisor.http.playback import StreamedResponse

OWNER = "http://owner.test:8084"
SEGMENT_HEADERS = [
    ("access-control-allow-origin", "*"),
    ("content-type", "video/mp4"),
    ("etag", '"abc123"'),
    ("cache-control", "public, max-age=31536000, immutable"),
    ("accept-ranges", "bytes"),
    ("content-range", "bytes 0-3/100"),
    ("content-length", "4"),
    ("connection", "keep-alive"),
    ("keep-alive", "timeout=5"),
    ("date", "Mon, 30 Nov 2026 14:00:00 GMT"),
]


@dataclass
class FakeOwner:
    """An owner's origin: records requests; ``handler`` builds each answer."""

    handler: Callable[[httpx.Request], object]
    requests: list[httpx.Request] = field(default_factory=list)

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.handler(request)
        if isinstance(answer, httpx.Response):
            return answer
        assert callable(answer)
        response = await answer()
        assert isinstance(response, httpx.Response)
        return response

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self)


def answer_of(
    status: int, headers: list[tuple[str, str]] | None = None, body: bytes = b""
) -> httpx.Response:
    """An answer whose body is read from its stream, like one off the network."""
    pairs = list(headers or [])
    if not any(name == "content-length" for name, _ in pairs):
        pairs.append(("content-length", str(len(body))))
    return httpx.Response(status, headers=pairs, stream=httpx.ByteStream(body))


def headers_of(**values: str) -> dict[str, str]:
    return {k.replace("_", "-"): v for k, v in values.items()}


async def test_whole_answer_passes_status_body_and_caching_headers_through() -> None:
    owner = FakeOwner(lambda _r: answer_of(206, SEGMENT_HEADERS, b"\0\1\2\3"))
    async with running_proxy(transport=owner.transport()) as proxy:
        answer = await proxy.forward(
            OWNER,
            "GET",
            "/cam/240p/seg_7.m4s",
            "",
            headers_of(range="bytes=0-3", if_none_match='"x"', user_agent="hls.js", host="edge"),
        )
    assert isinstance(answer, OriginResponse)
    assert answer.status == 206
    assert answer.body == b"\0\1\2\3"
    assert dict(answer.headers) == {
        "access-control-allow-origin": "*",
        "content-type": "video/mp4",
        "etag": '"abc123"',
        "cache-control": "public, max-age=31536000, immutable",
        "accept-ranges": "bytes",
        "content-range": "bytes 0-3/100",
        "content-length": "4",
    }
    (sent,) = owner.requests
    assert str(sent.url) == "http://owner.test:8084/cam/240p/seg_7.m4s"
    assert sent.headers["range"] == "bytes=0-3"
    assert sent.headers["if-none-match"] == '"x"'
    assert sent.headers["user-agent"] == "hls.js"
    assert sent.headers[PROXIED_HEADER] == "1"
    assert sent.headers["host"] == "owner.test:8084"  # the owner's, not the client's


async def test_gzip_body_is_passed_through_undecoded_with_its_etag() -> None:
    gz = b"\x1f\x8b\x08\x00fake-gzip-bytes"
    owner = FakeOwner(
        lambda _r: answer_of(
            200,
            [
                ("content-type", "application/vnd.apple.mpegurl"),
                ("content-encoding", "gzip"),
                ("vary", "Accept-Encoding"),
                ("etag", '"p1-gz"'),
            ],
            gz,
        )
    )
    async with running_proxy(transport=owner.transport()) as proxy:
        answer = await proxy.forward(
            OWNER, "GET", "/cam/240p/playlist.m3u8", "", headers_of(accept_encoding="gzip")
        )
    assert isinstance(answer, OriginResponse)
    assert answer.body == gz
    assert answer.header("content-encoding") == "gzip"
    assert answer.header("etag") == '"p1-gz"'
    assert owner.requests[0].headers["accept-encoding"] == "gzip"


async def test_without_accept_encoding_the_owner_is_asked_for_identity() -> None:
    owner = FakeOwner(lambda _r: answer_of(200, body=b"#EXTM3U\n"))
    async with running_proxy(transport=owner.transport()) as proxy:
        await proxy.forward(OWNER, "GET", "/cam/playlist.m3u8", "", {})
    assert owner.requests[0].headers["accept-encoding"] == "identity"


async def test_head_keeps_the_owners_content_length() -> None:
    owner = FakeOwner(lambda _r: answer_of(200, [("content-length", "1234")]))
    async with running_proxy(transport=owner.transport()) as proxy:
        answer = await proxy.forward(OWNER, "HEAD", "/cam/240p/seg_1.m4s", "", {})
    assert isinstance(answer, OriginResponse)
    assert answer.body == b""
    assert answer.header("content-length") == "1234"
    assert owner.requests[0].method == "HEAD"


async def test_identical_blocking_reloads_make_one_upstream_request() -> None:
    release = trio.Event()

    def hold(_request: httpx.Request) -> object:
        async def answer() -> httpx.Response:
            await release.wait()  # the owner holds the blocking reload
            return answer_of(200, [("etag", '"v9"')], b"#EXTM3U\n#v9\n")

        return answer

    owner = FakeOwner(hold)
    query = "_HLS_msn=9&_HLS_part=0"
    answers: list[OriginResponse | StreamedResponse] = []
    async with running_proxy(transport=owner.transport()) as proxy:

        async def ask(q: str) -> None:
            answers.append(await proxy.forward(OWNER, "GET", "/cam/240p/playlist.m3u8", q, {}))

        async with trio.open_nursery() as nursery:
            for _ in range(10):
                nursery.start_soon(ask, query)
            nursery.start_soon(ask, "_HLS_msn=9&_HLS_part=1")  # another key: its own request
            await trio.testing.wait_all_tasks_blocked()
            assert proxy.flights_in_progress() == 2
            release.set()
        assert proxy.flights_in_progress() == 0
        # a flight ends with its exchange: the next identical request asks the owner again
        await proxy.forward(OWNER, "GET", "/cam/240p/playlist.m3u8", query, {})
    assert len(answers) == 11
    assert all(isinstance(a, OriginResponse) and a.body == b"#EXTM3U\n#v9\n" for a in answers)
    queries = [r.url.query.decode() for r in owner.requests]
    assert sorted(queries) == sorted([query, "_HLS_msn=9&_HLS_part=1", query])


async def test_a_growing_segment_is_relayed_chunk_by_chunk_as_the_owner_writes_it() -> None:
    owner_may_send = [trio.Event() for _ in range(3)]
    owner_sent: list[int] = []

    async def growing() -> AsyncIterator[bytes]:
        for index, event in enumerate(owner_may_send):
            await event.wait()
            owner_sent.append(index)
            yield f"chunk{index};".encode()

    owner = FakeOwner(
        lambda _r: httpx.Response(
            200,
            headers=[("content-type", "video/mp4"), ("cache-control", "no-cache")],
            content=growing(),
        )
    )
    async with running_proxy(transport=owner.transport()) as proxy:
        owner_may_send[0].set()
        first = await proxy.forward(OWNER, "GET", "/cam/240p/seg_3.m4s", "", {})
        assert isinstance(first, StreamedResponse)
        assert dict(first.headers)["cache-control"] == "no-cache"
        assert first.chunks is not None
        chunk = await first.chunks.__anext__()
        # the client has chunk 0 while the owner has not produced chunk 1: nothing is buffered
        assert chunk == b"chunk0;"
        assert owner_sent == [0]
        owner_may_send[1].set()
        assert await first.chunks.__anext__() == b"chunk1;"
        # a second viewer joining mid-segment shares the exchange and gets it from the start
        late = await proxy.forward(OWNER, "GET", "/cam/240p/seg_3.m4s", "", {})
        assert isinstance(late, StreamedResponse)
        assert late.chunks is not None
        owner_may_send[2].set()
        rest = [c async for c in first.chunks]
        late_body = b"".join([c async for c in late.chunks])
    assert rest == [b"chunk2;"]
    assert late_body == b"chunk0;chunk1;chunk2;"
    assert len(owner.requests) == 1


async def test_a_body_broken_mid_stream_ends_the_relay_with_an_error() -> None:
    async def breaking() -> AsyncIterator[bytes]:
        yield b"first"
        raise httpx.ReadError("peer reset")

    owner = FakeOwner(lambda _r: httpx.Response(200, content=breaking()))
    async with running_proxy(transport=owner.transport()) as proxy:
        answer = await proxy.forward(OWNER, "GET", "/cam/240p/seg_3.m4s", "", {})
        assert isinstance(answer, StreamedResponse)
        assert answer.chunks is not None
        chunks = answer.chunks
        received: list[bytes] = []

        async def drain() -> None:
            async for chunk in chunks:
                received.append(chunk)

        with pytest.raises(UpstreamBroken):
            await drain()
    assert received == [b"first"]


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (httpx.ConnectError("connection refused"), 502, "owner_unreachable"),
        (httpx.ReadTimeout("timed out"), 504, "owner_timeout"),
    ],
)
async def test_an_owner_that_fails_is_a_json_error_never_a_traceback(
    error: Exception, status: int, code: str
) -> None:
    def fail(_request: httpx.Request) -> object:
        raise error

    async with running_proxy(transport=FakeOwner(fail).transport()) as proxy:
        answer = await proxy.forward(OWNER, "GET", "/cam/playlist.m3u8", "", {})
    assert isinstance(answer, OriginResponse)
    assert answer.status == status
    assert json.loads(answer.body)["error"]["code"] == code
    assert answer.header("cache-control") == "no-store"
    assert answer.header("access-control-allow-origin") == "*"


async def test_an_owner_that_never_answers_is_cut_at_the_exchange_bound(
    autojump_clock: trio.testing.MockClock,
) -> None:
    def never(_request: httpx.Request) -> object:
        async def answer() -> httpx.Response:
            await trio.sleep_forever()
            raise AssertionError

        return answer

    settings = ProxySettings(max_exchange_s=7.5)
    async with running_proxy(settings, transport=FakeOwner(never).transport()) as proxy:
        started = trio.current_time()
        answer = await proxy.forward(OWNER, "GET", "/cam/playlist.m3u8", "_HLS_msn=3", {})
        assert trio.current_time() - started == 7.5
    assert isinstance(answer, OriginResponse)
    assert answer.status == 504


async def test_options_and_writes_are_answered_without_asking_the_owner() -> None:
    owner = FakeOwner(lambda _r: answer_of(200))
    async with running_proxy(transport=owner.transport()) as proxy:
        preflight = await proxy.forward(OWNER, "OPTIONS", "/cam/playlist.m3u8", "", {})
        post = await proxy.forward(OWNER, "POST", "/cam/playlist.m3u8", "", {})
    assert isinstance(preflight, OriginResponse)
    assert preflight.status == 204
    assert isinstance(post, OriginResponse)
    assert post.status == 405
    assert owner.requests == []


def test_upstream_url_quotes_the_path_and_keeps_the_query_raw() -> None:
    assert upstream_url("http://n2:8084/", "/cam/240p/playlist.m3u8", "_HLS_msn=3&_HLS_part=1") == (
        "http://n2:8084/cam/240p/playlist.m3u8?_HLS_msn=3&_HLS_part=1"
    )
    assert upstream_url("http://n2:8084", "/a b/x", "") == "http://n2:8084/a%20b/x"


def test_flight_key_differs_by_every_header_the_answer_depends_on() -> None:
    base = flight_key(OWNER, "GET", "/cam/a", "", {})
    assert flight_key(OWNER, "GET", "/cam/a", "", {"user-agent": "other"}) == base
    for name in ("range", "if-range", "if-none-match", "accept-encoding"):
        assert flight_key(OWNER, "GET", "/cam/a", "", {name: "x"}) != base
    assert flight_key(OWNER, "HEAD", "/cam/a", "", {}) != base
    assert flight_key("http://other:8084", "GET", "/cam/a", "", {}) != base


def test_upstream_headers_carry_only_what_matters_and_the_mark() -> None:
    sent = upstream_headers(
        {"range": "bytes=0-1", "cookie": "secret", "authorization": "Bearer t", "host": "x"}
    )
    assert sent == {"range": "bytes=0-1", "accept-encoding": "identity", PROXIED_HEADER: "1"}


def test_passed_headers_drop_per_connection_fields() -> None:
    raw = [(k.encode(), v.encode()) for k, v in SEGMENT_HEADERS] + [
        (b"Transfer-Encoding", b"chunked"),
        (b"Server", b"hypercorn"),
        (b"ETag", b'"E"'),
    ]
    names = [name for name, _ in passed_headers(raw)]
    assert "connection" not in names
    assert "keep-alive" not in names
    assert "transfer-encoding" not in names
    assert "date" not in names
    assert "server" not in names
    assert names[-1] == "etag"
