"""RTMP's pure layers: AMF0, the chunk stream, the handshake, FLV re-wrapping (Hypothesis)."""

from __future__ import annotations

import contextlib
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from supervisor.ingest.rtmp import amf0, chunk, flv
from supervisor.ingest.rtmp.chunk import ChunkError, ChunkReader, ChunkWriter, Message
from supervisor.ingest.rtmp.handshake import HANDSHAKE_SIZE, HandshakeError, server_reply

# ---------------------------------------------------------------- AMF0

_keys = st.text(max_size=20)
amf_values = st.recursive(
    st.none()
    | st.booleans()
    | st.floats(allow_nan=False)
    | st.text(max_size=50)
    | st.builds(amf0.Date, st.floats(allow_nan=False), st.integers(-720, 720)),
    lambda children: (
        st.lists(children, max_size=5)
        | st.dictionaries(_keys, children, max_size=5)
        | st.dictionaries(_keys, children, max_size=5).map(amf0.EcmaArray)
    ),
    max_leaves=20,
)


@given(st.lists(amf_values, max_size=5))
def test_amf0_round_trip(values: list[amf0.AmfValue]) -> None:
    decoded = amf0.decode_all(amf0.encode_all(*values))
    assert decoded == values
    for got, want in zip(decoded, values, strict=True):
        assert type(got) is type(want)


def test_amf0_known_bytes() -> None:
    # "connect", 1.0, {app: "live"} as FFmpeg writes it
    data = (
        b"\x02\x00\x07connect"
        + b"\x00" + struct.pack(">d", 1.0)
        + b"\x03\x00\x03app\x02\x00\x04live\x00\x00\x09"
    )
    assert amf0.decode_all(data) == ["connect", 1.0, {"app": "live"}]
    assert amf0.encode_all("connect", 1.0, {"app": "live"}) == data
    long_text = "x" * 70_000
    assert amf0.encode(long_text)[0] == amf0.LONG_STRING
    assert amf0.decode_all(amf0.encode(long_text)) == [long_text]


@given(st.binary(max_size=200))
def test_amf0_garbage_raises_amf_error_only(data: bytes) -> None:
    with contextlib.suppress(amf0.AmfError):
        amf0.decode_all(data)


def test_amf0_refuses_deep_nesting_and_huge_counts() -> None:
    deep = b"\x0a\x00\x00\x00\x01" * 100 + b"\x05"
    with pytest.raises(amf0.AmfError, match="deep"):
        amf0.decode_all(deep)
    with pytest.raises(amf0.AmfError, match="longer"):
        amf0.decode_all(b"\x0a\xff\xff\xff\xff\x05")


# ---------------------------------------------------------------- chunk stream

messages = st.builds(
    Message,
    type_id=st.sampled_from([chunk.AUDIO, chunk.VIDEO, chunk.DATA_AMF0, chunk.COMMAND_AMF0]),
    payload=st.binary(max_size=3000),
    timestamp_ms=st.one_of(st.integers(0, 5000), st.integers(0xFFFFF0, 0xFFFFFFFF)),
    stream_id=st.integers(0, 3),
    chunk_stream_id=st.sampled_from([2, 3, 4, 63, 64, 100, 319, 320, 65599]),
)


@settings(max_examples=150)
@given(
    st.lists(messages, max_size=8),
    st.integers(1, 5000),
    st.lists(st.integers(1, 700), min_size=1, max_size=30),
)
def test_chunk_round_trip_any_chunk_size_any_split(
    sent: list[Message], chunk_size: int, cuts: list[int]
) -> None:
    writer = ChunkWriter()
    data = writer.write(
        Message(chunk.SET_CHUNK_SIZE, struct.pack(">I", chunk_size), chunk_stream_id=2)
    )
    for message in sent:
        data += writer.write(message)
    reader = ChunkReader()
    received: list[Message] = []
    pos = 0
    index = 0
    while pos < len(data):  # the socket delivers arbitrary pieces
        step = cuts[index % len(cuts)]
        received.extend(reader.feed(data[pos : pos + step]))
        pos += step
        index += 1
    assert received[0].type_id == chunk.SET_CHUNK_SIZE
    assert reader.chunk_size == chunk_size
    assert received[1:] == sent


