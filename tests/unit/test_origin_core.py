"""Origin HTTP core: paths, Cache-Control, ETag/304, Range/206/416, CORS, gzip, LL-HLS queries."""

from __future__ import annotations

import gzip
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.edge.rules import advance_part_limit, parts_ahead
from supervisor.http.origin_core import (
    IMMUTABLE_CACHE,
    ByteRange,
    HlsDirectiveError,
    HlsDirectives,
    ObjectKind,
    OriginObject,
    OriginPath,
    OriginResponse,
    accepts_gzip,
    classify_path,
    compute_etag,
    error_json,
    file_response,
    gzip_etag,
    if_none_match_hit,
    lower_headers,
    make_object,
    method_not_allowed,
    not_found,
    parse_hls_directives,
    parse_path,
    parse_range,
    preflight,
    split_stream_path,
)

SEGMENT_BYTES = bytes(range(256)) * 40  # 10_240 bytes
PLAYLIST_BYTES = b"#EXTM3U\n#EXT-X-VERSION:9\n#EXT-X-TARGETDURATION:2\n" + b"#EXTINF:2.0,\n" * 50
SEGMENT = make_object(SEGMENT_BYTES, ObjectKind.SEGMENT, immutable=True)
PLAYLIST = make_object(PLAYLIST_BYTES, ObjectKind.MEDIA_PLAYLIST, immutable=False)
EXPOSE = "Content-Length, Content-Range, ETag, Age, Date"


def get(
    obj: OriginObject,
    method: str = "GET",
    *,
    blocking: bool = False,
    target_duration_s: int = 2,
    **headers: str,
) -> OriginResponse:
    # Keyword names use underscores; HTTP names use dashes (if_none_match → If-None-Match).
    pairs = [(name.replace("_", "-").title(), value) for name, value in headers.items()]
    return file_response(
        method,
        lower_headers(pairs),
        obj,
        blocking=blocking,
        target_duration_s=target_duration_s,
    )


def assert_cors(resp: OriginResponse) -> None:
    assert resp.header("Access-Control-Allow-Origin") == "*"
    assert resp.header("access-control-expose-headers") == EXPOSE


def assert_lowercase_names(resp: OriginResponse) -> None:
    assert all(name == name.lower() for name, _ in resp.headers)


# ---------------------------------------------------------------------------------------------
# Paths


@pytest.mark.parametrize(
    ("relative", "expected"),
    [
        ("playlist.m3u8", OriginPath(ObjectKind.MULTIVARIANT_PLAYLIST)),
        ("manifest.mpd", OriginPath(ObjectKind.DASH_MANIFEST)),
        ("720p/playlist.m3u8", OriginPath(ObjectKind.MEDIA_PLAYLIST, rendition_id="720p")),
        ("audio/init_3.mp4", OriginPath(ObjectKind.INIT, rendition_id="audio", init_version=3)),
        ("1080p/seg_42.m4s", OriginPath(ObjectKind.SEGMENT, rendition_id="1080p", number=42)),
        (
            "source/part_42_3.m4s",
            OriginPath(ObjectKind.PART, rendition_id="source", number=42, part_index=3),
        ),
    ],
)
def test_parse_path_accepts_layout_names(relative: str, expected: OriginPath) -> None:
    assert parse_path(relative) == expected
    assert classify_path(relative) is expected.kind


@pytest.mark.parametrize(
    "relative",
    [
        "",
        "/playlist.m3u8",
        "../playlist.m3u8",
        "720p/../../etc/passwd",
        "720p/..",
        "..",
        ".",
        "./playlist.m3u8",
        "720p/./seg_1.m4s",
        "%2e%2e/playlist.m3u8",  # double-encoded: the framework decoded once already
        "720p%2Fseg_1.m4s",
        "720p/seg_1.m4s%00",
        "720p\\seg_1.m4s",
        "..\\..\\playlist.m3u8",
        "720p/seg_1.m4s\x00.txt",
        "720p/.seg_1.m4s",
        ".hidden",
        "720p/.playlist.m3u8",
        "720p//seg_1.m4s",
        "720p/seg_1.m4s/",
        "a/720p/seg_1.m4s",  # extra depth
        "720p/sub/seg_1.m4s",
        "720p",
        "720p/",
        "720p/manifest.mpd",  # manifest only at stream level
        "audio/playlist.m3u8/x",
        "720p/seg_1.ts",
        "720p/seg_-1.m4s",
        "720p/seg_1.m4s\n",
        "720p/seg_\u0661.m4s",  # Arabic-Indic digit one: must not alias segment 1
        "\u0667\u0662\u0660p/seg_1.m4s",
        "720P/seg_1.m4s",
        "hd/seg_1.m4s",
        "playlist.M3U8",
        "index.html",
        "720p/init_1.mp4 ",
        " playlist.m3u8",
        "720p/init_.mp4",
        "x" * 500,
    ],
)
def test_parse_path_refuses_everything_else(relative: str) -> None:
    assert parse_path(relative) is None
    assert classify_path(relative) is None


