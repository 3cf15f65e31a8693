"""aiortc without decoding: its receivers hand us reassembled access units, not pictures.

aiortc's ``RTCRtpReceiver`` depayloads RTP, reassembles frames in its jitter buffer and hands each
``JitterFrame`` to a decoder (``codecs.get_decoder``) in a thread; decoded frames reach the track.
We swap three module-level names in this child process only:

* ``rtcrtpreceiver.get_decoder`` → a decoder that returns the encoded bytes as an ``EncodedUnit``
  (Annex B access unit for H.264, one Opus packet for audio);
* ``rtcrtpreceiver.TimestampMapper`` → identity, so units keep their RTP timestamp (the original
  rebases each track to 0 on its own, which loses the relation RTCP sender reports give us);
* ``RTCRtpReceiver._handle_rtcp_packet`` → also reports sender reports to ``on_sender_report``.

And the video codec list is narrowed to H.264 (all common profiles, so FFmpeg's and Chromium's
High/Main offers are accepted as they are: no transcoding means no profile is a problem).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiortc import codecs as aiortc_codecs
from aiortc import rtcrtpreceiver
from aiortc.codecs.base import Decoder
from aiortc.jitterbuffer import JitterFrame
from aiortc.rtcrtpparameters import RTCRtcpFeedback, RTCRtpCodecParameters
from aiortc.rtp import RtcpSrPacket

H264_PROFILE_LEVEL_IDS = ("42001f", "42e01f", "4d001f", "64001f")
FIRST_DYNAMIC_PAYLOAD_TYPE = 97


@dataclass(frozen=True, slots=True)
class EncodedUnit:
    """One undecoded unit as aiortc's jitter buffer reassembled it."""

    kind: str
    codec_name: str
    data: bytes
    rtp_timestamp: int
    arrival_s: float  # time.monotonic() when the jitter buffer released it


class PassthroughDecoder(Decoder):
    def __init__(self, kind: str, codec_name: str) -> None:
        self.kind = kind
        self.codec_name = codec_name

    def decode(self, encoded_frame: JitterFrame) -> list[Any]:
        return [
            EncodedUnit(
                kind=self.kind,
                codec_name=self.codec_name,
                data=bytes(encoded_frame.data),
                rtp_timestamp=encoded_frame.timestamp,
                arrival_s=time.monotonic(),
            )
        ]


class _IdentityTimestampMapper:
    def map(self, timestamp: int) -> int:
        return timestamp


def _passthrough_decoder(codec: RTCRtpCodecParameters) -> Decoder:
    kind, _, name = codec.mimeType.partition("/")
    return PassthroughDecoder(kind.lower(), name.upper())


def _h264_only_video_codecs() -> list[RTCRtpCodecParameters]:
    feedback = [
        RTCRtcpFeedback(type="nack"),
        RTCRtcpFeedback(type="nack", parameter="pli"),
        RTCRtcpFeedback(type="goog-remb"),
    ]
    codecs: list[RTCRtpCodecParameters] = []
    payload_type = FIRST_DYNAMIC_PAYLOAD_TYPE
    for profile_level_id in H264_PROFILE_LEVEL_IDS:
        codecs.append(
            RTCRtpCodecParameters(
                mimeType="video/H264",
                clockRate=90000,
                payloadType=payload_type,
                rtcpFeedback=list(feedback),
                parameters={
                    "level-asymmetry-allowed": "1",
                    "packetization-mode": "1",
                    "profile-level-id": profile_level_id,
                },
            )
        )
        codecs.append(
            RTCRtpCodecParameters(
                mimeType="video/rtx",
                clockRate=90000,
                payloadType=payload_type + 1,
                parameters={"apt": payload_type},
            )
        )
        payload_type += 2
    return codecs


def install(on_sender_report: Callable[[str, float, int], None]) -> None:
    """Patch aiortc in this process (call once, before any RTCPeerConnection exists)."""
    rtcrtpreceiver.get_decoder = _passthrough_decoder  # type: ignore[attr-defined]
    rtcrtpreceiver.TimestampMapper = _IdentityTimestampMapper  # type: ignore[assignment,misc]
    aiortc_codecs.CODECS["video"] = _h264_only_video_codecs()
    original = rtcrtpreceiver.RTCRtpReceiver._handle_rtcp_packet

    async def handle_rtcp_packet(self: rtcrtpreceiver.RTCRtpReceiver, packet: Any) -> None:
        if isinstance(packet, RtcpSrPacket):
            kind = str(getattr(self, "_RTCRtpReceiver__kind", ""))
            ntp = packet.sender_info.ntp_timestamp
            on_sender_report(
                kind, (ntp >> 32) + (ntp & 0xFFFFFFFF) / (1 << 32), packet.sender_info.rtp_timestamp
            )
        await original(self, packet)

    rtcrtpreceiver.RTCRtpReceiver._handle_rtcp_packet = handle_rtcp_packet  # type: ignore[method-assign]