def test_fmt_1_2_3_headers_add_deltas() -> None:
    # csid 4: fmt 0 at t=1000, fmt 1 (+40, new length/type), fmt 2 (+40), fmt 3 (+40 again)
    stream = (
        bytes([0x04]) + (1000).to_bytes(3, "big") + (2).to_bytes(3, "big") + bytes([9])
        + struct.pack("<I", 1) + b"v0"
        + bytes([0x44]) + (40).to_bytes(3, "big") + (3).to_bytes(3, "big") + bytes([8]) + b"a01"
        + bytes([0x84]) + (40).to_bytes(3, "big") + b"a02"
        + bytes([0xC4]) + b"a03"
    )
    got = ChunkReader().feed(stream)
    assert [(m.type_id, m.timestamp_ms, m.payload, m.stream_id) for m in got] == [
        (9, 1000, b"v0", 1),
        (8, 1040, b"a01", 1),
        (8, 1080, b"a02", 1),
        (8, 1120, b"a03", 1),
    ]


def test_extended_timestamps_are_repeated_on_continuation_chunks() -> None:
    message = Message(chunk.VIDEO, b"x" * 300, timestamp_ms=0x01020304, stream_id=1)
    data = ChunkWriter().write(message)
    # 12-byte header + 4-byte extended timestamp + 128, then (1 + 4 + 128) and (1 + 4 + 44)
    assert len(data) == 12 + 4 + 128 + (1 + 4 + 128) + (1 + 4 + 44)
    assert data[1:4] == b"\xff\xff\xff"
    assert data[12:16] == b"\x01\x02\x03\x04"
    assert data[144:149] == b"\xc3\x01\x02\x03\x04"
    assert ChunkReader().feed(data) == [message]


@given(
    st.lists(st.binary(min_size=1, max_size=3000), min_size=1, max_size=4),
    st.sampled_from([128, 4096]),
    st.integers(1, 500),
)
def test_bytes_wanted_never_exceeds_what_completes_the_next_message(
    payloads: list[bytes], chunk_size: int, step: int
) -> None:
    """Fed in any pieces, the reader never asks to wait for more bytes than it really needs
    before it can hand out the next message (the RTMP listener's low-water mark), and asks for
    nothing (0) between messages."""
    writer = ChunkWriter()
    writer.chunk_size = chunk_size
    reader = ChunkReader()
    reader.chunk_size = chunk_size
    reader.max_message_bytes = chunk.MEDIA_MESSAGE_BYTES
    wire = bytearray()
    message_ends = []
    for payload in payloads:
        wire += writer.write(Message(type_id=chunk.VIDEO, payload=payload, stream_id=1))
        message_ends.append(len(wire))
    received = 0
    delivered = 0
    for offset in range(0, len(wire), step):
        piece = bytes(wire[offset : offset + step])
        delivered += len(reader.feed(piece))
        received += len(piece)
        wanted = reader.bytes_wanted()
        if delivered == len(payloads):
            assert wanted == 0
        else:
            next_end = message_ends[delivered]
            assert wanted <= max(1, next_end - received)
            assert wanted == 0 or received < next_end
    assert delivered == len(payloads)


def test_abort_drops_a_partial_message() -> None:
    writer = ChunkWriter()
    first = writer.write(Message(chunk.VIDEO, b"y" * 200, chunk_stream_id=6))
    reader = ChunkReader()
    assert reader.feed(first[:140]) == []
    reader.abort(6)
    follow = writer.write(Message(chunk.VIDEO, b"z" * 10, chunk_stream_id=6))
    assert [m.payload for m in reader.feed(follow)] == [b"z" * 10]


@given(st.binary(max_size=400))
def test_chunk_garbage_raises_chunk_error_only(data: bytes) -> None:
    with contextlib.suppress(ChunkError):
        ChunkReader().feed(data)


def test_a_chunk_stream_must_start_with_a_full_header() -> None:
    with pytest.raises(ChunkError, match="fmt 0"):
        ChunkReader().feed(b"\x43" + bytes(7))


