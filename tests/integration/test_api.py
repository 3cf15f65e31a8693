"""The control API (8083 role) over real HTTP with a real stream (real FFmpeg, lavfi source)."""

from __future__ import annotations

import json
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from actors.packager.layout import STREAM_ID_PATTERN
from actors.status import QUALITY_NAMES
from supervisor.requests import RequestInvalid, parse_stream_request
from tests.integration.http_helpers import (
    LAVFI_SOURCE,
    Front,
    assert_error,
    playlist_uris,
    raw_request,
    running_front,
    stream_body,
    wait_live_segments,
)
from tests.integration.live import ffmpeg_pids, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# lavfi is needed for the cheap real source; file is deliberately NOT allowed here.
PROTOCOLS = "http,https,rtmp,rtmps,rtsp,rtsps,srt,udp,rtp,lavfi"
STREAM_KEYS = {
    "stream_id",
    "state",
    "source_url",
    "qualities",
    "qualities_produced",
    "audio",
    "enable_hls",
    "enable_dash",
    "low_latency",
    "created_at",
    "last_heartbeat_at",
    "lease_expires_at",
    "restarts",
    "last_error",
    "source",
    "encoder",
    "segments_produced",
    "urls",
}


def parse_iso(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


async def fetch_hls_objects(client: httpx.AsyncClient, base: str) -> dict[str, bytes]:
    """Multivariant → first media playlist → its init + last full segment + a part, all by the
    relative URIs the documents contain. ``base`` is the stream's folder URL path."""
    out: dict[str, bytes] = {}
    master = await client.get(f"{base}/playlist.m3u8")
    assert master.status_code == 200, master.text
    assert master.headers["content-type"] == "application/vnd.apple.mpegurl"
    media_uris = [u for u in playlist_uris(master.text) if u.endswith("playlist.m3u8")]
    assert "240p/playlist.m3u8" in media_uris
    assert "audio/playlist.m3u8" in media_uris
    for media_uri in media_uris:
        rendition = media_uri.split("/")[0]
        media = await client.get(f"{base}/{media_uri}")
        assert media.status_code == 200, media.text
        uris = playlist_uris(media.text)
        init = next(u for u in uris if u.startswith("init_"))
        segments = [u for u in uris if u.startswith("seg_")]
        parts = [u for u in uris if u.startswith("part_")]
        assert segments, media.text
        assert parts, media.text
        for name in (init, segments[-1], parts[0]):
            response = await client.get(f"{base}/{rendition}/{name}")
            assert response.status_code == 200, (name, response.text)
            assert response.headers["content-type"] in {"video/mp4", "audio/mp4"}
            assert len(response.content) > 0
            out[f"{rendition}/{name}"] = response.content
    return out


async def fetch_dash_objects(client: httpx.AsyncClient, base: str) -> dict[str, bytes]:
    mpd = await client.get(f"{base}/manifest.mpd")
    assert mpd.status_code == 200
    assert mpd.headers["content-type"] == "application/dash+xml"
    assert 'media="$RepresentationID$/seg_$Number$.m4s"' in mpd.text
    out = {}
    for rid in ("240p", "audio"):
        assert f'id="{rid}"' in mpd.text
        response = await client.get(f"{base}/{rid}/init_1.mp4")
        assert response.status_code == 200
        out[rid] = response.content
    return out


async def still_live(front: Front, stream_id: str, pid: int, segments_before: int) -> None:
    """A bad request must not have disturbed the running stream: same encoder, still producing."""
    actor = front.service.get(stream_id)
    await wait_live_segments(front, stream_id, segments_before + 1, timeout_s=15)
    status = actor.status
    assert status.state.value == "live"
    assert status.encoder_pid == pid
    assert status.restarts == 0
    response = await front.api.get(f"/streams/{stream_id}")
    assert response.status_code == 200
    assert response.json()["source_url"] == LAVFI_SOURCE


async def test_control_api(tmp_path: Path) -> None:
    async with running_front(tmp_path, ALLOWED_PROTOCOLS=PROTOCOLS, MAX_STREAMS="2") as front:
        api = front.api

        # ---- create: 201 at once, with playback URLs, before any segment exists
        started = time.monotonic()
        created = await api.post("/streams", json=stream_body("main"))
        assert time.monotonic() - started < 2.0
        assert created.status_code == 201, created.text
        assert created.headers["location"] == "/streams/main"
        info = created.json()
        assert set(info) >= STREAM_KEYS
        assert info["stream_id"] == "main"
        assert info["state"] in {"starting", "live"}
        assert info["qualities"] == ["240p"]
        urls = info["urls"]
        assert urls["hls"] == f"{front.api_url}/streams/main/playlist.m3u8"
        assert urls["dash"] == f"{front.api_url}/streams/main/manifest.mpd"
        assert urls["cdn_hls"] == f"{front.origin_url}/main/playlist.m3u8"
        assert urls["cdn_dash"] == f"{front.origin_url}/main/manifest.mpd"

        await wait_live_segments(front, "main", 3)
        actor = front.service.get("main")
        pid = actor.status.encoder_pid
        assert pid is not None
        assert pid in ffmpeg_pids()

        # ---- list and get
        listed = await api.get("/streams")
        assert listed.status_code == 200
        assert [s["stream_id"] for s in listed.json()["streams"]] == ["main"]
        got = (await api.get("/streams/main")).json()
        assert got["state"] == "live"
        assert got["qualities_produced"] == ["240p"]
        assert got["audio"] is True
        assert got["source_url"] == LAVFI_SOURCE
        assert got["source"]["width"] == 426
        assert got["source"]["height"] == 240
        assert abs(parse_iso(got["created_at"]) - time.time()) < 60
        assert parse_iso(got["last_heartbeat_at"]) <= time.time() + 1
        assert got["restarts"] == 0
        assert got["last_error"] is None
        assert got["encoder"]["pid"] == pid
        assert got["encoder"]["fps"] is not None
        assert got["encoder"]["speed"] is not None
        assert got["segments_produced"] >= 3
        assert got["urls"] == urls

        # ---- heartbeat renews the lease
        await trio.sleep(0.05)
        beat = await api.post("/streams/main/heartbeat")
        assert beat.status_code == 200, beat.text
        payload = beat.json()
        assert payload["stream_id"] == "main"
        assert payload["state"] == "live"
        assert parse_iso(payload["lease_expires_at"]) > parse_iso(got["lease_expires_at"])
        assert (
            payload["lease_expires_at"]
            == (await api.get("/streams/main")).json()["lease_expires_at"]
        )

        # ---- playback on both ports, through the relative URIs, same bytes
        via_api = await fetch_hls_objects(api, "/streams/main")
        via_origin = await fetch_hls_objects(front.origin, "/main")
        for name in via_api.keys() & via_origin.keys():
            if name.split("/")[1].startswith(("init_", "seg_")):
                assert via_api[name] == via_origin[name], name
        assert await fetch_dash_objects(api, "/streams/main") == await fetch_dash_objects(
            front.origin, "/main"
        )
        async with httpx.AsyncClient(timeout=30) as absolute:  # the URLs as given to clients
            for key in ("hls", "cdn_hls", "dash", "cdn_dash"):
                assert (await absolute.get(urls[key])).status_code == 200, key

        # ---- error paths: JSON errors, 4xx, the running stream untouched
        segments = actor.status.segments_produced
        await check_errors(front)
        await still_live(front, "main", pid, segments)

        # ---- capacity: MAX_STREAMS=2
        second = await api.post("/streams", json=stream_body("second"))
        assert second.status_code == 201, second.text
        full = await api.post("/streams", json=stream_body("third"))
        assert_error(full, 503, "at_capacity")
        assert int(full.headers["retry-after"]) > 0
        await wait_for(
            lambda: front.service.get("second").status.encoder_pid is not None, 20, "second pid"
        )
        second_pid = front.service.get("second").status.encoder_pid
        second_folder = front.service.get("second").folder

        # ---- delete: 200, FFmpeg gone, files gone, then 404
        deleted = await api.delete("/streams/second")
        assert deleted.status_code == 200, deleted.text
        assert deleted.json()["stream_id"] == "second"
        assert deleted.json()["state"] in {"stopped", "stopping"}
        await wait_for(lambda: second_pid not in ffmpeg_pids(), 10, "second FFmpeg gone")
        await wait_for(lambda: not second_folder.exists(), 10, "second folder removed")
        assert_error(await api.get("/streams/second"), 404, "stream_not_found")
        assert_error(await api.delete("/streams/second"), 404, "stream_not_found")
        assert_error(await api.get("/streams/second/playlist.m3u8"), 404)
        third = await api.post(
            "/streams", json=stream_body("third", source_url="rtmp://127.0.0.1:9/x")
        )
        assert third.status_code == 201, third.text  # capacity freed
        assert (await api.delete("/streams/third")).status_code == 200

        await still_live(front, "main", pid, actor.status.segments_produced)
        main_folder = actor.folder
        assert (await api.delete("/streams/main")).status_code == 200
        await wait_for(lambda: pid not in ffmpeg_pids(), 10, "main FFmpeg gone")
        await wait_for(lambda: not main_folder.exists(), 10, "main folder removed")
        assert (await api.get("/streams")).json() == {"streams": []}


REFUSED_SOURCES = [
    "file:///etc/passwd",  # file not in ALLOWED_PROTOCOLS
    "/etc/passwd",  # no scheme = local path
    "-f lavfi -i testsrc",  # option injection
    "-i",
    "lavfi:testsrc -f lavfi -i sine",  # whitespace → extra argv words
    "concat:/etc/passwd|/etc/hosts",
    "subfile,,start,0,end,0,,:/etc/passwd",
    "crypto+file:///etc/passwd",
    "pipe:0",
    "data:text/plain,hi",
    "gopher://example.com/",
    "http://example.com/\n-i",
    "x" * 3000,
]


async def check_errors(front: Front) -> None:
    api = front.api
    # malformed JSON → 400
    deep = b"[" * 5000 + b"]" * 5000  # under the size limit, over the parser's recursion limit
    huge_int = b'{"stream_id": ' + b"1" * 5000 + b"}"  # int() refuses > 4300 digits
    for raw in (
        b"{",
        b"not json",
        b'{"stream_id": "a",}',
        b"\xff\xfe",
        b'{"a": NaN',
        deep,
        huge_int,
    ):
        response = await api.post(
            "/streams", content=raw, headers={"content-type": "application/json"}
        )
        assert_error(response, 400, "malformed_json")
    # validation → 422, with the field named
    cases: list[tuple[Any, str | None]] = [
        ([], None),
        ("main", None),
        (None, None),
        ({}, "stream_id"),
        (stream_body("main", extra=1), "extra"),
        (stream_body(""), "stream_id"),
        (stream_body("-leading-dash"), "stream_id"),
        (stream_body("../etc"), "stream_id"),
        (stream_body("a/b"), "stream_id"),
        (stream_body("a" * 65), "stream_id"),
        (stream_body("ünïcode"), "stream_id"),
        ({**stream_body("x"), "stream_id": 7}, "stream_id"),
        (stream_body("ok", source_url=None), "source_url"),
        (stream_body("ok", source_url=["rtmp://x"]), "source_url"),
        (stream_body("ok", qualities=["4k"]), "qualities"),
        (stream_body("ok", qualities=[]), "qualities"),
        (stream_body("ok", qualities="240p"), "qualities"),
        (stream_body("ok", qualities=[240]), "qualities"),
        (stream_body("ok", qualities=["source", "240p"]), "qualities"),
        (stream_body("ok", enable_hls="yes"), "enable_hls"),
        (stream_body("ok", enable_dash=1), "enable_dash"),
        (stream_body("ok", low_latency=[]), "low_latency"),
        (stream_body("ok", enable_hls=False, enable_dash=False), "enable_hls"),
    ]
    cases += [(stream_body("ok", source_url=s), "source_url") for s in REFUSED_SOURCES]
    for body, field in cases:
        response = await api.post("/streams", json=body)
        error = assert_error(response, 422)
        assert error["field"] == field, (body, error)
    # duplicate → 409, and the running stream keeps its spec
    dup = await api.post("/streams", json=stream_body("main", source_url="rtmp://127.0.0.1:9/x"))
    error = assert_error(dup, 409, "stream_exists")
    assert error["field"] == "stream_id"
    # unknown stream → 404
    assert_error(await api.get("/streams/nope"), 404, "stream_not_found")
    assert_error(await api.delete("/streams/nope"), 404, "stream_not_found")
    assert_error(await api.post("/streams/nope/heartbeat"), 404, "stream_not_found")
    assert_error(await api.get("/no/such/endpoint"), 404)
    # too large → 413 (declared length and chunked)
    big = json.dumps(stream_body("big", source_url="rtmp://h/" + "a" * 20000)).encode()
    assert_error(await api.post("/streams", content=big), 413, "body_too_large")

    async def chunks() -> Any:
        for _ in range(40):
            yield b" " * 1024

    assert_error(await api.post("/streams", content=chunks()), 413, "body_too_large")
    # wrong method → 405 with Allow
    for method, path in (
        ("PUT", "/streams"),
        ("PATCH", "/streams/main"),
        ("PUT", "/streams/main"),
        ("PUT", "/streams/main/heartbeat"),
        ("POST", "/streams/main/playlist.m3u8"),
        ("POST", "/health"),
        ("DELETE", "/metrics"),
    ):
        response = await api.request(method, path)
        assert_error(response, 405, "method_not_allowed")
        assert response.headers.get("allow"), (method, path)
    assert "POST" in (await api.put("/streams")).headers["allow"]
    # odd raw request targets never get a 5xx
    for target in ("/streams/%00", "/streams/main/%2e%2e/%2e%2e/", "//streams", "/streams//main"):
        status, _, body = await raw_request(front.api_port, target)
        assert status < 500, (target, status)
        assert b"Traceback" not in body
        # JSON either way, never an HTML redirect page ("//streams" is routed to the list)
        payload = json.loads(body)
        if target == "//streams":
            assert status == 200
            assert "streams" in payload
        else:
            assert status in {400, 404}, (target, status)
            assert payload["error"]["code"], target
    wrong = await api.get("/streams/main/heartbeat")
    assert_error(wrong, 405, "method_not_allowed")
    assert wrong.headers["allow"] == "OPTIONS, POST"
    # the heartbeat's Allow never advertises the playback route's GET beside it (Schemathesis)
    for method in ("OPTIONS", "PUT"):
        allowed = (await api.request(method, "/streams/main/heartbeat")).headers["allow"]
        assert sorted(allowed.replace(" ", "").split(",")) == ["OPTIONS", "POST"], method
    assert (await api.get("/streams/main/heartbeat.m3u8")).status_code == 404  # still playback
    assert front.service.list()[0].status.stream_id == "main"
    assert len(front.service.list()) == 1


async def test_bearer_token(tmp_path: Path) -> None:
    async with running_front(tmp_path, API_TOKEN="s3cret-token") as front:
        api = front.api
        good = {"Authorization": "Bearer s3cret-token"}
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret-token"}):
            for method, path, body in (
                ("POST", "/streams", stream_body("tok")),
                ("GET", "/streams", None),
                ("GET", "/streams/tok", None),
                ("DELETE", "/streams/tok", None),
                ("POST", "/streams/tok/heartbeat", None),
            ):
                response = await api.request(method, path, json=body, headers=headers)
                assert_error(response, 401, "unauthorized")
                assert response.headers["www-authenticate"].startswith("Bearer")
        assert front.service.list() == []
        # the token opens the control endpoints
        created = await api.post("/streams", json=stream_body("tok"), headers=good)
        assert created.status_code == 201, created.text
        assert (await api.get("/streams", headers=good)).status_code == 200
        await wait_live_segments(front, "tok", 1)
        beat = await api.post("/streams/tok/heartbeat", headers=good)
        assert beat.status_code == 200
        # playback, origin and health stay public
        assert (await api.get("/streams/tok/playlist.m3u8")).status_code == 200
        assert (await api.get("/streams/tok/manifest.mpd")).status_code == 200
        assert (await front.origin.get("/tok/playlist.m3u8")).status_code == 200
        for path in ("/health", "/ready", "/metrics", "/openapi.json", "/time"):
            assert (await api.get(path)).status_code == 200, path
        # a path that only looks like playback is not a way around the token
        for target in ("/streams/tok//heartbeat", "//streams", "/streams/tok/heartbeat/"):
            status, _, _ = await raw_request(front.api_port, target, method="POST")
            assert status in {401, 404, 405}, (target, status)
        # "//streams" is routed to the list endpoint, which the token protects
        status, _, _ = await raw_request(front.api_port, "//streams")
        assert status == 401
        assert (await api.delete("/streams/tok")).status_code == 401
        assert (await api.delete("/streams/tok", headers=good)).status_code == 200


# ------------------------------------------------------------------ property-based fuzz

JSON_SCALARS = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
)
JSON = st.recursive(
    JSON_SCALARS,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=8,
)
FIELDS = {
    "stream_id": st.from_regex(STREAM_ID_PATTERN, fullmatch=True) | st.text(max_size=70) | JSON,
    "source_url": st.sampled_from(
        [LAVFI_SOURCE, "rtmp://127.0.0.1:9/live/x", "srt://127.0.0.1:9", *REFUSED_SOURCES]
    )
    | st.text(max_size=40)
    | JSON,
    "qualities": st.lists(
        st.sampled_from([*QUALITY_NAMES, "source", "4k", ""]), min_size=0, max_size=3
    )
    | JSON,
    "enable_hls": st.booleans() | JSON,
    "enable_dash": st.booleans() | JSON,
    "low_latency": st.booleans() | JSON,
}
BODIES = (
    st.fixed_dictionaries({}, optional=FIELDS)
    | st.fixed_dictionaries(
        {"stream_id": st.from_regex(STREAM_ID_PATTERN, fullmatch=True)},
        optional={k: v for k, v in FIELDS.items() if k != "stream_id"},
    )
    | st.dictionaries(st.text(max_size=12), JSON, max_size=5)
    | JSON
)


