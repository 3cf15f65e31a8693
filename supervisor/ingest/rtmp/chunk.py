"""The RTMP chunk stream (RTMP spec 5.3): bytes ↔ messages. Pure, sans-I/O.

``ChunkReader.feed(data)`` returns every message completed by ``data``; it keeps per chunk stream
the last header (fmt 1–3 chunks reuse its fields), the partial payload, and the negotiated chunk
size (``Set Chunk Size`` messages are applied as they are read, as they change the very next
chunk). ``ChunkWriter.write(message)`` splits a message into fmt-0 + fmt-3 chunks.

Extended timestamps: a 3-byte timestamp field of 0xFFFFFF means a 4-byte one follows, and, as
FFmpeg (rtmppkt.c) and librtmp write it, it is repeated on the fmt-3 chunks of that message and
read on a fmt-3 chunk whenever the last header of its chunk stream had one.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

DEFAULT_CHUNK_SIZE = 128
# The largest chunk size the spec allows (31 bits); anything we accept from a peer must be sane
# to bound memory: a message is at most 16 MiB (3-byte length) anyway.
MAX_CHUNK_SIZE = 0x7FFFFFFF
EXTENDED_TIMESTAMP = 0xFFFFFF
# Bounds so a hostile peer cannot make us hold unbounded partial messages: until a publish is
# accepted only command-sized messages pass (the session then raises the limit for media; a
# 4K keyframe is a few MB).
MAX_CHUNK_STREAMS = 16
COMMAND_MESSAGE_BYTES = 64 * 1024
MEDIA_MESSAGE_BYTES = 8 * 1024 * 1024

# message type ids (spec 5.4, 7.1)
SET_CHUNK_SIZE = 1
ABORT = 2
ACKNOWLEDGEMENT = 3
USER_CONTROL = 4
WINDOW_ACK_SIZE = 5
SET_PEER_BANDWIDTH = 6
AUDIO = 8
VIDEO = 9
DATA_AMF3 = 15
COMMAND_AMF3 = 17
DATA_AMF0 = 18
COMMAND_AMF0 = 20


class ChunkError(ValueError):
    """The byte stream is not a valid chunk stream."""


@dataclass(frozen=True, slots=True)
class Message:
    type_id: int
    payload: bytes
    timestamp_ms: int = 0
    stream_id: int = 0  # message stream id
    chunk_stream_id: int = 3


@dataclass(slots=True)
class _ChunkStreamState:
    timestamp_ms: int = 0
    timestamp_field: int = 0  # the last header's 3-byte field (delta or absolute)
    extended: bool = False  # the last header's field was 0xFFFFFF
    length: int = 0
    type_id: int = 0
    stream_id: int = 0
    has_header: bool = False
    partial: bytearray = field(default_factory=bytearray)


class ChunkReader:
    def __init__(self) -> None:
        self.chunk_size = DEFAULT_CHUNK_SIZE
        self.max_message_bytes = COMMAND_MESSAGE_BYTES
        self._buffer = bytearray()
        self._pos = 0  # where the next chunk starts in _buffer, during feed()
        self._streams: dict[int, _ChunkStreamState] = {}
        self.bytes_read = 0

    def feed(self, data: bytes) -> list[Message]:
        """Messages completed by ``data``. Raises ChunkError on a malformed stream."""
        self._buffer.extend(data)
        self.bytes_read += len(data)
        messages: list[Message] = []
        self._pos = 0
        try:
            while True:
                consumed, message = self._one_chunk()
                if consumed == 0:
                    return messages
                self._pos += consumed
                if message is not None:
                    if message.type_id == SET_CHUNK_SIZE:
                        self.chunk_size = parse_chunk_size(message.payload)
                    messages.append(message)
        finally:
            # consumed chunks leave the buffer once per feed, not once per chunk
            del self._buffer[: self._pos]
            self._pos = 0

    def _one_chunk(self) -> tuple[int, Message | None]:
        """(bytes consumed, completed message or None); (0, None) when more bytes are needed."""
        # indices relative to ``base`` (no memoryview: an exception's traceback would keep it
        # exported and the buffer could not be compacted)
        buf = self._buffer
        base = self._pos
        available = len(buf) - base
        if available <= 0:
            return 0, None
        fmt = buf[base] >> 6
        csid = buf[base] & 0x3F
        pos = 1
        if csid == 0:
            if available < 2:
                return 0, None
            csid = 64 + buf[base + 1]
            pos = 2
        elif csid == 1:
            if available < 3:
                return 0, None
            csid = 64 + buf[base + 1] + buf[base + 2] * 256
            pos = 3
        header_size = (11, 7, 3, 0)[fmt]
        if available < pos + header_size:
            return 0, None
        state = self._streams.get(csid)
        if state is None:
            if len(self._streams) >= MAX_CHUNK_STREAMS:
                raise ChunkError("too many chunk streams")
            if fmt != 0:
                raise ChunkError(f"chunk stream {csid} starts without a full (fmt 0) header")
            state = _ChunkStreamState()
        header = bytes(buf[base + pos : base + pos + header_size])
        pos += header_size
        starting = not state.partial
        if fmt == 3 and not state.has_header:
            raise ChunkError(f"chunk stream {csid}: fmt 3 before any header")
        if fmt in (0, 1, 2):
            field_value = int.from_bytes(header[0:3], "big")
            extended = field_value == EXTENDED_TIMESTAMP
        else:
            field_value = state.timestamp_field
            extended = state.extended
        if extended:
            if available < pos + 4:
                return 0, None
            field_value_full = int.from_bytes(buf[base + pos : base + pos + 4], "big")
            pos += 4
        else:
            field_value_full = field_value
        length = state.length
        type_id = state.type_id
        stream_id = state.stream_id
        if fmt in (0, 1):
            length = int.from_bytes(header[3:6], "big")
            type_id = header[6]
            if length > self.max_message_bytes:
                raise ChunkError(f"message of {length} bytes is too large")
        if fmt == 0:
            stream_id = struct.unpack("<I", header[7:11])[0]
        if fmt != 3 and not starting:
            raise ChunkError(f"chunk stream {csid}: new header in the middle of a message")
        remaining = length - len(state.partial)
        take = min(remaining, self.chunk_size)
        if available < pos + take:
            return 0, None
        # the whole chunk is here: commit the header
        if fmt == 0:
            timestamp = field_value_full
        elif fmt in (1, 2) or starting:
            timestamp = state.timestamp_ms + field_value_full
        else:
            timestamp = state.timestamp_ms  # a continuation chunk
        if fmt != 3:
            state.timestamp_field = field_value
            state.extended = extended
        state.timestamp_ms = timestamp & 0xFFFFFFFF
        state.length = length
        state.type_id = type_id
        state.stream_id = stream_id
        state.has_header = True
        self._streams[csid] = state
        state.partial.extend(buf[base + pos : base + pos + take])
        pos += take
        if len(state.partial) < length:
            return pos, None
        payload = bytes(state.partial)
        state.partial.clear()
        return pos, Message(
            type_id=type_id,
            payload=payload,
            timestamp_ms=state.timestamp_ms,
            stream_id=stream_id,
            chunk_stream_id=csid,
        )

    def bytes_wanted(self) -> int:
        """A lower bound on the bytes still to come before ``feed`` can complete a message:
        what the message in progress lacks, less everything already buffered (some of which
        may be chunk headers, so never more than is really needed); 0 when no message is in
        progress (nothing is known of the next one). A publisher sends a message's chunks back
        to back, so these bytes are on their way: the listener waits for them in one wake-up."""
        lacking = [s.length - len(s.partial) for s in self._streams.values() if s.partial]
        if not lacking:
            return 0
        return max(1, min(lacking) - len(self._buffer))

    def abort(self, chunk_stream_id: int) -> None:
        """An Abort message: drop the partial message of that chunk stream."""
        state = self._streams.get(chunk_stream_id)
        if state is not None:
            state.partial.clear()


def parse_chunk_size(payload: bytes) -> int:
    if len(payload) < 4:
        raise ChunkError("Set Chunk Size needs 4 bytes")
    size = int.from_bytes(payload[:4], "big") & 0x7FFFFFFF
    if size < 1:
        raise ChunkError("chunk size must be at least 1")
    return size


def _basic_header(fmt: int, csid: int) -> bytes:
    if not 2 <= csid <= 65599:
        raise ValueError("chunk stream id must be 2..65599")
    if csid < 64:
        return bytes([(fmt << 6) | csid])
    if csid < 320:
        return bytes([fmt << 6, csid - 64])
    return bytes([(fmt << 6) | 1, (csid - 64) & 0xFF, (csid - 64) >> 8])


class ChunkWriter:
    def __init__(self) -> None:
        self.chunk_size = DEFAULT_CHUNK_SIZE

    def write(self, message: Message) -> bytes:
        """The message as one fmt-0 chunk and as many fmt-3 continuation chunks as needed.

        A ``Set Chunk Size`` message changes the size for the chunks written after it.
        """
        timestamp = message.timestamp_ms & 0xFFFFFFFF
        extended = timestamp >= EXTENDED_TIMESTAMP
        field_value = EXTENDED_TIMESTAMP if extended else timestamp
        extended_bytes = struct.pack(">I", timestamp) if extended else b""
        payload = message.payload
        if len(payload) > 0xFFFFFF:
            raise ValueError("an RTMP message is at most 16 MiB")
        out = bytearray(_basic_header(0, message.chunk_stream_id))
        out += field_value.to_bytes(3, "big")
        out += len(payload).to_bytes(3, "big")
        out.append(message.type_id)
        out += struct.pack("<I", message.stream_id)
        out += extended_bytes
        out += payload[: self.chunk_size]
        for offset in range(self.chunk_size, len(payload), self.chunk_size):
            out += _basic_header(3, message.chunk_stream_id) + extended_bytes
            out += payload[offset : offset + self.chunk_size]
        if message.type_id == SET_CHUNK_SIZE:
            self.chunk_size = parse_chunk_size(message.payload)
        return bytes(out)
