"""The control channel between the trio service and a WHIP peer child: JSON lines, both ways.

Pure encode/decode shared by both ends (it imports neither trio nor asyncio). Parent → child:
``offer`` (the SDP), ``request_keyframe`` and ``stop``. Child → parent: ``answer``,
``connected`` (ICE+DTLS up and the negotiated codecs), ``stats`` (bytes written), ``ended`` (why
the session is over) and ``error`` (the offer could not be answered). Media never goes through
this channel: it is MPEG-TS on the child's stdout.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

# An offer is ≤ 64 KiB (whip_sdp.MAX_OFFER_BYTES); JSON escaping can at most double it twice over.
MAX_CONTROL_LINE_BYTES = 512 * 1024


class ControlMessageError(ValueError):
    """A control line that is not one of the messages below."""


@dataclass(frozen=True, slots=True)
class Offer:
    sdp: str


@dataclass(frozen=True, slots=True)
class Stop:
    reason: str = ""


@dataclass(frozen=True, slots=True)
class RequestKeyframe:
    """A new FFmpeg reads this publisher (a restart): it needs an IDR with SPS/PPS now, and a
    browser sends one only when asked (RTCP PLI)."""

    reason: str = ""


@dataclass(frozen=True, slots=True)
class Answer:
    sdp: str


@dataclass(frozen=True, slots=True)
class Connected:
    video_codec: str
    audio_codec: str | None
    remote_address: str | None


@dataclass(frozen=True, slots=True)
class Stats:
    media_bytes_out: int
    video_units: int
    audio_units: int
    sync_mode: str | None


@dataclass(frozen=True, slots=True)
class Ended:
    reason: str


@dataclass(frozen=True, slots=True)
class Error:
    message: str


ControlMessage = Offer | Stop | RequestKeyframe | Answer | Connected | Stats | Ended | Error
_TYPES: dict[str, type[ControlMessage]] = {
    "offer": Offer,
    "stop": Stop,
    "request_keyframe": RequestKeyframe,
    "answer": Answer,
    "connected": Connected,
    "stats": Stats,
    "ended": Ended,
    "error": Error,
}
_NAMES = {cls: name for name, cls in _TYPES.items()}


def encode_message(message: ControlMessage) -> bytes:
    """One JSON line (``\\n``-terminated) for ``message``."""
    fields = {name: getattr(message, name) for name in message.__slots__}
    return json.dumps({"type": _NAMES[type(message)], **fields}).encode() + b"\n"


def decode_message(line: bytes) -> ControlMessage:
    """The message on one line; ControlMessageError for anything else (never a KeyError)."""
    if len(line) > MAX_CONTROL_LINE_BYTES:
        raise ControlMessageError("control line too long")
    try:
        raw = json.loads(line)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ControlMessageError(f"not JSON: {exc}") from exc
    if not isinstance(raw, dict):
        raise ControlMessageError("not a JSON object")
    cls = _TYPES.get(str(raw.pop("type", "")))
    if cls is None:
        raise ControlMessageError("unknown message type")
    try:
        message = cls(**raw)
    except TypeError as exc:
        raise ControlMessageError(f"bad fields for {_NAMES[cls]}: {exc}") from exc
    _check_field_types(message)
    return message


def _check_field_types(message: ControlMessage) -> None:
    annotations = {
        name: hint
        for klass in type(message).__mro__
        for name, hint in getattr(klass, "__annotations__", {}).items()
    }
    for name in message.__slots__:
        value = getattr(message, name)
        hint = annotations[name]
        allowed: tuple[type, ...] = {
            "str": (str,),
            "str | None": (str, type(None)),
            "int": (int,),
        }[hint]
        if not isinstance(value, allowed) or isinstance(value, bool):
            raise ControlMessageError(f"{_NAMES[type(message)]}.{name} has the wrong type")


class LineSplitter:
    """Splits a byte stream into lines; a line over the limit is an error, not a memory leak."""

    def __init__(self, max_line_bytes: int = MAX_CONTROL_LINE_BYTES) -> None:
        self._buffer = bytearray()
        self._max_line_bytes = max_line_bytes

    def feed(self, data: bytes) -> list[bytes]:
        self._buffer += data
        lines: list[bytes] = []
        while (end := self._buffer.find(b"\n")) >= 0:
            lines.append(bytes(self._buffer[:end]))
            del self._buffer[: end + 1]
        if len(self._buffer) > self._max_line_bytes:
            raise ControlMessageError("control line too long")
        return lines
