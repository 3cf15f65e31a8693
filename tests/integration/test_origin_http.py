"""The CDN origin (8084 role) over real HTTP, with a real stream (real FFmpeg, lavfi source)."""

from __future__ import annotations

import gzip
import os
import re
import time
from datetime import datetime
from pathlib import Path

import h11
import httpx
import pytest
import trio

from tests.integration.http_helpers import (
    Front,
    assert_error,
    raw_request,
    running_front,
    stream_body,
    wait_live_segments,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

IMMUTABLE = "public, max-age=31536000, immutable"
CORS = "access-control-allow-origin"


def last_full_segment(playlist: str) -> int:
    return max(int(n) for n in re.findall(r"^seg_(\d+)\.m4s$", playlist, re.MULTILINE))


def last_part(playlist: str) -> tuple[int, int]:
    parts = [(int(a), int(b)) for a, b in re.findall(r'URI="part_(\d+)_(\d+)\.m4s"', playlist)]
    return max(parts)


async def test_origin(tmp_path: Path) -> None:
    async with running_front(tmp_path) as front:
        created = await front.api.post("/streams", json=stream_body("live1"))
        assert created.status_code == 201, created.text
        await wait_live_segments(front, "live1", 3)
        origin = front.origin

        await check_objects(front)
        await check_validators_and_ranges(origin)
        await check_methods_cors_and_errors(front)
        await check_traversal(front)
        await check_time(origin)
        await check_blocking_reload(front)
        await check_connection_handling(front)
        assert front.service.get("live1").status.state.value == "live"
        assert front.service.get("live1").status.restarts == 0


async def check_objects(front: Front) -> None:
    origin = front.origin
    identity = {"accept-encoding": "identity"}
    master = await origin.get("/live1/playlist.m3u8", headers=identity)
    assert master.status_code == 200
    assert master.headers["content-type"] == "application/vnd.apple.mpegurl"
    assert master.headers["cache-control"] == "public, max-age=1"
    assert master.text.startswith("#EXTM3U")
    media = await origin.get("/live1/240p/playlist.m3u8", headers=identity)
    assert media.status_code == 200
    assert media.headers["cache-control"] == "public, max-age=1"
    mpd = await origin.get("/live1/manifest.mpd", headers=identity)
    assert mpd.status_code == 200
    assert mpd.headers["content-type"] == "application/dash+xml"
    assert mpd.headers["cache-control"] == "public, max-age=1"

    number = last_full_segment(media.text)
    expected = {
        "/live1/240p/init_1.mp4": "video/mp4",
        f"/live1/240p/seg_{number}.m4s": "video/mp4",
        "/live1/audio/init_1.mp4": "audio/mp4",
        f"/live1/audio/seg_{number}.m4s": "audio/mp4",
        f"/live1/240p/part_{number}_0.m4s": "video/mp4",
    }
    for path, ctype in expected.items():
        response = await origin.get(path)
        assert response.status_code == 200, (path, response.text)
        assert response.headers["content-type"] == ctype, path
        assert response.headers["cache-control"] == IMMUTABLE, path
        assert response.headers["accept-ranges"] == "bytes"
        assert re.fullmatch(r'"[0-9a-f]{32}"', response.headers["etag"]), path
        assert response.headers[CORS] == "*"
        assert "content-encoding" not in response.headers  # media is never gzipped
        assert int(response.headers["content-length"]) == len(response.content) > 0
    # the segment served equals the file on disk
    on_disk = front.service.get("live1").folder / "240p" / f"seg_{number}.m4s"
    served = await origin.get(f"/live1/240p/seg_{number}.m4s")
    assert served.content == on_disk.read_bytes()

    # gzip for playlists when asked, identity otherwise; distinct strong ETags
    async with httpx.AsyncClient(base_url=front.origin_url, timeout=30) as raw_client:
        request = raw_client.build_request(
            "GET", "/live1/manifest.mpd", headers={"accept-encoding": "gzip"}
        )
        zipped = await raw_client.send(request, stream=True)
        body = await zipped.aread()  # httpx decodes; compare with the raw stream below
        assert zipped.headers["content-encoding"] == "gzip"
        assert zipped.headers["vary"] == "Accept-Encoding"
        assert zipped.headers["etag"].endswith('-gz"')
        assert body.startswith(b"<?xml")
    status, head, raw_body = await raw_request(
        front.origin_port, "/live1/240p/playlist.m3u8", "GET", "Accept-Encoding: gzip"
    )
    assert status == 200
    assert b"content-encoding: gzip" in head.lower()
    assert gzip.decompress(raw_body).startswith(b"#EXTM3U")
    plain = await origin.get("/live1/240p/playlist.m3u8", headers=identity)
    assert "content-encoding" not in plain.headers
    assert plain.headers["vary"] == "Accept-Encoding"
    assert not plain.headers["etag"].endswith('-gz"')


async def _read_responses(
    stream: trio.SocketStream, *methods: str
) -> list[tuple[int, dict[str, str], bytes]]:
    """Read one HTTP/1.1 response per request method sent, h11 as the client-side parser."""
    client = h11.Connection(h11.CLIENT)
    responses: list[tuple[int, dict[str, str], bytes]] = []
    for method in methods:
        if responses:
            client.start_next_cycle()
        # h11 pairs each response with a request; the real ones are already on the wire
        client.send(h11.Request(method=method, target="/", headers=[("host", "x")]))
        client.send(h11.EndOfMessage())
        status, fields, body = 0, {}, bytearray()
        while True:
            event = client.next_event()
            if event is h11.NEED_DATA:
                with trio.fail_after(10):
                    client.receive_data(await stream.receive_some(65536))
            elif isinstance(event, h11.Response):
                status = event.status_code
                fields = {k.decode(): v.decode() for k, v in event.headers}
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                responses.append((status, fields, bytes(body)))
                break
    return responses


async def check_connection_handling(front: Front) -> None:
    """Keep-alive, pipelining, and the hand-over of anything unusual to Hypercorn (h11/h2)."""
    origin = front.origin
    port = front.service.settings.origin_port
    media = await origin.get("/live1/240p/playlist.m3u8")
    segment_path = f"/live1/240p/seg_{last_full_segment(media.text)}.m4s"
    segment = (await origin.get(segment_path)).content
    playlist_path = "/live1/240p/playlist.m3u8"

    # two requests in one write, then a third on the same connection
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(
            f"GET {segment_path} HTTP/1.1\r\nHost: x\r\nRange: bytes=10-19\r\n\r\n"
            f"HEAD {segment_path} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
        )
        ranged, head = await _read_responses(stream, "GET", "HEAD")
        await stream.send_all(f"GET {segment_path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        [(status, fields, body)] = await _read_responses(stream, "GET")
    assert ranged[0] == 206
    assert ranged[2] == segment[10:20]
    assert ranged[1]["content-range"] == f"bytes 10-19/{len(segment)}"
    assert head[0] == 200
    assert head[2] == b""
    assert head[1]["content-length"] == str(len(segment))
    assert status == 200
    assert body == segment
    assert fields["cache-control"] == IMMUTABLE
    assert fields[CORS] == "*"
    assert "date" in fields

    # HTTP/1.0 goes to Hypercorn and still gets the same bytes
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(f"GET {segment_path} HTTP/1.0\r\n\r\n".encode())
        chunks = []
        with trio.fail_after(10):
            while chunk := await stream.receive_some(65536):
                chunks.append(chunk)
    head10, _, body10 = b"".join(chunks).partition(b"\r\n\r\n")
    assert head10.split(b" ")[1] == b"200"
    assert body10 == segment

    # a head without Host: Hypercorn's h11 answers 400, the origin keeps serving
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(f"GET {playlist_path} HTTP/1.1\r\n\r\n".encode())
        with trio.fail_after(10):
            reply = await stream.receive_some(65536)
    assert reply.split(b" ")[1] == b"400"

    # HTTP/2 with prior knowledge (h2c) on the origin port
    async with httpx.AsyncClient(http1=False, http2=True, timeout=15) as h2c:
        response = await h2c.get(f"http://127.0.0.1:{port}{segment_path}")
        assert response.http_version == "HTTP/2"
        assert response.status_code == 200
        assert response.content == segment
        ranged2 = await h2c.get(
            f"http://127.0.0.1:{port}{segment_path}", headers={"range": "bytes=0-9"}
        )
        assert ranged2.status_code == 206
        assert ranged2.content == segment[:10]
    assert (await origin.get(playlist_path)).status_code == 200


async def check_validators_and_ranges(origin: httpx.AsyncClient) -> None:
    media = await origin.get("/live1/240p/playlist.m3u8")
    path = f"/live1/240p/seg_{last_full_segment(media.text)}.m4s"
    full = await origin.get(path)
    data, etag = full.content, full.headers["etag"]
    length = len(data)
    assert length > 200

    # If-None-Match → 304 (exact, list, weak form, *)
    for value in (etag, f'"nope", {etag}', f"W/{etag}", "*"):
        response = await origin.get(path, headers={"if-none-match": value})
        assert response.status_code == 304, value
        assert response.headers["etag"] == etag
        assert response.headers[CORS] == "*"
        assert response.content == b""
    assert (await origin.get(path, headers={"if-none-match": '"other"'})).status_code == 200
    # playlist revalidation too
    playlist = await origin.get("/live1/manifest.mpd")
    again = await origin.get(
        "/live1/manifest.mpd", headers={"if-none-match": playlist.headers["etag"]}
    )
    assert again.status_code in {304, 200}  # 200 only if the manifest changed meanwhile

    # Range: single, open-ended, suffix, clamped
    for header, first, last in (
        ("bytes=0-99", 0, 99),
        ("bytes=100-", 100, length - 1),
        ("bytes=-50", length - 50, length - 1),
        (f"bytes=10-{length + 1000}", 10, length - 1),
        (f"bytes=-{length * 2}", 0, length - 1),
    ):
        response = await origin.get(path, headers={"range": header})
        assert response.status_code == 206, header
        assert response.headers["content-range"] == f"bytes {first}-{last}/{length}", header
        assert response.content == data[first : last + 1], header
        assert response.headers["etag"] == etag
        assert response.headers["accept-ranges"] == "bytes"
        assert response.headers[CORS] == "*"
    # unsatisfiable → 416 bytes */len
    for header in (f"bytes={length}-", f"bytes={length + 5}-{length + 10}", "bytes=-0"):
        response = await origin.get(path, headers={"range": header})
        assert response.status_code == 416, header
        assert response.headers["content-range"] == f"bytes */{length}"
        assert response.headers[CORS] == "*"
    # ignored ranges → whole object
    for header in ("bytes=5-1", "items=0-1", "bytes=0-1,5-6"):
        response = await origin.get(path, headers={"range": header})
        assert response.status_code == 200, header
        assert response.content == data
    # If-Range with our ETag honours Range; with another, the whole object
    ranged = await origin.get(path, headers={"range": "bytes=0-9", "if-range": etag})
    assert ranged.status_code == 206
    whole = await origin.get(path, headers={"range": "bytes=0-9", "if-range": '"x"'})
    assert whole.status_code == 200
    assert whole.content == data
    # HEAD: headers of the GET, no body
    head = await origin.head(path)
    assert head.status_code == 200
    assert head.headers["content-length"] == str(length)
    assert head.headers["etag"] == etag
    assert head.content == b""


async def check_methods_cors_and_errors(front: Front) -> None:
    origin = front.origin
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        response = await origin.request(method, "/live1/playlist.m3u8")
        assert_error(response, 405, "method_not_allowed")
        assert response.headers["allow"] == "GET, HEAD, OPTIONS"
        assert response.headers[CORS] == "*"
    for path in ("/live1/playlist.m3u8", "/live1/240p/seg_1.m4s", "/nope/x", "/"):
        preflight = await origin.options(
            path,
            headers={
                "origin": "https://player.example",
                "access-control-request-method": "GET",
                "access-control-request-headers": "range",
            },
        )
        assert preflight.status_code == 204, path
        assert preflight.headers[CORS] == "*"
        assert "GET" in preflight.headers["access-control-allow-methods"]
        assert "Range" in preflight.headers["access-control-allow-headers"]
    # 404s: short cache, CORS, JSON
    for path in (
        "/nope/playlist.m3u8",
        "/live1/9999p/playlist.m3u8",
        "/live1/240p/seg_999999.m4s",
        "/live1/240p/init_7.mp4",
        "/live1/240p/",
        "/live1/",
        "/live1",
        "/",
        "/live1/240p/seg_0.ts",
    ):
        response = await origin.get(path)
        assert_error(response, 404)
        assert response.headers["cache-control"] == "public, max-age=1", path
        assert response.headers[CORS] == "*"
    # a request for the API's routes on the origin is just a miss
    assert (await origin.get("/streams")).status_code == 404
    assert (await origin.get("/health")).status_code == 200


async def check_traversal(front: Front) -> None:
    folder = front.service.get("live1").folder
    secret = front.service.settings.output_dir.parent / "secret.txt"
    secret.write_text("TOP SECRET")
    # symlinks placed inside the stream folder pointing outside it
    os.symlink(secret, folder / "240p" / "init_9.mp4")
    os.symlink(secret, folder / "240p" / "seg_0.m4s.lnk")
    os.symlink(secret.parent, folder / "escape")
    os.symlink(secret, folder / "secret.m3u8")
    targets = [
        "/live1/240p/init_9.mp4",
        "/live1/escape/secret.txt",
        "/live1/secret.m3u8",
        "/live1/../secret.txt",
        "/live1/240p/../../secret.txt",
        "/live1/%2e%2e/secret.txt",
        "/live1/240p/%2e%2e%2f%2e%2e%2fsecret.txt",
        "/live1/%252e%252e/secret.txt",
        "/live1//etc/passwd",
        "/live1/240p/..%5c..%5csecret.txt",
        "/..%2fsecret.txt",
        "/live1/240p/%00init_1.mp4",
        "/live1/240p/.hidden",
    ]
    for port, prefix in ((front.origin_port, ""), (front.api_port, "/streams")):
        for target in targets:
            status, head, body = await raw_request(port, prefix + target)
            if status == 308:  # werkzeug merges "//" on the API: a redirect, never the file
                assert port == front.api_port
                assert b"/streams/live1/etc/passwd\r\n" in head
            else:
                assert status in {404, 400}, (port, target, status)
            assert b"TOP SECRET" not in body
            assert b"Traceback" not in body
    # no directory listing anywhere
    for target in ("/live1/240p/", "/live1/", "/live1/240p"):
        status, _, body = await raw_request(front.origin_port, target)
        assert status == 404
        assert b"seg_" not in body


async def check_time(origin: httpx.AsyncClient) -> None:
    response = await origin.get("/time")
    assert response.status_code == 200
    assert response.headers[CORS] == "*"
    assert response.headers["cache-control"] == "no-store"
    when = datetime.fromisoformat(response.text.strip().replace("Z", "+00:00"))
    assert abs(when.timestamp() - time.time()) < 2
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", response.text.strip())


async def check_blocking_reload(front: Front) -> None:
    origin = front.origin
    media = await origin.get("/live1/240p/playlist.m3u8")
    msn, _part = last_part(media.text)
    target = msn + 1
    started = time.monotonic()
    response = await origin.get(f"/live1/240p/playlist.m3u8?_HLS_msn={target}&_HLS_part=0")
    waited = time.monotonic() - started
    assert response.status_code == 200, response.text
    assert f'URI="part_{target}_0.m4s"' in response.text
    assert 0.05 < waited < 4.0, waited
    # a blocking response may be cached longer: its URL names one version
    assert response.headers["cache-control"].startswith("public, max-age=")
    # the part it announces exists right away
    part = await origin.get(f"/live1/240p/part_{target}_0.m4s")
    assert part.status_code == 200
    # already-reached positions answer at once
    started = time.monotonic()
    past = await origin.get(f"/live1/240p/playlist.m3u8?_HLS_msn={max(0, target - 1)}")
    assert past.status_code == 200
    assert time.monotonic() - started < 0.5
    # directives the spec answers with 400
    assert_error(await origin.get("/live1/240p/playlist.m3u8?_HLS_part=0"), 400)
    assert_error(await origin.get(f"/live1/240p/playlist.m3u8?_HLS_msn={target + 50}"), 400)
    assert_error(await origin.get("/live1/240p/playlist.m3u8?_HLS_msn=-1"), 400)
    assert_error(await origin.get("/live1/240p/playlist.m3u8?_HLS_msn=abc"), 400)
    assert_error(await origin.get("/live1/240p/playlist.m3u8?_HLS_msn=1&_HLS_msn=2"), 400)
    # the same directives through the API port
    assert_error(await front.api.get("/streams/live1/240p/playlist.m3u8?_HLS_part=0"), 400)
    media = await front.api.get("/streams/live1/240p/playlist.m3u8")
    msn, _part = last_part(media.text)
    via_api = await front.api.get(
        f"/streams/live1/240p/playlist.m3u8?_HLS_msn={msn + 1}&_HLS_part=0"
    )
    assert via_api.status_code == 200
    assert f'URI="part_{msn + 1}_0.m4s"' in via_api.text
