from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from supervisor.requests import RequestInvalid, parse_stream_request

ALLOWED = frozenset({"http", "https", "rtmp", "srt"})


def parse(body: Any) -> Any:
    return parse_stream_request(body, allowed_protocols=ALLOWED, default_low_latency=True)


def test_minimal_request_gets_the_defaults() -> None:
    spec, source = parse({"stream_id": "cam-1", "source_url": "rtmp://example.com/live/key"})
    assert spec.qualities == ("1080p", "720p", "480p", "360p", "240p")
    assert (spec.enable_hls, spec.enable_dash, spec.low_latency) == (True, True, True)
    assert source.url == "rtmp://example.com/live/key"


def test_qualities_are_deduplicated_and_ordered_high_to_low() -> None:
    spec, _ = parse(
        {"stream_id": "a", "source_url": "srt://h:9000", "qualities": ["240p", "720p", "240p"]}
    )
    assert spec.qualities == ("720p", "240p")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ([], None),
        ({"source_url": "rtmp://h/x"}, "stream_id"),
        ({"stream_id": "../etc", "source_url": "rtmp://h/x"}, "stream_id"),
        ({"stream_id": "x" * 65, "source_url": "rtmp://h/x"}, "stream_id"),
        ({"stream_id": "ok"}, "source_url"),
        ({"stream_id": "ok", "source_url": "file:///etc/passwd"}, "source_url"),
        ({"stream_id": "ok", "source_url": "-f lavfi -i testsrc"}, "source_url"),
        ({"stream_id": "ok", "source_url": "concat:a|b"}, "source_url"),
        ({"stream_id": "ok", "source_url": "rtmp://h/x", "qualities": ["4k"]}, "qualities"),
        ({"stream_id": "ok", "source_url": "rtmp://h/x", "qualities": []}, "qualities"),
        ({"stream_id": "ok", "source_url": "rtmp://h/x", "enable_hls": "yes"}, "enable_hls"),
        (
            {
                "stream_id": "ok",
                "source_url": "rtmp://h/x",
                "enable_hls": False,
                "enable_dash": False,
            },
            "enable_hls",
        ),
        ({"stream_id": "ok", "source_url": "rtmp://h/x", "surprise": 1}, "surprise"),
    ],
)
def test_invalid_requests_name_the_field(body: Any, field: str | None) -> None:
    with pytest.raises(RequestInvalid) as caught:
        parse(body)
    assert caught.value.field == field
    assert caught.value.message


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=10,
)


@given(
    body=st.one_of(
        json_values,
        st.fixed_dictionaries(
            {"stream_id": json_values, "source_url": json_values},
            optional={
                "qualities": json_values,
                "enable_hls": json_values,
                "enable_dash": json_values,
                "low_latency": json_values,
            },
        ),
    )
)
def test_any_json_is_accepted_or_refused_cleanly(body: Any) -> None:
    try:
        spec, _ = parse(body)
    except RequestInvalid as invalid:
        assert invalid.code
        return
    assert spec.stream_id


# ---------------------------------------------------------------- push ingest


@pytest.mark.parametrize("protocol", ["rtmp", "srt", "whip"])
def test_a_push_stream_has_ingest_and_no_source(protocol: str) -> None:
    spec, source = parse({"stream_id": "cam", "ingest": protocol, "qualities": ["240p"]})
    assert source is None
    assert spec.ingest == protocol
    assert spec.source_url == ""
    assert spec.qualities == ("240p",)


def test_srt_latency_is_taken_for_srt_streams() -> None:
    spec, _ = parse({"stream_id": "cam", "ingest": "srt", "srt_latency_ms": 80})
    assert spec.srt_latency_ms == 80


@pytest.mark.parametrize(
    ("body", "field", "code"),
    [
        ({"stream_id": "x"}, "source_url", "source_or_ingest_required"),
        (
            {"stream_id": "x", "source_url": "rtmp://h/x", "ingest": "rtmp"},
            "ingest",
            "source_and_ingest",
        ),
        ({"stream_id": "x", "source_url": None, "ingest": "rtmp"}, "ingest", "source_and_ingest"),
        ({"stream_id": "x", "ingest": None}, "ingest", "invalid_request"),
        ({"stream_id": "x", "ingest": "rtsp"}, "ingest", "invalid_request"),
        ({"stream_id": "x", "ingest": ["rtmp"]}, "ingest", "invalid_request"),
        ({"stream_id": "x", "ingest": "rtmp", "srt_latency_ms": 100}, "srt_latency_ms", None),
        ({"stream_id": "x", "source_url": "srt://h:1", "srt_latency_ms": 100}, "srt_latency_ms", None),
        ({"stream_id": "x", "ingest": "srt", "srt_latency_ms": 5}, "srt_latency_ms", None),
        ({"stream_id": "x", "ingest": "srt", "srt_latency_ms": True}, "srt_latency_ms", None),
        ({"stream_id": "x", "ingest": "srt", "srt_latency_ms": None}, "srt_latency_ms", None),
        ({"stream_id": "x", "ingest": "srt", "srt_latency_ms": 1.5}, "srt_latency_ms", None),
    ],
)
def test_exactly_one_of_source_url_and_ingest(
    body: dict[str, Any], field: str, code: str | None
) -> None:
    with pytest.raises(RequestInvalid) as raised:
        parse(body)
    assert raised.value.field == field
    assert raised.value.message
    if code is not None:
        assert raised.value.code == code