def test_split_stream_path() -> None:
    assert split_stream_path("/cam-1/720p/seg_1.m4s") == ("cam-1", "720p/seg_1.m4s")
    assert split_stream_path("cam_1/playlist.m3u8") == ("cam_1", "playlist.m3u8")
    assert split_stream_path("/cam-1") is None
    assert split_stream_path("/../playlist.m3u8") is None
    assert split_stream_path("/-bad/playlist.m3u8") is None
    assert split_stream_path("//playlist.m3u8") is None


@given(st.text(max_size=40))
def test_parse_path_never_raises_and_only_accepts_safe_names(relative: str) -> None:
    parsed = parse_path(relative)
    if parsed is not None:
        assert ".." not in relative
        assert not relative.startswith("/")
        assert relative.isascii()
        assert relative.count("/") <= 1


# ---------------------------------------------------------------------------------------------
# ETag and object construction


def test_etag_is_strong_quoted_hex_and_content_addressed() -> None:
    tag = compute_etag(b"abc")
    assert tag.startswith('"')
    assert tag.endswith('"')
    assert not tag.startswith("W/")
    hex_part = tag[1:-1]
    assert 16 <= len(hex_part) <= 32
    int(hex_part, 16)
    assert compute_etag(b"abc") == tag
    assert compute_etag(b"abd") != tag
    assert gzip_etag(tag) == tag[:-1] + '-gz"'


def test_make_object_precomputes_etag_and_gzip_only_for_documents() -> None:
    assert SEGMENT.etag == compute_etag(SEGMENT_BYTES)
    assert SEGMENT.gzip_data is None
    assert PLAYLIST.gzip_data is not None
    assert gzip.decompress(PLAYLIST.gzip_data) == PLAYLIST_BYTES
    # mtime=0: the gzip body is byte-stable, so its strong ETag is honest.
    again = make_object(PLAYLIST_BYTES, ObjectKind.MEDIA_PLAYLIST, immutable=False)
    assert again.gzip_data == PLAYLIST.gzip_data


# ---------------------------------------------------------------------------------------------
# 200: content types, cache policy, CORS, Accept-Ranges


@pytest.mark.parametrize(
    ("kind", "audio", "content_type"),
    [
        (ObjectKind.MULTIVARIANT_PLAYLIST, False, "application/vnd.apple.mpegurl"),
        (ObjectKind.MEDIA_PLAYLIST, False, "application/vnd.apple.mpegurl"),
        (ObjectKind.MEDIA_PLAYLIST, True, "application/vnd.apple.mpegurl"),
        (ObjectKind.DASH_MANIFEST, False, "application/dash+xml"),
        (ObjectKind.INIT, False, "video/mp4"),
        (ObjectKind.SEGMENT, False, "video/mp4"),
        (ObjectKind.PART, False, "video/mp4"),
        (ObjectKind.INIT, True, "audio/mp4"),
        (ObjectKind.SEGMENT, True, "audio/mp4"),
        (ObjectKind.PART, True, "audio/mp4"),
    ],
)
def test_content_types(kind: ObjectKind, audio: bool, content_type: str) -> None:
    resp = get(make_object(b"x" * 10, kind, immutable=True, audio=audio))
    assert resp.status == 200
    assert resp.header("content-type") == content_type


def test_segment_200_headers() -> None:
    resp = get(SEGMENT)
    assert resp.status == 200
    assert resp.body == SEGMENT_BYTES
    assert resp.header("content-length") == str(len(SEGMENT_BYTES))
    assert resp.header("etag") == SEGMENT.etag
    assert resp.header("cache-control") == "public, max-age=31536000, immutable"
    assert resp.header("accept-ranges") == "bytes"
    assert resp.header("content-encoding") is None
    assert resp.header("vary") is None
    assert_cors(resp)
    assert_lowercase_names(resp)


