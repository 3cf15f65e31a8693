"""The registry's JSON codec: lossless round trips, strict decoding of damaged values."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from actors.packager.timeline import TimelinePosition
from actors.status import QUALITY_NAMES, StreamSpec
from supervisor.registry import codec

specs = st.builds(
    StreamSpec,
    stream_id=st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}", fullmatch=True),
    source_url=st.text(min_size=1, max_size=300),
    qualities=st.lists(st.sampled_from(QUALITY_NAMES), unique=True, max_size=5).map(tuple),
    enable_hls=st.booleans(),
    enable_dash=st.booleans(),
    low_latency=st.booleans(),
)
positions = st.builds(
    TimelinePosition,
    availability_start_unix_s=st.floats(0, 4e9, allow_nan=False),
    encoder_epoch=st.integers(0, 2**40),
    last_number=st.integers(0, 2**53),
    media_end_s=st.floats(0, 1e10, allow_nan=False),
    discontinuities=st.integers(0, 2**40),
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=10,
)


@given(specs)
def test_spec_round_trips_with_its_credentials(spec: StreamSpec) -> None:
    assert codec.decode_spec(codec.encode_spec(spec)) == spec


@given(positions)
def test_position_round_trips(position: TimelinePosition) -> None:
    assert codec.decode_position(codec.encode_position(position)) == position


@given(st.none() | st.dictionaries(st.text(max_size=8), json_values, max_size=5))
def test_ingest_round_trips(ingest: dict[str, object] | None) -> None:
    assert codec.decode_ingest(codec.encode_ingest(ingest)) == ingest  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{", "spec is not JSON"),
        ("[]", "spec is not a JSON object"),
        ('{"stream_id": 5}', "spec.qualities must be a list of strings"),
        (
            '{"stream_id":"a","source_url":"u","qualities":[],"enable_hls":1,'
            '"enable_dash":true,"low_latency":true}',
            "spec.enable_hls must be bool",
        ),
    ],
)
def test_a_damaged_spec_is_reported(text: str, message: str) -> None:
    with pytest.raises(codec.CorruptRecord, match=message):
        codec.decode_spec(text)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"availability_start_unix_s": "x"}', "must be a finite number"),
        (
            '{"availability_start_unix_s":1,"encoder_epoch":true,"last_number":1,'
            '"media_end_s":1,"discontinuities":0}',
            "position.encoder_epoch must be int",
        ),
        (
            '{"availability_start_unix_s":1,"encoder_epoch":1,"last_number":-4,'
            '"media_end_s":1,"discontinuities":0}',
            "negative",
        ),
        (
            '{"availability_start_unix_s":1,"encoder_epoch":1,"last_number":1,'
            '"media_end_s":Infinity,"discontinuities":0}',
            "must be a finite number",
        ),
    ],
)
def test_a_damaged_position_is_reported(text: str, message: str) -> None:
    with pytest.raises(codec.CorruptRecord, match=message):
        codec.decode_position(text)
