"""The registry's JSON codec: lossless round trips, strict decoding of damaged values."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from actors.ingest.publisher import IngestProtocol, PushInput, StoredKey, new_stream_key
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
    ingest=st.none() | st.sampled_from([p.value for p in IngestProtocol]),
    srt_latency_ms=st.none() | st.integers(20, 8000),
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
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=10,
)


@given(specs)
def test_spec_round_trips_with_its_credentials(spec: StreamSpec) -> None:
    assert codec.decode_spec(codec.encode_spec(spec)) == spec


def test_a_record_written_before_push_streams_were_durable_still_decodes() -> None:
    old = (
        '{"stream_id":"a","source_url":"rtmp://h/x","qualities":["240p"],"enable_hls":true,'
        '"enable_dash":false,"low_latency":true}'
    )
    spec = codec.decode_spec(old)
    assert (spec.ingest, spec.srt_latency_ms) == (None, None)
    assert codec.encode_spec(spec) == old  # a pull stream's record is unchanged


push_ingests = st.builds(
    lambda protocol, digest, passphrase, port: codec.PushIngest(
        protocol,
        StoredKey(digest, passphrase if protocol is IngestProtocol.SRT else None),
        port if protocol is IngestProtocol.SRT else None,
    ),
    st.sampled_from(IngestProtocol),
    st.binary(min_size=32, max_size=32),
    st.text(min_size=10, max_size=64),
    st.integers(1, 65535),
)


@given(push_ingests)
def test_push_ingest_round_trips_through_the_stored_json(push: codec.PushIngest) -> None:
    stored = codec.decode_ingest(codec.encode_ingest(codec.encode_push_ingest(push)))
    assert stored is not None
    assert codec.decode_push_ingest(stored) == push


def test_the_ingest_dict_keeps_the_key_hash_and_only_srt_keeps_the_key_itself() -> None:
    rtmp_key = new_stream_key("cam1", IngestProtocol.RTMP)
    rtmp = codec.encode_push_ingest(
        codec.PushIngest(
            IngestProtocol.RTMP, PushInput("cam1", IngestProtocol.RTMP, rtmp_key).stored_key
        )
    )
    assert rtmp_key not in codec.encode_ingest(rtmp)  # type: ignore[operator]
    assert rtmp == {"protocol": "rtmp", "key_sha256": hashlib.sha256(rtmp_key.encode()).hexdigest()}
    srt_key = new_stream_key("cam1", IngestProtocol.SRT)
    srt_push = PushInput("cam1", IngestProtocol.SRT, srt_key)
    srt = codec.encode_push_ingest(codec.PushIngest(IngestProtocol.SRT, srt_push.stored_key, 9001))
    assert srt["srt_passphrase"] == srt_key
    assert srt["srt_port"] == 9001
    # stored, never shown: neither the key nor its hash is in any repr
    for shown in (repr(codec.decode_push_ingest(srt)), repr(srt_push.stored_key)):
        assert srt_key not in shown
        assert str(srt["key_sha256"]) not in shown


@pytest.mark.parametrize(
    ("ingest", "message"),
    [
        ({}, "ingest.protocol must be str"),
        ({"protocol": "rtsp", "key_sha256": "00" * 32}, "not valid"),
        ({"protocol": "rtmp", "key_sha256": "zz"}, "not valid"),
        ({"protocol": "rtmp", "key_sha256": "00" * 16}, "not a SHA-256 digest"),
        ({"protocol": "srt", "key_sha256": "00" * 32}, "srt_passphrase"),
        ({"protocol": "rtmp", "key_sha256": "00" * 32, "srt_passphrase": "x" * 12}, "passphrase"),
        ({"protocol": "srt", "key_sha256": "00" * 32, "srt_passphrase": "x" * 12,
          "srt_port": 70000}, "not a port"),
    ],
)  # fmt: skip
def test_a_damaged_push_ingest_is_reported(ingest: dict[str, object], message: str) -> None:
    with pytest.raises(codec.CorruptRecord, match=message):
        codec.decode_push_ingest(ingest)  # type: ignore[arg-type]


@given(positions)
def test_position_round_trips(position: TimelinePosition) -> None:
    assert codec.decode_position(codec.encode_position(position)) == position


@given(st.none() | st.dictionaries(st.text(max_size=8), json_values, max_size=5))
def test_ingest_round_trips(ingest: dict[str, object] | None) -> None:
    assert codec.decode_ingest(codec.encode_ingest(ingest)) == ingest  # type: ignore[arg-type]


def test_a_spec_written_before_push_streams_still_reads() -> None:
    old = (
        '{"stream_id":"a","source_url":"rtmp://h/x","qualities":["240p"],"enable_hls":true,'
        '"enable_dash":true,"low_latency":false}'
    )
    spec = codec.decode_spec(old)
    assert spec == StreamSpec("a", "rtmp://h/x", ("240p",), True, True, False)
    assert spec.ingest is None
    assert spec.srt_latency_ms is None


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
        (
            '{"stream_id":"a","source_url":"","qualities":[],"enable_hls":true,'
            '"enable_dash":true,"low_latency":true,"srt_latency_ms":"120"}',
            "spec.srt_latency_ms must be int",
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