def test_head_has_get_headers_and_no_body() -> None:
    got, head = get(SEGMENT), get(SEGMENT, "HEAD")
    assert head.status == 200
    assert head.body == b""
    assert head.headers == got.headers


@pytest.mark.parametrize(
    ("kind", "immutable", "blocking", "expected"),
    [
        (ObjectKind.INIT, True, False, IMMUTABLE_CACHE),
        (ObjectKind.SEGMENT, True, False, IMMUTABLE_CACHE),
        (ObjectKind.PART, True, False, IMMUTABLE_CACHE),  # part of a finished segment
        (ObjectKind.PART, False, False, "public, max-age=1"),  # segment still open: short
        (ObjectKind.SEGMENT, False, False, "no-cache"),  # growing: never stored as whole
        (ObjectKind.MEDIA_PLAYLIST, False, False, "public, max-age=1"),
        (ObjectKind.MULTIVARIANT_PLAYLIST, False, False, "public, max-age=1"),
        (ObjectKind.DASH_MANIFEST, False, False, "public, max-age=1"),
        (ObjectKind.MEDIA_PLAYLIST, False, True, "public, max-age=24"),  # 6 × TD (TD=4)
    ],
)
def test_cache_control_per_class(
    kind: ObjectKind, immutable: bool, blocking: bool, expected: str
) -> None:
    resp = get(
        make_object(b"data", kind, immutable=immutable), blocking=blocking, target_duration_s=4
    )
    assert resp.header("cache-control") == expected


# ---------------------------------------------------------------------------------------------
# gzip


@pytest.mark.parametrize(
    ("accept_encoding", "expected"),
    [
        (None, False),
        ("", False),
        ("gzip", True),
        ("GZIP", True),
        ("x-gzip", True),
        ("gzip, deflate, br", True),
        ("br;q=1.0, gzip;q=0.8, *;q=0.1", True),
        ("gzip;q=0", False),
        ("gzip; q=0", False),
        ("gzip;q=0.000", False),
        ("gzip;q=0.001", True),
        ("gzip;Q=1", True),
        ("*", True),
        ("*;q=0", False),
        ("br, *;q=0.5", True),
        ("gzip;q=0, *", False),  # explicit gzip;q=0 beats the wildcard
        ("*, gzip;q=0", False),
        ("identity", False),
        ("br, deflate", False),
        ("gzip;q=2", False),  # invalid q-value → member skipped
        ("gzip;q=abc", False),
        ("gzip;q=0.5, gzip;q=0", True),
        (",,,", False),
        ("deflate;q=0.5,gzip", True),
    ],
)
def test_accepts_gzip(accept_encoding: str | None, expected: bool) -> None:
    assert accepts_gzip(accept_encoding) is expected


def test_playlist_gzipped_when_accepted() -> None:
    resp = get(PLAYLIST, accept_encoding="gzip, deflate")
    assert resp.status == 200
    assert resp.header("content-encoding") == "gzip"
    assert resp.header("vary") == "Accept-Encoding"
    assert gzip.decompress(resp.body) == PLAYLIST_BYTES
    assert resp.header("content-length") == str(len(resp.body))
    assert resp.header("etag") == gzip_etag(PLAYLIST.etag)
    assert resp.header("content-type") == "application/vnd.apple.mpegurl"
    assert_cors(resp)


def test_playlist_identity_when_gzip_refused_still_varies() -> None:
    resp = get(PLAYLIST, accept_encoding="gzip;q=0, br")
    assert resp.body == PLAYLIST_BYTES
    assert resp.header("content-encoding") is None
    assert resp.header("vary") == "Accept-Encoding"
    assert resp.header("etag") == PLAYLIST.etag


def test_documents_without_precomputed_gzip_are_compressed_on_demand() -> None:
    manifest = OriginObject(b"<MPD/>" * 20, ObjectKind.DASH_MANIFEST, compute_etag(b""), False)
    resp = get(manifest, accept_encoding="gzip")
    assert gzip.decompress(resp.body) == b"<MPD/>" * 20


@pytest.mark.parametrize("kind", [ObjectKind.SEGMENT, ObjectKind.INIT, ObjectKind.PART])
def test_media_never_gzipped(kind: ObjectKind) -> None:
    resp = get(make_object(SEGMENT_BYTES, kind, immutable=True), accept_encoding="gzip")
    assert resp.header("content-encoding") is None
    assert resp.body == SEGMENT_BYTES


