from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from actors.ffmpeg.sources import (
    DEFAULT_ALLOWED_PROTOCOLS,
    NETWORK_SCHEMES,
    OPERATOR_PROTOCOLS,
    SourceError,
    ValidatedSource,
    redact_url,
    synthetic_source,
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
    scheme=st.sampled_from([p for p in DEFAULT_ALLOWED_PROTOCOLS if p not in {"udp", "rtp"}]),
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


@pytest.mark.parametrize(
    "url", ["udp://239.0.0.1:1234", "rtp://239.1.2.3:5004", "udp://[ff0e::1]:9"]
)
def test_udp_and_rtp_multicast_groups_are_pulls(url: str) -> None:
    assert validate_source_url(url, frozenset({"udp", "rtp"})).url == url


# ---------------------------------------------------------------- listener mode (issue 11, #3)

NETWORK = frozenset(NETWORK_SCHEMES)


@pytest.mark.parametrize(
    ("url", "named"),
    [
        ("srt://127.0.0.1:9000?mode=listener", "mode=listener"),
        ("srt://media.example:9000?latency=50&mode=listener", "mode=listener"),
        ("srt://media.example:9000?mode=rendezvous", "mode=rendezvous"),
        ("srt://media.example:9000#?mode=listener", "mode=listener"),  # FFmpeg ignores '#'
        ("srt://media.example:9000?x=1?mode=listener", "mode=listener"),
        ("udp://@:1234", "'@'"),
        ("rtp://@:5004", "'@'"),
        ("udp://@239.0.0.1:1234", "'@'"),
        ("udp://0.0.0.0:1234", "unicast"),
        ("udp://10.0.0.7:1234", "unicast"),  # reading unicast udp binds :1234 for anyone
        ("rtp://media.example:5004", "unicast"),
        ("udp://239.0.0.1:1234?localport=5000", "'localport'"),
        ("udp://239.0.0.1:1234?reuse=1", "'reuse'"),
        ("udp://239.0.0.1:1234?listen=1", "'listen'"),
        ("rtmp://media.example/live?listen=1", "'listen'"),
        ("http://media.example/live.ts?listen=1", "'listen'"),
        ("https://media.example/live.m3u8?a=b&LISTEN", "'listen'"),
        ("rtsp://cam.example/stream?listen", "'listen'"),
        ("rtsp://cam.example/stream?rtsp_flags=listen", "'rtsp_flags'"),
        ("rtsp://cam.example/stream?udp", "'udp' transport"),
        ("rtsp://cam.example/s?x=1?multicast", "'multicast' transport"),
        ("tcp://media.example:9000?listen", "'listen'"),
        ("tcp://media.example:9000?listen=2&listen_timeout=5", "'listen'"),
        ("tcp://media.example:9000?local_port=80", "'local_port'"),
        ("tcp://media.example:9000?local_addr=127.0.0.1", "'local_addr'"),
        ("rist://@:5000", "'@'"),
        ("rist://@192.0.2.1:5000", "'@'"),
    ],
)
def test_listener_mode_urls_are_refused_naming_the_field(url: str, named: str) -> None:
    with pytest.raises(SourceError) as caught:
        validate_source_url(url, NETWORK)
    assert str(caught.value).startswith("source_url must name a server to pull from")
    assert named in str(caught.value)


_LISTENER_OPTIONS = [
    "listen",
    "listen=1",
    "listen=0",
    "LISTEN=1",
    "mode=listener",
    "mode=rendezvous",
    "mode=Listener",
    "localport=5000",
    "local_port=5000",
    "localaddr=0.0.0.0",
    "local_addr=127.0.0.1",
    "reuse=1",
    "reuse_socket=1",
    "rtsp_flags=listen",
    "listen_timeout=1000",
]
_HARMLESS_OPTIONS = st.from_regex(r"[a-z]{1,8}=[a-z0-9]{0,6}", fullmatch=True).filter(
    lambda o: o.split("=")[0] not in {"listen", "mode", "reuse", "localport", "localaddr"}
)


@given(
    scheme=st.sampled_from(sorted(NETWORK_SCHEMES)),
    before=st.lists(_HARMLESS_OPTIONS, max_size=3),
    listener=st.sampled_from(_LISTENER_OPTIONS),
    after=st.lists(_HARMLESS_OPTIONS, max_size=3),
    separator=st.sampled_from(["&", "?"]),
    fragment=st.booleans(),
)
def test_no_url_with_a_listener_option_passes(
    scheme: str,
    before: list[str],
    listener: str,
    after: list[str],
    separator: str,
    fragment: bool,
) -> None:
    query = separator.join([*before, listener, *after])
    url = f"{scheme}://239.1.1.1:9000/{'#' if fragment else ''}?{query}"
    with pytest.raises(SourceError, match="source_url must name a server to pull from"):
        validate_source_url(url, NETWORK)


@pytest.mark.parametrize(
    "url",
    [
        "srt://media.example:9000?mode=caller&latency=50000",
        "srt://media.example:9000?streamid=live/cam1",
        "rtsp://cam.example/stream?tcp",
        "http://media.example/live.m3u8?token=abc&listening=party",
    ],
)
def test_caller_mode_urls_are_pulls(url: str) -> None:
    assert validate_source_url(url, NETWORK).url == url


# ---------------------------------------------------------------- tcp and rist (issue 11, #10c)


def test_tcp_and_rist_are_refused_unless_the_operator_adds_them() -> None:
    for url in ("tcp://media.example:9000", "rist://media.example:5000"):
        with pytest.raises(SourceError, match="not allowed"):
            validate_source_url(url, DEFAULT)


def test_tcp_gets_its_own_whitelist_and_socket_timeout() -> None:
    src = validate_source_url("tcp://media.example:9000", DEFAULT | {"tcp"})
    assert src.input_args == (
        "-protocol_whitelist", "tcp", "-fflags", "nobuffer", "-timeout", "10000000"
    )
    assert (src.host, src.port) == ("media.example", 9000)


def test_rist_gets_its_own_whitelist_and_rw_timeout() -> None:
    src = validate_source_url("rist://media.example:5000?cname=x", DEFAULT | {"rist"})
    assert src.input_args == (
        "-protocol_whitelist", "rist", "-fflags", "nobuffer", "-rw_timeout", "10000000"
    )


# ---------------------------------------------------------------- the host FFmpeg will use


@pytest.mark.parametrize(
    ("url", "host", "port"),
    [
        ("http://media.example/live.m3u8", "media.example", 80),
        ("https://u:p@Media.Example/live.m3u8", "media.example", 443),
        ("rtmp://media.example/live/key", "media.example", 1935),
        ("rtsp://cam.example/s", "cam.example", 554),
        ("rtsps://cam.example/s", "cam.example", 322),
        ("http://[::1]:8080/x", "::1", 8080),
        ("srt://10.0.0.5:9000", "10.0.0.5", 9000),
        ("http://user:p@ss@169.254.169.254/latest", "169.254.169.254", 80),  # the last '@'
        ("http://evil.example\\@169.254.169.254/", "169.254.169.254", 80),
    ],
)
def test_host_and_port_are_what_ffmpeg_connects_to(url: str, host: str, port: int) -> None:
    src = validate_source_url(url, DEFAULT)
    assert (src.host, src.port) == (host, port)


@pytest.mark.parametrize("url", ["http://h:/x", "http://a" + "b" * 260 + "/x"])
def test_hosts_ffmpeg_could_read_differently_are_refused(url: str) -> None:
    with pytest.raises(SourceError, match=r"ambiguous|longer"):
        validate_source_url(url, DEFAULT)


def test_operator_only_protocols_have_no_host() -> None:
    src = validate_source_url("lavfi:testsrc2", DEFAULT | {"lavfi"})
    assert (src.host, src.port) == (None, None)


def test_synthetic_source_needs_no_allow_list() -> None:
    src = synthetic_source("testsrc2=size=640x360[out0]")
    assert src == ValidatedSource(
        url="testsrc2=size=640x360[out0]", scheme="lavfi", input_args=("-re", "-f", "lavfi")
    )


# ---------------------------------------------------------------- redaction (issue 11, #10a)

_SECRET = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.~!$*+=,:",
    min_size=6,
    max_size=20,
)


@given(
    user=_SECRET,
    password=_SECRET,
    token=_SECRET,
    name=st.sampled_from(
        [
            "passphrase",
            "token",
            "key",
            "sig",
            "signature",
            "password",
            "secret",
            "streamid",
            "access_token",
            "X-Amz-Signature",
            "auth",
        ]
    ),
)
def test_redaction_hides_userinfo_and_secret_query_values_in_any_text(
    user: str, password: str, token: str, name: str
) -> None:
    url = f"srt://{user}:{password}@media.example:9000/live?latency=5&{name}={token}&x=1"
    line = f"[srt @ 0x55d0] Input #0, mpegts, from '{url}':"
    for text in (url, line):
        shown = redact_url(text)
        assert password not in shown
        assert token not in shown.split("?", 1)[1]
        assert "media.example:9000/live?latency=5" in shown
        assert shown.endswith("&x=1':" if text is line else "&x=1")
