"""The RTMP server session (sans-I/O): FFmpeg's / OBS's publish sequence, refusals, garbage."""

from __future__ import annotations

import contextlib
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from supervisor.ingest.rtmp import amf0, chunk, flv
from supervisor.ingest.rtmp.chunk import ChunkReader, ChunkWriter, Message
from supervisor.ingest.rtmp.handshake import HANDSHAKE_SIZE
from supervisor.ingest.rtmp.session import (
    Media,
    Metadata,
    PublishEnded,
    PublishRequested,
    RtmpProtocolError,
    ServerSession,
)

C0_C1 = b"\x03" + bytes(8) + b"c" * (HANDSHAKE_SIZE - 8)
C2 = b"2" * HANDSHAKE_SIZE


class Client:
    """Writes what a publisher writes; reads the server's answers as messages."""

    def __init__(self) -> None:
        self.writer = ChunkWriter()
        self.reader = ChunkReader()
        self.reader.max_message_bytes = chunk.MEDIA_MESSAGE_BYTES
        self.handshake_read = False

    def command(self, name: str, transaction: float, *args: amf0.AmfValue, stream: int = 0) -> bytes:
        payload = amf0.encode_all(name, transaction, *args)
        return self.writer.write(Message(chunk.COMMAND_AMF0, payload, stream_id=stream))

    def answers(self, data: bytes) -> list[list[amf0.AmfValue] | Message]:
        if not self.handshake_read:
            assert data[0] == 3
            data = data[1 + 2 * HANDSHAKE_SIZE :]
            self.handshake_read = True
        out: list[list[amf0.AmfValue] | Message] = []
        for message in self.reader.feed(data):
            if message.type_id == chunk.COMMAND_AMF0:
                out.append(amf0.decode_all(message.payload))
            else:
                out.append(message)
        return out


def _publish_sequence(client: Client, name: str) -> bytes:
    return (
        client.command("connect", 1.0, {"app": "live", "type": "nonprivate", "tcUrl": "rtmp://h/live"})
        + client.command("releaseStream", 2.0, None, name)
        + client.command("FCPublish", 3.0, None, name)
        + client.command("createStream", 4.0, None)
        + client.command("publish", 5.0, None, name, "live", stream=1)
    )


def _connected(name: str = "cam1.key") -> tuple[ServerSession, Client, list[object]]:
    server = ServerSession()
    client = Client()
    events = server.receive(C0_C1)
    assert events == []
    events = server.receive(C2 + _publish_sequence(client, name))
    return server, client, list(events)


def test_ffmpeg_publish_sequence_is_answered() -> None:
    server, client, events = _connected()
    assert events == [PublishRequested(app="live", name="cam1.key")]
    answers = client.answers(server.outgoing())
    commands = [a for a in answers if isinstance(a, list)]
    controls = [a.type_id for a in answers if isinstance(a, Message)]
    assert controls == [chunk.WINDOW_ACK_SIZE, chunk.SET_PEER_BANDWIDTH, chunk.SET_CHUNK_SIZE]
    assert client.reader.chunk_size == 4096
    assert commands[0][:2] == ["_result", 1.0]
    assert commands[0][3]["code"] == "NetConnection.Connect.Success"  # type: ignore[index]
    assert commands[1] == ["_result", 2.0, None]
    assert commands[2] == ["_result", 3.0, None]
    assert commands[3] == ["_result", 4.0, None, 1.0]
    assert len(commands) == 4  # publish waits for the key check

    server.accept_publish()
    answers = client.answers(server.outgoing())
    assert isinstance(answers[0], Message)
    assert answers[0].type_id == chunk.USER_CONTROL
    status = answers[1]
    assert isinstance(status, list)
    assert status[0] == "onStatus"
    assert status[3]["code"] == "NetStream.Publish.Start"  # type: ignore[index]

    meta = amf0.encode_all("@setDataFrame", "onMetaData", amf0.EcmaArray({"width": 1280.0}))
    data = client.writer.write(Message(chunk.DATA_AMF0, meta, stream_id=1, chunk_stream_id=4))
    data += client.writer.write(
        Message(chunk.VIDEO, b"\x17\x00" + b"v" * 5000, timestamp_ms=33, stream_id=1, chunk_stream_id=6)
    )
    data += client.writer.write(
        Message(chunk.AUDIO, b"\xaf\x01aa", timestamp_ms=40, stream_id=1, chunk_stream_id=4)
    )
    data += client.command("FCUnpublish", 6.0, None, "cam1.key")
    events = server.receive(data)
    assert events == [
        Metadata(0, amf0.encode_all("onMetaData", amf0.EcmaArray({"width": 1280.0}))),
        Media(flv.TAG_VIDEO, 33, b"\x17\x00" + b"v" * 5000),
        Media(flv.TAG_AUDIO, 40, b"\xaf\x01aa"),
        PublishEnded("FCUnpublish"),
    ]