def test_ranged_playlist_not_gzipped() -> None:
    resp = get(PLAYLIST, accept_encoding="gzip", range="bytes=0-6")
    assert resp.status == 206
    assert resp.body == PLAYLIST_BYTES[:7]
    assert resp.header("content-encoding") is None
    assert resp.header("etag") == PLAYLIST.etag


# ---------------------------------------------------------------------------------------------
# If-None-Match → 304


@pytest.mark.parametrize(
    "if_none_match",
    [
        SEGMENT.etag,
        "*",
        " * ",
        f"W/{SEGMENT.etag}",  # weak comparison ignores W/
        f'"other", {SEGMENT.etag}',
        f'W/"other",W/{SEGMENT.etag}',
        f'"a",   "b"  , {SEGMENT.etag}',
    ],
)
def test_if_none_match_hits_304(if_none_match: str) -> None:
    resp = get(SEGMENT, if_none_match=if_none_match)
    assert resp.status == 304
    assert resp.body == b""
    assert resp.header("etag") == SEGMENT.etag
    assert resp.header("cache-control") == IMMUTABLE_CACHE
    assert resp.header("content-length") is None
    assert_cors(resp)


@pytest.mark.parametrize(
    "if_none_match",
    ['"other"', 'W/"other"', SEGMENT.etag[1:-1], "", f'"{SEGMENT.etag}"', '"*"'],
)
def test_if_none_match_misses_200(if_none_match: str) -> None:
    assert get(SEGMENT, if_none_match=if_none_match).status == 200


def test_if_none_match_uses_selected_representation() -> None:
    gz_tag = gzip_etag(PLAYLIST.etag)
    hit = get(PLAYLIST, accept_encoding="gzip", if_none_match=gz_tag)
    assert hit.status == 304
    assert hit.header("etag") == gz_tag
    assert hit.header("vary") == "Accept-Encoding"
    assert hit.header("cache-control") == "public, max-age=1"
    # The identity tag does not validate the gzip representation, and vice versa.
    assert get(PLAYLIST, accept_encoding="gzip", if_none_match=PLAYLIST.etag).status == 200
    assert get(PLAYLIST, if_none_match=gz_tag).status == 200
    assert get(PLAYLIST, if_none_match=PLAYLIST.etag).status == 304


def test_if_none_match_beats_range() -> None:
    resp = get(SEGMENT, if_none_match=SEGMENT.etag, range="bytes=0-9")
    assert resp.status == 304
    assert resp.header("content-range") is None


def test_head_304() -> None:
    assert get(SEGMENT, "HEAD", if_none_match="*").status == 304


def test_if_none_match_hit_helper() -> None:
    assert not if_none_match_hit(None, '"a"')
    assert if_none_match_hit('W/"a"', '"a"')
    assert not if_none_match_hit('"ab"', '"a"')


# ---------------------------------------------------------------------------------------------
# Range


@pytest.mark.parametrize(
    ("header", "length", "expected"),
    [
        ("bytes=0-0", 10, ByteRange(0, 0)),
        ("bytes=0-9", 10, ByteRange(0, 9)),
        ("bytes=2-5", 10, ByteRange(2, 5)),
        ("bytes=5-", 10, ByteRange(5, 9)),
        ("bytes=9-", 10, ByteRange(9, 9)),
        ("bytes=3-100", 10, ByteRange(3, 9)),  # last past the end is clamped
        ("bytes=-3", 10, ByteRange(7, 9)),
        ("bytes=-10", 10, ByteRange(0, 9)),
        ("bytes=-1000", 10, ByteRange(0, 9)),  # suffix longer than the file: all of it
        ("BYTES=1-2", 10, ByteRange(1, 2)),  # range unit is case-insensitive
        (" bytes=1-2 ", 10, ByteRange(1, 2)),
        ("bytes=0001-0002", 10, ByteRange(1, 2)),
        ("bytes=0-" + "9" * 5000, 10, ByteRange(0, 9)),  # huge numbers never reach int()
    ],
)
def test_parse_range_satisfiable(header: str, length: int, expected: ByteRange) -> None:
    assert parse_range(header, length) == expected