def fuzz_in_thread(front: Front, allowed: frozenset[str]) -> None:
    """Hypothesis drives a blocking client from a worker thread; the server runs in trio."""
    client = httpx.Client(base_url=front.api_url, timeout=30)
    statuses: dict[int, int] = {}

    def expected_valid(body: Any) -> bool:
        try:
            parse_stream_request(body, allowed_protocols=allowed, default_low_latency=True)
        except RequestInvalid:
            return False
        return True

    def check(response: httpx.Response, valid: bool, stream_id: object) -> None:
        statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
        assert response.status_code < 500, response.text
        assert "Traceback" not in response.text
        if response.status_code == 201:
            assert valid
            deleted = client.delete(f"/streams/{stream_id}")
            assert deleted.status_code == 200, deleted.text
        elif valid and stream_id != "main":
            raise AssertionError(f"valid body refused: {response.status_code} {response.text}")
        else:
            assert response.status_code in {400, 409, 413, 422}, response.text
            payload = response.json()
            assert set(payload["error"]) == {"code", "message", "field"}
        listed = client.get("/streams").json()["streams"]
        assert [s["stream_id"] for s in listed] == ["main"], listed

    @settings(
        max_examples=150,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(body=BODIES)
    def post_json(body: Any) -> None:
        # json.dumps writes Infinity/-Infinity for inf floats: Python's reader accepts them too
        raw = json.dumps(body).encode()
        response = client.post(
            "/streams", content=raw, headers={"content-type": "application/json"}
        )
        sid = body.get("stream_id") if isinstance(body, dict) else None
        check(response, expected_valid(body), sid)

    @settings(max_examples=60, deadline=None, database=None)
    @given(raw=st.binary(max_size=64) | st.text(max_size=64).map(str.encode))
    def post_bytes(raw: bytes) -> None:
        response = client.post("/streams", content=raw)
        try:
            body = json.loads(raw or b"null")
        except ValueError:
            assert response.status_code == 400, response.text
            return
        sid = body.get("stream_id") if isinstance(body, dict) else None
        check(response, expected_valid(body), sid)

    try:
        post_json()
        post_bytes()
    finally:
        client.close()
    # the property was exercised both ways: valid bodies created (then deleted), invalid refused
    assert statuses.get(201, 0) >= 1, statuses
    assert statuses.get(422, 0) >= 50, statuses


async def test_post_body_fuzz(tmp_path: Path) -> None:
    async with running_front(tmp_path, ALLOWED_PROTOCOLS=PROTOCOLS) as front:
        created = await front.api.post("/streams", json=stream_body("main"))
        assert created.status_code == 201
        await wait_live_segments(front, "main", 1)
        actor = front.service.get("main")
        pid = actor.status.encoder_pid
        allowed = frozenset(front.service.settings.allowed_protocols)
        await trio.to_thread.run_sync(fuzz_in_thread, front, allowed)
        assert actor.status.state.value == "live"
        assert actor.status.encoder_pid == pid
        assert [a.status.stream_id for a in front.service.list()] == ["main"]
        await wait_for(lambda: ffmpeg_pids() == {pid}, 15, "only main's FFmpeg left")
