"""AMF0 (Action Message Format 0), the value encoding of RTMP commands and metadata. Pure.

Python values: number → ``float``, boolean → ``bool``, string and long string → ``str``,
object → ``dict``, ECMA array → ``EcmaArray`` (a dict), strict array → ``list``,
null and undefined → ``None``, date → ``Date``. Decoding is bounded (nesting depth, sizes come
from the bytes at hand) so garbage raises ``AmfError`` instead of recursing or allocating.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Union

NUMBER = 0x00
BOOLEAN = 0x01
STRING = 0x02
OBJECT = 0x03
NULL = 0x05
UNDEFINED = 0x06
ECMA_ARRAY = 0x08
OBJECT_END = 0x09
STRICT_ARRAY = 0x0A
DATE = 0x0B
LONG_STRING = 0x0C

MAX_DEPTH = 32


class AmfError(ValueError):
    """The bytes are not (supported) AMF0."""


class EcmaArray(dict[str, "AmfValue"]):
    """An AMF0 ECMA array (``onMetaData``'s usual container): a dict that encodes as type 8."""


@dataclass(frozen=True, slots=True)
class Date:
    unix_ms: float
    timezone_min: int = 0


AmfValue = Union[  # a recursive alias needs the string form
    float, bool, str, None, "Date", list["AmfValue"], dict[str, "AmfValue"]
]


def _encode_key(key: str) -> bytes:
    raw = key.encode("utf-8")
    if len(raw) > 0xFFFF:
        raise AmfError("object key longer than 65535 bytes")
    return struct.pack(">H", len(raw)) + raw


def encode(value: AmfValue) -> bytes:
    """One AMF0 value."""
    if isinstance(value, bool):
        return bytes([BOOLEAN, int(value)])
    if isinstance(value, int | float):
        return bytes([NUMBER]) + struct.pack(">d", float(value))
    if isinstance(value, str):
        raw = value.encode("utf-8")
        if len(raw) <= 0xFFFF:
            return bytes([STRING]) + struct.pack(">H", len(raw)) + raw
        return bytes([LONG_STRING]) + struct.pack(">I", len(raw)) + raw
    if value is None:
        return bytes([NULL])
    if isinstance(value, Date):
        return bytes([DATE]) + struct.pack(">dh", value.unix_ms, value.timezone_min)
    if isinstance(value, list):
        return (
            bytes([STRICT_ARRAY])
            + struct.pack(">I", len(value))
            + b"".join(encode(item) for item in value)
        )
    if isinstance(value, dict):
        body = b"".join(_encode_key(k) + encode(v) for k, v in value.items())
        end = b"\x00\x00" + bytes([OBJECT_END])
        if isinstance(value, EcmaArray):
            return bytes([ECMA_ARRAY]) + struct.pack(">I", len(value)) + body + end
        return bytes([OBJECT]) + body + end
    raise AmfError(f"cannot encode {type(value).__name__} as AMF0")


def encode_all(*values: AmfValue) -> bytes:
    return b"".join(encode(v) for v in values)


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, count: int) -> bytes:
        end = self.pos + count
        if end > len(self.data):
            raise AmfError("truncated AMF0 value")
        chunk = self.data[self.pos : end]
        self.pos = end
        return chunk

    def u8(self) -> int:
        return self.take(1)[0]

    def string(self, length_bytes: int) -> str:
        (length,) = struct.unpack(">H" if length_bytes == 2 else ">I", self.take(length_bytes))
        try:
            return self.take(length).decode("utf-8")
        except UnicodeDecodeError as error:
            raise AmfError("AMF0 string is not UTF-8") from error

    def pairs(self, depth: int) -> dict[str, AmfValue]:
        result: dict[str, AmfValue] = {}
        while True:
            key = self.string(2)
            if key == "" and self.data[self.pos : self.pos + 1] == bytes([OBJECT_END]):
                self.pos += 1
                return result
            result[key] = self.value(depth + 1)

    def value(self, depth: int = 0) -> AmfValue:
        if depth > MAX_DEPTH:
            raise AmfError("AMF0 value nested too deeply")
        marker = self.u8()
        if marker == NUMBER:
            return float(struct.unpack(">d", self.take(8))[0])
        if marker == BOOLEAN:
            return self.u8() != 0
        if marker == STRING:
            return self.string(2)
        if marker == LONG_STRING:
            return self.string(4)
        if marker in {NULL, UNDEFINED}:
            return None
        if marker == OBJECT:
            return self.pairs(depth)
        if marker == ECMA_ARRAY:
            self.take(4)  # the count is a hint; the end marker is what ends it
            return EcmaArray(self.pairs(depth))
        if marker == STRICT_ARRAY:
            (count,) = struct.unpack(">I", self.take(4))
            if count > len(self.data) - self.pos:  # every value takes at least one byte
                raise AmfError("AMF0 strict array longer than its message")
            return [self.value(depth + 1) for _ in range(count)]
        if marker == DATE:
            unix_ms, timezone_min = struct.unpack(">dh", self.take(10))
            return Date(unix_ms, timezone_min)
        raise AmfError(f"unsupported AMF0 type 0x{marker:02x}")


def decode_all(data: bytes) -> list[AmfValue]:
    """Every value in ``data`` (a command message body).

    Raises:
        AmfError: garbage, truncation, an unsupported type, too deep a nesting.
    """
    reader = _Reader(data)
    values = []
    while reader.pos < len(data):
        values.append(reader.value())
    return values


def split_first(data: bytes) -> tuple[AmfValue, bytes]:
    """The first value and the bytes after it (``@setDataFrame`` is dropped this way)."""
    reader = _Reader(data)
    first = reader.value()
    return first, data[reader.pos :]