def test_a_refused_publish_gets_an_error_status() -> None:
    server, client, _ = _connected("cam1.wrong")
    client.answers(server.outgoing())
    server.refuse_publish("NetStream.Publish.BadName", "wrong stream key")
    (status,) = client.answers(server.outgoing())
    assert isinstance(status, list)
    assert status[3] == {  # FFmpeg exits on level "error" ("Server error: …")
        "level": "error",
        "code": "NetStream.Publish.BadName",
        "description": "wrong stream key",
    }
    assert server.refused


def test_media_before_an_accepted_publish_is_a_protocol_error() -> None:
    server, client, _ = _connected()
    with pytest.raises(RtmpProtocolError, match="before an accepted publish"):
        server.receive(client.writer.write(Message(chunk.VIDEO, b"\x17", stream_id=1)))


def test_an_unknown_app_is_rejected_at_connect() -> None:
    server = ServerSession()
    client = Client()
    server.receive(C0_C1 + C2 + client.command("connect", 1.0, {"app": "other"}))
    answers = [a for a in client.answers(server.outgoing()) if isinstance(a, list)]
    assert answers[0][0] == "_error"
    assert answers[0][3]["code"] == "NetConnection.Connect.Rejected"  # type: ignore[index]
    assert server.refused


def test_play_is_refused() -> None:
    server = ServerSession()
    client = Client()
    data = C0_C1 + C2 + client.command("connect", 1.0, {"app": "live"})
    data += client.command("play", 2.0, None, "cam1.key")
    with pytest.raises(RtmpProtocolError, match="publishers only"):
        server.receive(data)


def test_an_http_request_fails_at_the_first_byte() -> None:
    with pytest.raises(ValueError, match="not an RTMP client"):
        ServerSession().receive(b"GET / HTTP/1.1\r\n")


def test_a_truncated_handshake_just_waits() -> None:
    server = ServerSession()
    assert server.receive(C0_C1[:700]) == []
    assert server.outgoing() == b""


def test_acknowledgements_follow_the_window() -> None:
    server, client, _ = _connected()
    server.accept_publish()
    client.answers(server.outgoing())
    server.receive(client.writer.write(Message(chunk.WINDOW_ACK_SIZE, struct.pack(">I", 1000))))
    server.receive(
        client.writer.write(Message(chunk.VIDEO, b"\x17" + bytes(1500), stream_id=1))
    )
    (ack,) = client.answers(server.outgoing())
    assert isinstance(ack, Message)
    assert ack.type_id == chunk.ACKNOWLEDGEMENT
    assert int.from_bytes(ack.payload, "big") > 1000


@given(st.binary(min_size=1, max_size=300))
def test_garbage_after_the_handshake_is_a_value_error(data: bytes) -> None:
    server = ServerSession()
    server.receive(C0_C1 + C2)
    with contextlib.suppress(ValueError):
        server.receive(data)


# ---------------------------------------------------------------------------------------- OBS
# OBS cannot run here, so its publish is replayed as its librtmp writes it (obs-studio
# plugins/obs-outputs/librtmp/rtmp.c: SendConnectPacket, SendReleaseStream, SendFCPublish,
# RTMP_SendCreateStream, SendPublish, RTMP_Write, SendFCUnpublish, SendDeleteStream; rtmp-stream.c
# sets m_outChunkSize 4096 with m_bSendChunkSizeInfo, flashVer "FMLE/3.0 (compatible;
# FMSc/1.0)" and swfUrl = tcUrl; flv-mux.c builds onMetaData). Headers as librtmp picks them:
# fmt 0 ("LARGE") for connect, publish, metadata and media at timestamp 0; fmt 1 ("MEDIUM": no
# message stream id, a timestamp delta) for releaseStream, FCPublish, createStream, FCUnpublish,
# deleteStream and later media; every chunk at OBS's 4096-byte chunk size.
OBS_CHUNK_SIZE = 4096
OBS_TC_URL = "rtmp://127.0.0.1:1935/live"


def _obs_chunks(
    fmt: int,
    chunk_stream: int,
    type_id: int,
    payload: bytes,
    *,
    timestamp_ms: int = 0,
    stream_id: int = 0,
) -> bytes:
    """One message as librtmp's RTMP_SendPacket writes it (fmt 0 or 1, fmt-3 continuations)."""
    header = bytes([fmt << 6 | chunk_stream]) + timestamp_ms.to_bytes(3, "big")
    header += len(payload).to_bytes(3, "big") + bytes([type_id])
    if fmt == 0:
        header += struct.pack("<I", stream_id)
    out = header + payload[:OBS_CHUNK_SIZE]
    for offset in range(OBS_CHUNK_SIZE, len(payload), OBS_CHUNK_SIZE):
        out += bytes([3 << 6 | chunk_stream]) + payload[offset : offset + OBS_CHUNK_SIZE]
    return out


def _obs_invoke(fmt: int, chunk_stream: int, *values: amf0.AmfValue, stream_id: int = 0) -> bytes:
    return _obs_chunks(
        fmt, chunk_stream, chunk.COMMAND_AMF0, amf0.encode_all(*values), stream_id=stream_id
    )