def test_oversized_messages_are_refused() -> None:
    header = b"\x03" + bytes(3) + (70_000).to_bytes(3, "big") + b"\x09" + bytes(4)
    with pytest.raises(ChunkError, match="too large"):
        ChunkReader().feed(header)


# ---------------------------------------------------------------- handshake


def test_handshake_reply_echoes_c1_and_says_simple() -> None:
    c1 = struct.pack(">I", 1234) + bytes(4) + bytes(range(256)) * 5 + bytes(248)
    assert len(c1) == HANDSHAKE_SIZE
    reply = server_reply(b"\x03" + c1, server_time_ms=99, random_bytes=b"r" * 1528)
    assert len(reply) == 1 + 2 * HANDSHAKE_SIZE
    s1 = reply[1 : 1 + HANDSHAKE_SIZE]
    s2 = reply[1 + HANDSHAKE_SIZE :]
    assert reply[0] == 3
    assert s1[:4] == struct.pack(">I", 99)
    assert s1[4:8] == bytes(4)  # no digest handshake: FFmpeg and OBS then skip validation
    assert s2[:4] == c1[:4]
    assert s2[8:] == c1[8:]


@pytest.mark.parametrize("first", [b"G", b"\x06", b"\x00", b"\x16"])
def test_handshake_refuses_non_rtmp(first: bytes) -> None:
    with pytest.raises(HandshakeError, match="not an RTMP client"):
        server_reply(first + bytes(HANDSHAKE_SIZE), server_time_ms=0)


# ---------------------------------------------------------------- FLV


def test_flv_tag_layout() -> None:
    tag = flv.tag(flv.TAG_VIDEO, 0x12345678, b"abc")
    assert tag == (
        b"\x09" + b"\x00\x00\x03" + b"\x34\x56\x78" + b"\x12" + b"\x00\x00\x00" + b"abc"
        + struct.pack(">I", 14)
    )
    assert flv.FLV_HEADER[:3] == b"FLV"
    assert len(flv.FLV_HEADER) == 13


def test_set_data_frame_is_stripped_for_the_file() -> None:
    meta = amf0.encode_all("onMetaData", amf0.EcmaArray({"width": 1280.0}))
    assert flv.script_body(amf0.encode("@setDataFrame") + meta) == meta
    assert flv.script_body(meta) == meta
    assert flv.script_body(amf0.encode_all("onCuePoint", {})) is None
    assert flv.script_body(b"\xff") is None


def test_codec_names() -> None:
    assert flv.video_codec(b"\x17\x00") == "h264"
    assert flv.video_codec(b"\x90hvc1") == "hevc"
    assert flv.audio_codec(b"\xaf\x00") == "aac"
    assert flv.video_codec(b"") is None


def test_codec_configuration_is_recognised() -> None:
    assert flv.codec_configuration_slot(flv.TAG_VIDEO, b"\x17\x00\x00") == "video-config"
    assert flv.codec_configuration_slot(flv.TAG_VIDEO, b"\x17\x01\x00") is None  # a frame
    assert flv.codec_configuration_slot(flv.TAG_VIDEO, b"\x90hvc1") == "video-config"
    assert flv.codec_configuration_slot(flv.TAG_VIDEO, b"\x91hvc1") is None
    assert flv.codec_configuration_slot(flv.TAG_AUDIO, b"\xaf\x00\x12") == "audio-config"
    assert flv.codec_configuration_slot(flv.TAG_AUDIO, b"\xaf\x01\x12") is None
    assert flv.codec_configuration_slot(flv.TAG_AUDIO, b"\x2f") is None


@given(st.binary(min_size=1, max_size=300))
def test_garbage_after_valid_chunks_is_still_a_chunk_error(data: bytes) -> None:
    reader = ChunkReader()
    valid = ChunkWriter().write(Message(chunk.VIDEO, b"v" * 300, stream_id=1))
    with contextlib.suppress(ChunkError):
        reader.feed(valid + data)  # anything but ChunkError (e.g. BufferError) fails the test