@pytest.mark.parametrize(
    ("header", "length"),
    [
        ("bytes=5-", 5),
        ("bytes=10-20", 10),
        ("bytes=-0", 10),
        ("bytes=0-", 0),
        ("bytes=-5", 0),
        ("bytes=" + "9" * 5000 + "-", 10),
    ],
)
def test_parse_range_unsatisfiable(header: str, length: int) -> None:
    resp = get(make_object(b"x" * length, ObjectKind.SEGMENT, immutable=True), range=header)
    assert resp.status == 416
    assert resp.header("content-range") == f"bytes */{length}"
    assert resp.header("accept-ranges") == "bytes"
    assert resp.header("cache-control") == "no-store"
    assert json.loads(resp.body)["error"]["code"] == "range_not_satisfiable"
    assert_cors(resp)


@pytest.mark.parametrize(
    "header",
    [
        "bytes=0-1,3-4",  # several ranges: ignored on purpose (see module docstring)
        "bytes=0-1, 3-4",
        "bytes=0-1,",
        "bytes=5-2",  # last < first → invalid → ignore
        "bytes=-",
        "bytes=",
        "bytes",
        "bytes=a-b",
        "bytes=1.5-2",
        "bytes=-1-2",
        "bytes =0-1",
        "items=0-1",  # a unit we don't serve
        "0-1",
        "",
        "bytes=0-1;x",
        "bytes=\u0661-\u0662",  # non-ASCII digits
    ],
)
def test_malformed_or_multiple_ranges_are_ignored(header: str) -> None:
    resp = get(SEGMENT, range=header)
    assert resp.status == 200
    assert resp.body == SEGMENT_BYTES
    assert resp.header("content-range") is None


def test_206_headers() -> None:
    resp = get(SEGMENT, range="bytes=100-199")
    assert resp.status == 206
    assert resp.body == SEGMENT_BYTES[100:200]
    assert resp.header("content-range") == f"bytes 100-199/{len(SEGMENT_BYTES)}"
    assert resp.header("content-length") == "100"
    assert resp.header("etag") == SEGMENT.etag
    assert resp.header("cache-control") == IMMUTABLE_CACHE
    assert resp.header("accept-ranges") == "bytes"
    assert resp.header("content-type") == "video/mp4"
    assert_cors(resp)
    assert_lowercase_names(resp)


def test_206_edge_forms() -> None:
    n = len(SEGMENT_BYTES)
    first = get(SEGMENT, range="bytes=0-0")
    assert (first.status, first.body, first.header("content-range")) == (
        206,
        SEGMENT_BYTES[:1],
        f"bytes 0-0/{n}",
    )
    whole = get(SEGMENT, range=f"bytes=-{n * 10}")
    assert (whole.status, whole.body, whole.header("content-range")) == (
        206,
        SEGMENT_BYTES,
        f"bytes 0-{n - 1}/{n}",
    )
    tail = get(SEGMENT, range=f"bytes={n - 1}-")
    assert (tail.status, tail.body) == (206, SEGMENT_BYTES[-1:])


def test_head_206_has_length_and_no_body() -> None:
    resp = get(SEGMENT, "HEAD", range="bytes=0-9")
    assert resp.status == 206
    assert resp.body == b""
    assert resp.header("content-length") == "10"


def test_if_range_matching_etag_honours_range() -> None:
    resp = get(SEGMENT, range="bytes=0-9", if_range=SEGMENT.etag)
    assert resp.status == 206
    assert resp.body == SEGMENT_BYTES[:10]


@pytest.mark.parametrize(
    "if_range", ['"other"', f"W/{SEGMENT.etag}", "Wed, 21 Oct 2015 07:28:00 GMT"]
)
def test_if_range_mismatch_sends_whole_object(if_range: str) -> None:
    resp = get(SEGMENT, range="bytes=0-9", if_range=if_range)
    assert resp.status == 200
    assert resp.body == SEGMENT_BYTES


def test_if_range_mismatch_skips_416() -> None:
    assert get(SEGMENT, range="bytes=999999-", if_range='"old"').status == 200


