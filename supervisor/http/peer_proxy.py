"""Origin proxying between cluster nodes: a non-owner serves any stream from its owner's origin.

A CDN or load balancer may send any request to any node; the node that does not run the stream
asks the owner's origin (``NODE_ORIGIN_URL``) and answers with the owner's status, body and
caching headers (Cache-Control, ETag, Content-Type, Content-Range, Accept-Ranges, Vary,
Content-Encoding, CORS), so what a client or cache sees does not depend on the node it reached.

* **One upstream request for N identical ones** (request collapsing). Requests with equal keys
  (method, path, query and every request header the owner's answer depends on) share one
  *flight*: the first starts it, the rest wait for its answer — the same idea as the origin's own
  collapsed blocking reloads (``origin_server``), one hop further up. A flight lives as long as
  its upstream exchange; a request arriving after it ended asks again (no stale answers kept).
* **Growing segments stream through.** An upstream answer without Content-Length (LL-DASH chunked
  growing segment) is relayed chunk by chunk as it arrives; followers that join mid-way get the
  chunks seen so far and then each new one (a growing segment is one segment, so keeping its
  chunks for late joiners is bounded by a segment's size). An LL-HLS blocking reload
  (``_HLS_msn``/``_HLS_part``) is an ordinary request held by the owner; its answer is collapsed
  like any other.
* **Upstream fetches run in the proxy's own nursery**, not in a requester's task: the first
  requester disconnecting does not cut the answer off for the others.
* **Timeouts and errors**: connect and per-read timeouts; an unreachable owner is a 502
  ``owner_unreachable``, a timeout a 504 ``owner_timeout`` (JSON, CORS, ``no-store``), never a
  traceback. A body that breaks mid-stream ends the client's response early (the only honest
  signal once bytes are sent).
* **No loops**: every proxied request carries :data:`PROXIED_HEADER`; a node never proxies a
  request that has it (ownership moved under us → the peer answers 503 ``stream_moving`` and
  the player or CDN retries).
* **Between owners**: a stream the registry has but no live node serves here (its owner just
  died, a drain hands it over) is a 503 ``stream_moving`` with ``Retry-After``, never the 404
  of a stream that does not exist: players retry a 5xx, not a 4xx. It is answered at once, not
  held until the stream lands: tried, hls.js 1.7.4 timed its held LL-HLS blocking reloads out
  (``levelLoadTimeOut``, not fatal) and never played again, whereas a prompt 5xx ends in a
  fatal load error the player page answers with ``hls.startLoad()``
  (tests/e2e/test_cluster_players.py).

HTTP client: httpx (already the test client here) on trio through anyio/httpcore: a maintained
HTTP/1.1 client with a keep-alive pool per peer, per-phase timeouts and raw (undecoded) body
iteration, so gzip bodies and their ETags pass through byte for byte. A client of our own over
trio sockets would save ~0.3 ms per exchange but would re-implement chunked decoding, pooling and
the error cases httpcore already gets right; the node-to-node hop is not the hot path (the CDN
and the owner's own collapsing are).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Final, Protocol
from urllib.parse import quote

import httpx
import structlog
import trio

from supervisor.http import origin_core
from supervisor.http.origin_core import HeaderPairs, OriginResponse, RequestHeaders
from supervisor.http.playback import StreamedResponse

log = structlog.get_logger(__name__)

# Marks a request one node sends to another: the receiving node answers it itself, never proxies.
PROXIED_HEADER: Final = "x-hlsdash-proxied"
# Request headers an origin answer depends on (the flight key) plus the viewer's identity.
_VARYING_REQUEST_HEADERS: Final = ("range", "if-range", "if-none-match", "accept-encoding")
_IDENTITY_REQUEST_HEADERS: Final = ("user-agent", "x-forwarded-for")
# Per-connection fields and those the answering HTTP layer writes itself (RFC 9110 §7.6.1).
_NOT_PASSED_THROUGH: Final = frozenset(
    {
        "connection",
        "keep-alive",
        "transfer-encoding",
        "te",
        "trailer",
        "upgrade",
        "proxy-connection",
        "date",
        "server",
    }
)
_NO_BODY_STATUSES: Final = frozenset({204, 304})


@dataclass(frozen=True, slots=True)
class ProxySettings:
    connect_timeout_s: float = 2.0
    # between two reads of one answer: the owner holds a blocking reload up to ~3 target durations
    # (6 s at the default 2 s segments) before it answers, and a growing segment's next chunk
    # comes within one part
    read_timeout_s: float = 20.0
    max_connections_per_peer: int = 64
    keepalive_expiry_s: float = 30.0
    # a whole (Content-Length) answer larger than this is refused as a 502; segments are ~1.5 MB
    max_whole_body_bytes: int = 64 * 1024 * 1024
    # an upstream exchange never outlives this, whoever still waits for it
    max_exchange_s: float = 60.0


class ClusterView(Protocol):
    """What the origin asks the cluster about a stream (``supervisor.cluster`` answers)."""

    async def proxy_target(self, stream_id: str) -> str | None:
        """The owner's origin base URL when another node runs the stream; None to answer here
        (this node runs it, or no node does and the local answer is the 404)."""
        ...

    async def moving(self, stream_id: str) -> bool:
        """A miss here is the stream between nodes, not a stream or object that does not exist:
        the cluster has the stream, this node does not run it, and no live owner was asked (its
        owner died and nobody has claimed it yet, it is handed over by a drain, or a peer asked
        this node as the owner it no longer is)."""
        ...

    def fenced(self, stream_id: str) -> bool:
        """This node runs the stream without a lease it knows valid: publish nothing of it.

        Synchronous and local (a deadline on trio's clock), so it can be asked again after an
        answer was computed: a node frozen past its lease (SIGSTOP) and woken up must not hand
        out what its live edge produced meanwhile, before its lease keeper has had a turn."""
        ...


LEASE_LOST: Final = origin_core.error_json(
    503, "lease_lost", "this node no longer holds the stream's lease; ask again"
)


def stream_moving(*, head: bool = False) -> OriginResponse:
    """503 for a stream between owners, never a 404: players retry a 5xx (hls.js gives up on a
    4xx playlist at once) and a CDN stores nothing (``no-store``); ``Retry-After`` is the time
    a claim takes to show."""
    answer = origin_core.error_json(
        503, "stream_moving", "the stream is moving to another node; retry", head=head
    )
    return OriginResponse(answer.status, (*answer.headers, ("retry-after", "1")), answer.body)


async def fenced_chunks(
    chunks: AsyncIterator[bytes], view: ClusterView, stream_id: str
) -> AsyncIterator[bytes]:
    """A local streamed body that stops the moment the node loses the stream's lease."""
    async for chunk in chunks:
        if view.fenced(stream_id):
            raise UpstreamBroken("the stream's lease was lost while its segment was sent")
        yield chunk


class UpstreamBroken(Exception):  # noqa: N818 - a condition, raised into a streamed body
    """The owner's answer ended before its body did."""


@dataclass(eq=False, slots=True)
class _Flight:
    """One upstream exchange and everyone waiting for it."""

    head_ready: trio.Event = field(default_factory=trio.Event)
    status: int = 0
    headers: HeaderPairs = ()
    body: bytes | None = None  # a whole answer; None while streamed (see chunks)
    streamed: bool = False
    chunks: list[bytes] = field(default_factory=list)
    finished: bool = False
    broken: bool = False
    failure: OriginResponse | None = None  # the answer when the owner could not be asked
    changed: trio.Event = field(default_factory=trio.Event)
    followers: int = 0  # requests that joined after the first (for tests and metrics)

    def notify(self) -> None:
        self.changed.set()
        self.changed = trio.Event()


FlightKey = tuple[str | None, ...]


class PeerProxy:
    """Forwards origin requests to peers' origins; run :meth:`run` in a nursery first."""

    def __init__(
        self,
        settings: ProxySettings | None = None,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.settings = settings or ProxySettings()
        self._transport = transport
        self._client: httpx.AsyncClient | None = None
        self._nursery: trio.Nursery | None = None
        self._flights: dict[FlightKey, _Flight] = {}
        self.upstream_requests = 0  # exchanges started (collapsing makes this < requests)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        s = self.settings
        limits = httpx.Limits(
            max_connections=None,
            max_keepalive_connections=s.max_connections_per_peer,
            keepalive_expiry=s.keepalive_expiry_s,
        )
        timeout = httpx.Timeout(
            connect=s.connect_timeout_s,
            read=s.read_timeout_s,
            write=s.connect_timeout_s,
            pool=s.connect_timeout_s,
        )
        client = httpx.AsyncClient(
            transport=self._transport,
            limits=limits,
            timeout=timeout,
            follow_redirects=False,
            trust_env=False,  # peers are reached directly, never through an HTTP(S)_PROXY
        )
        async with client, trio.open_nursery() as nursery:
            self._client, self._nursery = client, nursery
            task_status.started()
            try:
                await trio.sleep_forever()
            finally:
                self._client = self._nursery = None
                nursery.cancel_scope.cancel(reason="peer proxy stopping")

    async def forward(
        self,
        origin_url: str,
        method: str,
        path: str,
        query: str,
        headers: RequestHeaders,
    ) -> OriginResponse | StreamedResponse:
        """The owner's answer to this request (collapsed with identical requests in flight)."""
        if method == "OPTIONS":
            return origin_core.preflight()
        if method not in {"GET", "HEAD"}:
            return origin_core.method_not_allowed()
        if self._nursery is None:
            return _error(503, "proxy_unavailable", "the peer proxy is not running", method)
        key = flight_key(origin_url, method, path, query, headers)
        flight = self._flights.get(key)
        if flight is None:
            flight = self._flights[key] = _Flight()
            self.upstream_requests += 1
            url = upstream_url(origin_url, path, query)
            self._nursery.start_soon(self._exchange, key, flight, method, url, headers)
        else:
            flight.followers += 1
        await flight.head_ready.wait()
        if flight.failure is not None:
            return flight.failure
        if not flight.streamed:
            assert flight.body is not None
            return OriginResponse(flight.status, flight.headers, flight.body)
        chunks = None if method == "HEAD" else _relay(flight)
        return StreamedResponse(flight.status, flight.headers, chunks)

    async def _exchange(
        self,
        key: FlightKey,
        flight: _Flight,
        method: str,
        url: str,
        headers: RequestHeaders,
    ) -> None:
        try:
            with trio.move_on_after(self.settings.max_exchange_s):
                await self._ask(flight, method, url, upstream_headers(headers))
        except httpx.TimeoutException as error:
            log.warning("peer_timeout", url=url, error=str(error) or type(error).__name__)
            self._fail(flight, _error(504, "owner_timeout", "the owner did not answer in time"))
        except (httpx.HTTPError, OSError) as error:
            log.warning("peer_unreachable", url=url, error=str(error) or type(error).__name__)
            self._fail(flight, _error(502, "owner_unreachable", "the owner could not be reached"))
        finally:
            if self._flights.get(key) is flight:
                del self._flights[key]
            if not flight.head_ready.is_set():
                # cancelled (shutdown, max_exchange_s) before the owner answered
                self._fail(flight, _error(504, "owner_timeout", "the owner did not answer in time"))
            if not flight.finished:
                flight.broken = True
                flight.finished = True
            flight.notify()

    async def _ask(self, flight: _Flight, method: str, url: str, headers: dict[str, str]) -> None:
        assert self._client is not None
        request = self._client.build_request(method, url, headers=headers)
        response = await self._client.send(request, stream=True)
        try:
            passed = passed_headers(response.headers.raw)
            length = response.headers.get("content-length")
            flight.status = response.status_code
            whole = (
                length is not None or method == "HEAD" or response.status_code in _NO_BODY_STATUSES
            )
            if whole:
                if length is not None and int(length) > self.settings.max_whole_body_bytes:
                    self._fail(flight, _error(502, "owner_answer_too_large", "answer too large"))
                    return
                # raw bytes (never decoded): the owner's Content-Length and ETag stay true; a
                # HEAD keeps the Content-Length of the GET body it stands for
                flight.body = b"" if method == "HEAD" else await _read_all(response)
                flight.headers = passed
                flight.finished = True
                flight.head_ready.set()
                return
            flight.headers, flight.streamed = passed, True
            flight.head_ready.set()
            async for chunk in response.aiter_raw():
                if chunk:
                    flight.chunks.append(chunk)
                    flight.notify()
            flight.finished = True
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(1.0):
                await response.aclose()

    def _fail(self, flight: _Flight, answer: OriginResponse) -> None:
        if flight.head_ready.is_set():
            flight.broken = True  # too late for a status: the streamed body ends early
        else:
            flight.failure = answer
            flight.head_ready.set()
        flight.finished = True

    def flights_in_progress(self) -> int:
        return len(self._flights)


async def _read_all(response: httpx.Response) -> bytes:
    parts = [chunk async for chunk in response.aiter_raw()]
    return b"".join(parts)


async def _relay(flight: _Flight) -> AsyncIterator[bytes]:
    """Every chunk of a streamed flight, from the first, as soon as each arrives."""
    sent = 0
    while True:
        while sent < len(flight.chunks):
            yield flight.chunks[sent]
            sent += 1
        if flight.finished:
            if flight.broken:
                raise UpstreamBroken("the owner's answer ended before its body did")
            return
        await flight.changed.wait()


def flight_key(
    origin_url: str, method: str, path: str, query: str, headers: RequestHeaders
) -> FlightKey:
    """Requests with equal keys get the same upstream answer (nothing else changes it)."""
    return (
        origin_url,
        method,
        path,
        query,
        *(headers.get(name) for name in _VARYING_REQUEST_HEADERS),
    )


def upstream_url(origin_url: str, path: str, query: str) -> str:
    """The owner's URL for a request path (already percent-decoded) and raw query."""
    url = origin_url.rstrip("/") + quote(path, safe="/")
    return f"{url}?{query}" if query else url


def upstream_headers(headers: RequestHeaders) -> dict[str, str]:
    """What the owner gets: the headers its answer depends on, the viewer's identity, the mark."""
    out = {
        name: value
        for name in (*_VARYING_REQUEST_HEADERS, *_IDENTITY_REQUEST_HEADERS)
        if (value := headers.get(name)) is not None
    }
    # without it httpx would ask for gzip on its own and the flight key would lie
    out.setdefault("accept-encoding", "identity")
    out[PROXIED_HEADER] = "1"
    return out


def passed_headers(raw: list[tuple[bytes, bytes]]) -> HeaderPairs:
    """The owner's response headers minus per-connection ones, lowercase names, order kept."""
    pairs: list[tuple[str, str]] = []
    for name_bytes, value_bytes in raw:
        name = name_bytes.decode("latin-1").lower()
        if name not in _NOT_PASSED_THROUGH:
            pairs.append((name, value_bytes.decode("latin-1")))
    return tuple(pairs)


def _error(status: int, code: str, message: str, method: str = "GET") -> OriginResponse:
    return origin_core.error_json(status, code, message, head=method == "HEAD")


@contextlib.asynccontextmanager
async def running_proxy(
    settings: ProxySettings | None = None, *, transport: httpx.AsyncBaseTransport | None = None
) -> AsyncIterator[PeerProxy]:
    """A running :class:`PeerProxy` for the body of the block (tests, tools)."""
    proxy = PeerProxy(settings, transport=transport)
    async with trio.open_nursery() as nursery:
        await nursery.start(proxy.run)
        try:
            yield proxy
        finally:
            nursery.cancel_scope.cancel(reason="proxy block done")
