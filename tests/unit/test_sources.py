from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from actors.ffmpeg.sources import (
    DEFAULT_ALLOWED_PROTOCOLS,
    OPERATOR_PROTOCOLS,
    SourceError,
    validate_source_url,
)

DEFAULT = frozenset(DEFAULT_ALLOWED_PROTOCOLS)
EVERYTHING = frozenset(DEFAULT_ALLOWED_PROTOCOLS + OPERATOR_PROTOCOLS)


def test_rtmp_gets_rw_timeout_and_whitelist() -> None:
    src = validate_source_url("rtmp://live.example.com/app/key", DEFAULT)
    assert src.url == "rtmp://live.example.com/app/key"
    assert src.scheme == "rtmp"
    assert src.input_args == (
        "-protocol_whitelist", "rtmp,rtmps,tcp,tls", "-fflags", "nobuffer",
        "-rw_timeout", "10000000",
    )  # fmt: skip
    # rtmp's own -timeout would make FFmpeg *listen*: it must never appear.
    assert "-timeout" not in src.input_args


@pytest.mark.parametrize(
    "url",
    ["rtmp://h/a", "http://h/x.ts", "srt://1.2.3.4:9000", "udp://239.0.0.1:1234", "rtsp://h/s"],
)
def test_network_sources_drop_the_probed_packets(url: str) -> None:
    # Queued probe packets are a start-up backlog the timeline anchor would keep for ever.
    args = validate_source_url(url, DEFAULT).input_args
    assert args[args.index("-fflags") + 1] == "nobuffer"


def test_rtsp_uses_tcp_and_socket_timeout() -> None:
    src = validate_source_url("rtsp://cam.local:554/stream1", DEFAULT)
    assert src.input_args[-4:] == ("-rtsp_transport", "tcp", "-timeout", "10000000")


@pytest.mark.parametrize("url", ["srt://1.2.3.4:9000?streamid=x", "udp://239.0.0.1:1234"])
def test_srt_udp_use_timeout(url: str) -> None:
    assert validate_source_url(url, DEFAULT).input_args[-2:] == ("-timeout", "10000000")


def test_http_source() -> None:
    src = validate_source_url("https://example.com/live/index.m3u8", DEFAULT)
    assert src.input_args[-2:] == ("-rw_timeout", "10000000")
    assert src.input_args[1] == "http,https,tcp,tls,crypto"


def test_lavfi_is_operator_only_and_becomes_format_args() -> None:
    with pytest.raises(SourceError, match="not allowed"):
        validate_source_url("lavfi:testsrc2=size=640x360", DEFAULT)
    src = validate_source_url("lavfi:testsrc2=size=640x360", DEFAULT | {"lavfi"})
    assert src.url == "testsrc2=size=640x360"
    assert src.input_args == ("-re", "-f", "lavfi")


def test_file_is_paced_and_looped() -> None:
    src = validate_source_url("file:/media/loop.mp4", DEFAULT | {"file"})
    assert src.input_args == ("-protocol_whitelist", "file", "-re", "-stream_loop", "-1")
    assert src.url == "file:/media/loop.mp4"


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("", "empty"),
        ("-i", "must not start"),
        ("-f lavfi", "whitespace"),
        ("rtmp://host/a b", "whitespace"),
        ("rtmp://host/a\tb", "whitespace"),
        ("rtmp://host/a\x00b", "control"),
        ("rtmp://host/\x7f", "control"),
        ("rtmp://" + "a" * 2050, "longer"),
        ("/etc/passwd", "scheme"),
        ("etc/passwd", "scheme"),
        ("gopher://host/x", "unknown protocol"),
        ("RTMP://host/x", "malformed"),
        ("file:/etc/passwd", "not allowed"),
        ("concat:a.ts|b.ts", "not allowed"),
        ("subfile,,start,0,end,0,,:/etc/passwd", "nested"),
        ("crypto+http://host/x", "nested"),
        ("async:http://host/x", "not allowed"),
        ("cache:http://host/x", "not allowed"),
        ("data:text/plain,hi", "not allowed"),
        ("pipe:0", "not allowed"),
        ("rtmp:/nohost", "no host"),
        ("http://", "no host"),
        ("srt://:9000", "no host"),
        ("lavfi:", "not allowed"),
    ],
)
def test_refused(url: str, reason: str) -> None:
    with pytest.raises(SourceError, match=reason):
        validate_source_url(url, DEFAULT)


def test_nested_allowed_only_when_operator_allows_every_layer() -> None:
    with pytest.raises(SourceError, match="nested"):
        validate_source_url("crypto+http://host/x", (DEFAULT | {"crypto"}) - {"http"})
    src = validate_source_url("crypto+http://host/x", EVERYTHING)
    assert src.scheme == "crypto"
    assert src.input_args == ()


def test_lavfi_graph_cannot_start_with_dash() -> None:
    with pytest.raises(SourceError, match="filter graph"):
        validate_source_url("lavfi:-i", EVERYTHING)


def test_source_error_is_value_error() -> None:
    with pytest.raises(ValueError, match="unknown protocol"):
        validate_source_url("bogus://x", DEFAULT)


@given(st.text(max_size=80))
def test_no_accepted_url_starts_with_dash_or_has_whitespace(url: str) -> None:
    for allowed in (DEFAULT, EVERYTHING):
        try:
            src = validate_source_url(url, allowed)
        except SourceError:
            continue
        assert not src.url.startswith("-")
        assert not any(ch.isspace() for ch in src.url)
        assert src.scheme in allowed


@given(
    scheme=st.sampled_from(DEFAULT_ALLOWED_PROTOCOLS),
    host=st.from_regex(r"[a-z][a-z0-9-]{0,20}(\.[a-z]{2,5}){0,2}", fullmatch=True),
    path=st.from_regex(r"(/[A-Za-z0-9_.~-]{0,10}){0,3}", fullmatch=True),
)
def test_wellformed_network_urls_are_accepted_verbatim(scheme: str, host: str, path: str) -> None:
    url = f"{scheme}://{host}{path}"
    src = validate_source_url(url, DEFAULT)
    assert src.url == url
    assert src.input_args[0] == "-protocol_whitelist"


@pytest.mark.parametrize(
    "url", ["rtmp://h:99999/x", "http://u:p@h:abc/x", "http://h:0/", "udp://@", "rtmp://:80/x"]
)
def test_bad_ports_and_missing_hosts_are_refused(url: str) -> None:
    with pytest.raises(SourceError):
        validate_source_url(url, frozenset({"rtmp", "http", "udp"}))


@pytest.mark.parametrize("url", ["udp://@:1234", "rtp://@:5004", "udp://239.0.0.1:1234"])
def test_udp_and_rtp_listen_syntax_is_accepted(url: str) -> None:
    assert validate_source_url(url, frozenset({"udp", "rtp"})).url == url