@settings(max_examples=300, deadline=None)
@given(data=st.data(), length=st.integers(min_value=0, max_value=2000))
def test_any_single_range_yields_the_right_slice(data: st.DataObject, length: int) -> None:
    payload = bytes(i % 251 for i in range(length))
    obj = OriginObject(payload, ObjectKind.SEGMENT, compute_etag(payload), True)
    form = data.draw(st.sampled_from(["closed", "open", "suffix"]))
    if form == "closed":
        a = data.draw(st.integers(min_value=0, max_value=length + 10))
        b = data.draw(st.integers(min_value=a, max_value=length + 10))
        header = f"bytes={a}-{b}"
        satisfiable = a < length
        expected = (a, min(b, length - 1))
    elif form == "open":
        a = data.draw(st.integers(min_value=0, max_value=length + 10))
        header = f"bytes={a}-"
        satisfiable = a < length
        expected = (a, length - 1)
    else:
        n = data.draw(st.integers(min_value=0, max_value=length + 10))
        header = f"bytes=-{n}"
        satisfiable = n > 0 and length > 0
        expected = (max(0, length - n), length - 1)
    resp = get(obj, range=header)
    if not satisfiable:
        assert resp.status == 416
        assert resp.header("content-range") == f"bytes */{length}"
        return
    a, b = expected
    assert resp.status == 206
    assert resp.body == payload[a : b + 1]
    assert resp.header("content-length") == str(len(resp.body))
    assert resp.header("content-range") == f"bytes {a}-{b}/{length}"


# ---------------------------------------------------------------------------------------------
# Methods, preflight, errors


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "TRACE", "CONNECT", "get"])
def test_other_methods_405(method: str) -> None:
    resp = get(SEGMENT, method)
    assert resp.status == 405
    assert resp.header("allow") == "GET, HEAD, OPTIONS"
    assert json.loads(resp.body)["error"]["code"] == "method_not_allowed"
    assert resp.header("content-length") == str(len(resp.body))
    assert_cors(resp)
    assert method_not_allowed() == resp


def test_preflight() -> None:
    resp = get(SEGMENT, "OPTIONS")
    assert resp == preflight()
    assert resp.status == 204
    assert resp.body == b""
    assert resp.header("access-control-allow-methods") == "GET, HEAD, OPTIONS"
    assert (
        resp.header("access-control-allow-headers")
        == "Range, If-None-Match, If-Modified-Since, Content-Type"
    )
    assert resp.header("access-control-max-age") == "86400"
    assert resp.header("content-length") is None  # 204 must not carry one
    assert_cors(resp)
    assert_lowercase_names(resp)


def test_not_found() -> None:
    resp = not_found()
    assert resp.status == 404
    assert resp.header("cache-control") == "public, max-age=1"
    assert resp.header("content-type") == "application/json"
    assert json.loads(resp.body) == {
        "error": {"code": "not_found", "message": "no such object", "field": None}
    }
    assert resp.header("content-length") == str(len(resp.body))
    assert_cors(resp)
    head = not_found(head=True)
    assert head.body == b""
    assert head.header("content-length") == resp.header("content-length")


def test_not_found_blocking_reload_caches_4_td() -> None:
    resp = not_found(blocking=True, target_duration_s=4)
    assert resp.header("cache-control") == "public, max-age=16"
    assert_cors(resp)


def test_error_json_shape() -> None:
    resp = error_json(400, "bad_request", "nope", "_HLS_part")
    assert resp.status == 400
    assert json.loads(resp.body) == {
        "error": {"code": "bad_request", "message": "nope", "field": "_HLS_part"}
    }
    assert resp.header("content-type") == "application/json"
    assert resp.header("cache-control") == "no-store"
    assert resp.header("content-length") == str(len(resp.body))
    assert_cors(resp)
    assert error_json(503, "timeout", "late", head=True).body == b""


def test_lower_headers_joins_repeats() -> None:
    folded = lower_headers([("If-None-Match", '"a"'), ("if-none-match", '"b"'), ("Range", "x")])
    assert folded == {"if-none-match": '"a", "b"', "range": "x"}


def test_repeated_range_fields_are_ignored() -> None:
    pairs = [("Range", "bytes=0-1"), ("Range", "bytes=2-3")]
    resp = file_response("GET", lower_headers(pairs), SEGMENT)
    assert resp.status == 200


header_values = st.text(alphabet=st.characters(codec="latin-1"), max_size=60) | st.sampled_from(
    ["bytes=0-1", "*", "gzip;q=0", 'W/"x"', SEGMENT.etag, "bytes=-0"]
)