OBS_METADATA = amf0.EcmaArray(
    {
        "duration": 0.0,
        "fileSize": 0.0,
        "width": 1280.0,
        "height": 720.0,
        "videocodecid": "avc1",
        "videodatarate": 2500.0,
        "framerate": 30.0,
        "audiocodecid": "mp4a",
        "audiodatarate": 160.0,
        "audiosamplerate": 48000.0,
        "audiosamplesize": 16.0,
        "audiochannels": 2.0,
        "stereo": True,
        "2.1": False,
        "3.1": False,
        "4.0": False,
        "4.1": False,
        "5.1": False,
        "7.1": False,
        "encoder": "obs-output module (libobs version 30.2.3)",
    }
)


def test_obs_publish_sequence_byte_for_byte() -> None:
    key = "cam1.key"
    server, client = ServerSession(), Client()
    client.reader.chunk_size = chunk.DEFAULT_CHUNK_SIZE
    assert server.receive(C0_C1) == []
    # before connect: Set Chunk Size 4096 on chunk stream 2, then connect with OBS's properties
    connect = {
        "app": "live",
        "type": "nonprivate",
        "flashVer": "FMLE/3.0 (compatible; FMSc/1.0)",
        "swfUrl": OBS_TC_URL,
        "tcUrl": OBS_TC_URL,
    }
    hello = _obs_chunks(0, 2, chunk.SET_CHUNK_SIZE, struct.pack(">I", OBS_CHUNK_SIZE))
    hello += _obs_invoke(0, 3, "connect", 1.0, connect)
    assert server.receive(C2 + hello) == []
    answers = client.answers(server.outgoing())
    commands = [a for a in answers if isinstance(a, list)]
    assert commands[0][3]["code"] == "NetConnection.Connect.Success"  # type: ignore[index]
    # on connect's _result librtmp sends these three at once, fmt 1 on chunk stream 3
    setup = _obs_invoke(1, 3, "releaseStream", 2.0, None, key)
    setup += _obs_invoke(1, 3, "FCPublish", 3.0, None, key)
    setup += _obs_invoke(1, 3, "createStream", 4.0, None)
    assert server.receive(setup) == []
    commands = [a for a in client.answers(server.outgoing()) if isinstance(a, list)]
    assert commands[-1] == ["_result", 4.0, None, 1.0]  # the stream id OBS publishes on
    # on createStream's _result: publish on chunk stream 4, fmt 0, message stream 1
    events = server.receive(_obs_invoke(0, 4, "publish", 5.0, None, key, "live", stream_id=1))
    assert events == [PublishRequested(app="live", name=key)]
    server.accept_publish()
    status = [a for a in client.answers(server.outgoing()) if isinstance(a, list)][-1]
    assert status[3]["code"] == "NetStream.Publish.Start"  # type: ignore[index]

    # RTMP_Write: everything on chunk stream 4; INFO gets "@setDataFrame" put in front
    metadata = amf0.encode_all("@setDataFrame", "onMetaData", OBS_METADATA)
    video_config = b"\x17\x00\x00\x00\x00" + b"\x01\x64\x00\x1f\xff" + bytes(20)
    audio_config = b"\xaf\x00\x11\x90"
    keyframe = b"\x17\x01\x00\x00\x00" + bytes(9000)  # > 2 chunks of 4096
    audio_frame = b"\xaf\x01" + bytes(300)
    media = _obs_chunks(0, 4, chunk.DATA_AMF0, metadata, stream_id=1)
    media += _obs_chunks(0, 4, chunk.VIDEO, video_config, stream_id=1)
    media += _obs_chunks(0, 4, chunk.AUDIO, audio_config, stream_id=1)
    media += _obs_chunks(0, 4, chunk.VIDEO, keyframe, stream_id=1)
    media += _obs_chunks(1, 4, chunk.AUDIO, audio_frame, timestamp_ms=21)  # delta from 0
    media += _obs_chunks(1, 4, chunk.VIDEO, b"\x27\x01" + bytes(700), timestamp_ms=12)  # 33
    events = server.receive(media)
    assert events == [
        Metadata(0, amf0.encode_all("onMetaData", OBS_METADATA)),
        Media(flv.TAG_VIDEO, 0, video_config),
        Media(flv.TAG_AUDIO, 0, audio_config),
        Media(flv.TAG_VIDEO, 0, keyframe),
        Media(flv.TAG_AUDIO, 21, audio_frame),
        Media(flv.TAG_VIDEO, 33, b"\x27\x01" + bytes(700)),
    ]
    # stopping: FCUnpublish then deleteStream, fmt 1 on chunk stream 3 (no answer expected)
    goodbye = _obs_invoke(1, 3, "FCUnpublish", 6.0, None, key)
    goodbye += _obs_invoke(1, 3, "deleteStream", 7.0, None, 1.0)
    events = server.receive(goodbye)
    assert events[0] == PublishEnded("FCUnpublish")
    assert not server.refused
