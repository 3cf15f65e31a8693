"""RTMP media messages re-wrapped as an FLV byte stream (what FFmpeg's ``-f flv`` reads). Pure.

An RTMP audio/video/data message *is* an FLV tag body; the tag adds an 11-byte header (type,
size, timestamp) and each tag is followed by its size. ``@setDataFrame`` (how publishers send
``onMetaData`` over RTMP) is stripped so the script tag reads ``onMetaData, {…}`` as in a file.
"""

from __future__ import annotations

import struct

from supervisor.ingest.rtmp import amf0

TAG_AUDIO = 8
TAG_VIDEO = 9
TAG_SCRIPT = 18
# FLV header: signature, version 1, flags (audio 0x04 | video 0x01), header size 9,
# then PreviousTagSize0 = 0.
FLV_HEADER = b"FLV\x01\x05\x00\x00\x00\x09" + b"\x00\x00\x00\x00"

_VIDEO_CODECS = {2: "h263", 3: "screen", 4: "vp6", 5: "vp6a", 6: "screen2", 7: "h264", 12: "hevc"}
_AUDIO_CODECS = {2: "mp3", 7: "g711a", 8: "g711u", 10: "aac", 11: "speex", 14: "mp3", 15: "pcm"}
# enhanced RTMP (Veovera): a FourCC instead of the 4-bit codec id
_FOURCC_CODECS = {b"avc1": "h264", b"hvc1": "hevc", b"av01": "av1", b"vp09": "vp9"}


def tag(tag_type: int, timestamp_ms: int, payload: bytes) -> bytes:
    """One FLV tag plus the PreviousTagSize that follows it."""
    if len(payload) > 0xFFFFFF:
        raise ValueError("an FLV tag body is at most 16 MiB")
    timestamp = timestamp_ms & 0xFFFFFFFF
    header = (
        bytes([tag_type])
        + len(payload).to_bytes(3, "big")
        + (timestamp & 0xFFFFFF).to_bytes(3, "big")
        + bytes([timestamp >> 24])
        + b"\x00\x00\x00"
    )
    return header + payload + struct.pack(">I", len(header) + len(payload))


def script_body(data_message: bytes) -> bytes | None:
    """The FLV script tag body of an RTMP data message: ``@setDataFrame`` dropped; None if the
    message is not ``onMetaData`` (other data messages are not for the file)."""
    try:
        first, rest = amf0.split_first(data_message)
        if first == "@setDataFrame":
            body = rest
            first, _ = amf0.split_first(rest)
        else:
            body = data_message
    except amf0.AmfError:
        return None
    return body if first == "onMetaData" else None


def video_codec(payload: bytes) -> str | None:
    if not payload:
        return None
    if payload[0] & 0x80 and len(payload) >= 5:  # enhanced RTMP
        return _FOURCC_CODECS.get(payload[1:5], payload[1:5].decode("latin-1"))
    return _VIDEO_CODECS.get(payload[0] & 0x0F)


def audio_codec(payload: bytes) -> str | None:
    if not payload:
        return None
    return _AUDIO_CODECS.get(payload[0] >> 4)