@settings(max_examples=300, deadline=None)
@given(
    method=st.sampled_from(["GET", "HEAD", "OPTIONS", "POST"]),
    headers=st.dictionaries(
        st.sampled_from(["range", "if-range", "if-none-match", "accept-encoding", "x-junk"]),
        header_values,
    ),
    document=st.booleans(),
)
def test_random_headers_never_raise(method: str, headers: dict[str, str], document: bool) -> None:
    obj = PLAYLIST if document else SEGMENT
    resp = file_response(method, headers, obj, target_duration_s=2)
    assert resp.status in {200, 204, 206, 304, 405, 416}
    assert_cors(resp)
    length = resp.header("content-length")
    if method == "GET" and length is not None:
        assert int(length) == len(resp.body)


# ---------------------------------------------------------------------------------------------
# LL-HLS directives


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", HlsDirectives()),
        ("foo=bar", HlsDirectives()),
        ("_HLS_msn=5", HlsDirectives(msn=5)),
        ("_HLS_msn=5&_HLS_part=2", HlsDirectives(msn=5, part=2)),
        ("_HLS_part=2&_HLS_msn=5", HlsDirectives(msn=5, part=2)),  # any order
        ("a=1&_HLS_part=0&b=&_HLS_msn=0&c", HlsDirectives(msn=0, part=0)),  # extra params
        ("_HLS_skip=YES", HlsDirectives(skip="YES")),
        ("_HLS_skip=v2&_HLS_msn=7", HlsDirectives(msn=7, skip="v2")),
        ("_HLS_skip=yes", HlsDirectives()),  # unknown value: full playlist, not 400
        ("_HLS_skip=v3", HlsDirectives()),
        (b"_HLS_msn=12&_HLS_part=1", HlsDirectives(msn=12, part=1)),
        ("_HLS_msn=18446744073709551615", HlsDirectives(msn=2**64 - 1)),
        ("_HLS_msn=007", HlsDirectives(msn=7)),
    ],
)
def test_parse_hls_directives(query: str | bytes, expected: HlsDirectives) -> None:
    assert parse_hls_directives(query) == expected


def test_blocking_flag() -> None:
    assert parse_hls_directives("_HLS_msn=1").blocking
    assert not parse_hls_directives("_HLS_skip=YES").blocking


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("_HLS_part=1", "_HLS_part"),  # C3: part without msn
        ("foo=1&_HLS_part=0", "_HLS_part"),
        ("_HLS_msn=-1", "_HLS_msn"),
        ("_HLS_msn=abc", "_HLS_msn"),
        ("_HLS_msn=", "_HLS_msn"),
        ("_HLS_msn", "_HLS_msn"),
        ("_HLS_msn=1.5", "_HLS_msn"),
        ("_HLS_msn=+1", "_HLS_msn"),
        ("_HLS_msn=1e3", "_HLS_msn"),
        ("_HLS_msn=%D9%A1", "_HLS_msn"),  # Arabic-Indic digit
        ("_HLS_msn=18446744073709551616", "_HLS_msn"),
        ("_HLS_msn=1&_HLS_part=-1", "_HLS_part"),
        ("_HLS_msn=1&_HLS_part=x", "_HLS_part"),
        ("_HLS_msn=1&_HLS_msn=2", "_HLS_msn"),
    ],
)
def test_parse_hls_directives_errors(query: str, field: str) -> None:
    with pytest.raises(HlsDirectiveError) as info:
        parse_hls_directives(query)
    assert info.value.field == field
    resp = info.value.response()
    assert resp.status == 400
    assert json.loads(resp.body)["error"]["field"] == field
    assert_cors(resp)


@given(st.text(max_size=80))
def test_parse_hls_directives_only_raises_its_error(query: str) -> None:
    error: HlsDirectiveError | None = None
    try:
        result = parse_hls_directives(query)
    except HlsDirectiveError as exc:
        error, result = exc, HlsDirectives()
    if error is not None:
        assert error.field in {"_HLS_msn", "_HLS_part"}
        assert error.response().status == 400
    else:
        assert result.part is None or result.msn is not None
        assert result.msn is None or result.msn >= 0


def test_advance_part_limit_and_parts_ahead() -> None:
    assert advance_part_limit(0.5) == 6  # 3 / 0.5
    assert advance_part_limit(0.33) == 10
    assert advance_part_limit(1.0) == 3
    # 2 s segments of 0.5 s parts: (10, 3) → (11, 1) is 2 parts ahead; (12, 3) is 8
    assert parts_ahead((10, 3), (11, 1), 2.0, 0.5) == 2
    assert parts_ahead((10, 3), (12, 3), 2.0, 0.5) == 8
    assert parts_ahead((10, 3), (10, 1), 2.0, 0.5) == -2
