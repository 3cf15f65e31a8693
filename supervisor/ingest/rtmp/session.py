"""What a publishing RTMP client says and what the server answers. Pure, sans-I/O.

``ServerSession.receive(data)`` takes bytes from the socket and returns events; ``outgoing()``
hands over the bytes to send. The command sequence is the one FFmpeg's rtmpproto.c and OBS
(librtmp) use, and nginx-rtmp / pyrtmp answer:

    C: connect(app)            S: Window Ack Size, Set Peer Bandwidth, Set Chunk Size,
                                  _result(NetConnection.Connect.Success)
    C: releaseStream(name)     S: _result
    C: FCPublish(name)         S: _result
    C: createStream            S: _result(stream id 1)
    C: publish(name, "live")   → ``PublishRequested``: the owner checks the key and calls
                                  ``accept_publish()`` (S: StreamBegin + onStatus
                                  NetStream.Publish.Start) or ``refuse_publish()`` (S: onStatus
                                  level "error" NetStream.Publish.BadName; then close)
    C: @setDataFrame, audio, video …  → ``Metadata`` / ``Media`` events (only after accept)
    C: FCUnpublish / deleteStream     → ``PublishEnded``

Anything else that is not RTMP (the wrong first byte, a broken chunk, AMF0 garbage, media
before publish) raises ``RtmpProtocolError`` (or a subclass of ValueError from a lower layer);
the shell then closes the connection.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from supervisor.ingest.rtmp import amf0, chunk
from supervisor.ingest.rtmp.chunk import ChunkReader, ChunkWriter, Message
from supervisor.ingest.rtmp.flv import script_body
from supervisor.ingest.rtmp.handshake import HANDSHAKE_SIZE, server_reply

APP_NAME = "live"
OUT_CHUNK_SIZE = 4096
WINDOW_ACK_SIZE = 2_500_000
PUBLISH_STREAM_ID = 1
# chunk stream ids we write on: protocol control 2, commands 3, stream status 5
_CONTROL_CSID = 2
_COMMAND_CSID = 3
_STATUS_CSID = 5
# user control event types
_STREAM_BEGIN = 0
_STREAM_EOF = 1


class RtmpProtocolError(ValueError):
    """The peer broke the protocol; the message is safe to log."""


@dataclass(frozen=True, slots=True)
class PublishRequested:
    app: str
    name: str  # the publish name: the stream key


@dataclass(frozen=True, slots=True)
class Media:
    tag_type: int  # flv.TAG_AUDIO / flv.TAG_VIDEO
    timestamp_ms: int
    payload: bytes


@dataclass(frozen=True, slots=True)
class Metadata:
    timestamp_ms: int
    script_body: bytes  # ``onMetaData, {…}``: an FLV script tag body


@dataclass(frozen=True, slots=True)
class PublishEnded:
    reason: str


Event = PublishRequested | Media | Metadata | PublishEnded


def _command(name: str, transaction: float, *args: amf0.AmfValue, stream_id: int = 0) -> Message:
    return Message(
        type_id=chunk.COMMAND_AMF0,
        payload=amf0.encode_all(name, transaction, *args),
        stream_id=stream_id,
        chunk_stream_id=_STATUS_CSID if stream_id else _COMMAND_CSID,
    )


def _control(type_id: int, payload: bytes) -> Message:
    return Message(type_id=type_id, payload=payload, chunk_stream_id=_CONTROL_CSID)


def _status(level: str, code: str, description: str) -> dict[str, amf0.AmfValue]:
    return {"level": level, "code": code, "description": description}


class ServerSession:
    def __init__(self, *, server_time_ms: int = 0) -> None:
        self._server_time_ms = server_time_ms
        self._handshake_buffer = bytearray()
        self._handshake_done = False
        self._out_handshake_sent = False
        self._reader = ChunkReader()
        self._writer = ChunkWriter()
        self._out = bytearray()
        self._window_ack_size: int | None = None
        self._acked_bytes = 0
        self.app: str | None = None
        self.publish_name: str | None = None
        self._publish_transaction = 0.0
        self.publishing = False
        self.refused = False

    # ---------------------------------------------------------------- bytes in / out

    def outgoing(self) -> bytes:
        data = bytes(self._out)
        self._out.clear()
        return data

    def bytes_wanted(self) -> int:
        """A lower bound on the bytes needed before the message in progress can complete (the
        chunk reader's ``bytes_wanted``); 0 when none is (or during the handshake)."""
        return self._reader.bytes_wanted() if self._handshake_done else 0

    def receive(self, data: bytes) -> list[Event]:
        """Events in ``data``. Raises ValueError (RtmpProtocolError, HandshakeError,
        ChunkError, AmfError) when the peer does not speak RTMP as a publisher."""
        if not self._handshake_done:
            self._handshake_buffer.extend(data)
            data = self._advance_handshake()
            if not data:
                return []
        events: list[Event] = []
        for message in self._reader.feed(data):
            events.extend(self._on_message(message))
        self._maybe_acknowledge()
        return events

    def _advance_handshake(self) -> bytes:
        """Consume the handshake; return the bytes that follow it (the first chunks)."""
        buf = self._handshake_buffer
        needed_c1 = 1 + HANDSHAKE_SIZE
        if not self._out_handshake_sent and len(buf) >= 1:
            if len(buf) >= needed_c1:
                self._out += server_reply(bytes(buf[:needed_c1]), server_time_ms=0)
                self._out_handshake_sent = True
            elif buf[0] != 3:
                # fail fast on garbage (an HTTP request) instead of waiting for 1537 bytes
                server_reply(bytes(buf[:1]) + bytes(HANDSHAKE_SIZE), server_time_ms=0)
        if self._out_handshake_sent and len(buf) >= needed_c1 + HANDSHAKE_SIZE:
            rest = bytes(buf[needed_c1 + HANDSHAKE_SIZE :])  # after C2
            buf.clear()
            self._handshake_done = True
            return rest
        return b""

    def _send(self, message: Message) -> None:
        self._out += self._writer.write(message)

    def _maybe_acknowledge(self) -> None:
        if self._window_ack_size is None:
            return
        total = self._reader.bytes_read
        if total - self._acked_bytes >= self._window_ack_size:
            self._acked_bytes = total
            self._send(_control(chunk.ACKNOWLEDGEMENT, struct.pack(">I", total & 0xFFFFFFFF)))

    # ---------------------------------------------------------------- messages

    def _on_message(self, message: Message) -> list[Event]:
        type_id = message.type_id
        if type_id == chunk.ABORT and len(message.payload) >= 4:
            self._reader.abort(int.from_bytes(message.payload[:4], "big"))
        elif type_id == chunk.WINDOW_ACK_SIZE and len(message.payload) >= 4:
            self._window_ack_size = max(1, int.from_bytes(message.payload[:4], "big"))
        elif type_id in (chunk.COMMAND_AMF0, chunk.COMMAND_AMF3):
            payload = message.payload
            if type_id == chunk.COMMAND_AMF3:
                payload = payload[1:]  # an AMF3 command is AMF0 after a 0 format byte
            return self._on_command(amf0.decode_all(payload), message.stream_id)
        elif type_id in (chunk.AUDIO, chunk.VIDEO):
            self._require_publishing("media")
            if not message.payload:
                return []  # an empty tag carries nothing (some encoders send them)
            return [Media(type_id, message.timestamp_ms, message.payload)]
        elif type_id == chunk.DATA_AMF0:
            self._require_publishing("metadata")
            body = script_body(message.payload)
            return [Metadata(message.timestamp_ms, body)] if body is not None else []
        # acknowledgements, user control (ping), peer bandwidth, AMF3 data: nothing to do
        return []

    def _require_publishing(self, what: str) -> None:
        if not self.publishing:
            raise RtmpProtocolError(f"{what} before an accepted publish")

    def _on_command(self, values: list[amf0.AmfValue], stream_id: int) -> list[Event]:
        if len(values) < 2 or not isinstance(values[0], str):
            raise RtmpProtocolError("malformed command")
        name = values[0]
        transaction = values[1] if isinstance(values[1], float) else 0.0
        args = values[2:]
        if name == "connect":
            return self._on_connect(transaction, args)
        if self.app is None:
            raise RtmpProtocolError(f"{name!r} before connect")
        if name in {"releaseStream", "FCPublish", "_checkbw"}:
            self._send(_command("_result", transaction, None))
        elif name == "createStream":
            self._send(_command("_result", transaction, None, float(PUBLISH_STREAM_ID)))
        elif name == "publish":
            return self._on_publish(transaction, args)
        elif name in {"FCUnpublish", "deleteStream", "closeStream"}:
            if self.publishing:
                self.publishing = False
                return [PublishEnded(name)]
        elif name in {"play", "play2"}:
            raise RtmpProtocolError("this server takes publishers only (play refused)")
        return []

    def _on_connect(self, transaction: float, args: list[amf0.AmfValue]) -> list[Event]:
        if self.app is not None:
            raise RtmpProtocolError("connect sent twice")
        command_object = args[0] if args and isinstance(args[0], dict) else {}
        app = command_object.get("app")
        app = app.strip("/") if isinstance(app, str) else ""
        self.app = app
        self._send(_control(chunk.WINDOW_ACK_SIZE, struct.pack(">I", WINDOW_ACK_SIZE)))
        self._send(_control(chunk.SET_PEER_BANDWIDTH, struct.pack(">IB", WINDOW_ACK_SIZE, 2)))
        self._send(_control(chunk.SET_CHUNK_SIZE, struct.pack(">I", OUT_CHUNK_SIZE)))
        if app != APP_NAME:
            self._send(
                _command(
                    "_error",
                    transaction,
                    None,
                    _status(
                        "error",
                        "NetConnection.Connect.Rejected",
                        f"unknown application {app[:64]!r}; publish to /{APP_NAME}/<stream key>",
                    ),
                )
            )
            self.refused = True
            return []
        self._send(
            _command(
                "_result",
                transaction,
                {"fmsVer": "FMS/3,0,1,123", "capabilities": 31.0},
                {
                    **_status("status", "NetConnection.Connect.Success", "Connection succeeded."),
                    "objectEncoding": 0.0,
                },
            )
        )
        return []

    def _on_publish(self, transaction: float, args: list[amf0.AmfValue]) -> list[Event]:
        if self.publish_name is not None:
            raise RtmpProtocolError("publish sent twice")
        name = args[1] if len(args) > 1 and isinstance(args[1], str) else ""
        self.publish_name = name
        self._publish_transaction = transaction
        return [PublishRequested(app=self.app or "", name=name)]

    def accept_publish(self) -> None:
        self.publishing = True
        self._reader.max_message_bytes = chunk.MEDIA_MESSAGE_BYTES
        self._send(
            _control(chunk.USER_CONTROL, struct.pack(">HI", _STREAM_BEGIN, PUBLISH_STREAM_ID))
        )
        self._send(
            _command(
                "onStatus",
                0.0,
                None,
                _status("status", "NetStream.Publish.Start", "Publishing started."),
                stream_id=PUBLISH_STREAM_ID,
            )
        )

    def refuse_publish(self, code: str, description: str) -> None:
        """``code``: ``NetStream.Publish.BadName`` (wrong key) or ``…BadConnection`` (busy)."""
        self.refused = True
        self._send(
            _command(
                "onStatus",
                0.0,
                None,
                _status("error", code, description),
                stream_id=PUBLISH_STREAM_ID,
            )
        )
