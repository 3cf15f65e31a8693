"""Undecoded H.264 access units + Opus packets → MPEG-TS bytes, with PyAV (libavformat).

MPEG-TS because it carries Annex B H.264 with in-band SPS/PPS as WebRTC delivers it (Matroska
would want an avcC record first) and FFmpeg reads it from a pipe with no seeking. DTS = PTS:
WebRTC H.264 has no B-frames.
"""

from __future__ import annotations

import fractions
from collections.abc import Callable
from typing import Any

import av

VIDEO_CLOCK_HZ = 90_000
OPUS_CLOCK_HZ = 48_000
# libavformat waits for a packet of every stream before it writes (interleaving); a publisher
# that sends no audio for a while must not hold video back longer than this.
MAX_INTERLEAVE_DELAY_US = 300_000
_NAL_TYPE_IDR = 5


def contains_idr(access_unit: bytes) -> bool:
    """Whether an Annex B access unit contains an IDR slice (NAL type 5)."""
    start = 0
    while (start := access_unit.find(b"\x00\x00\x01", start)) >= 0:
        header_at = start + 3
        if header_at < len(access_unit) and access_unit[header_at] & 0x1F == _NAL_TYPE_IDR:
            return True
        start = header_at
    return False


class _SinkFile:
    """The file object PyAV writes to: forwards every write to ``sink``."""

    def __init__(self, sink: Callable[[bytes], None]) -> None:
        self._sink = sink

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        self._sink(chunk)
        return len(chunk)

    def seekable(self) -> bool:
        return False


class TsMuxer:
    """Writes video (and optionally audio) units to ``sink`` as MPEG-TS."""

    def __init__(self, sink: Callable[[bytes], None], *, with_audio: bool) -> None:
        self._file = _SinkFile(sink)
        self._container: Any = av.open(
            self._file,
            "w",
            format="mpegts",
            options={"max_interleave_delta": str(MAX_INTERLEAVE_DELAY_US)},
            buffer_size=4096,  # small writes: a part must not wait for a 32 KiB buffer to fill
        )
        self._video = self._container.add_stream("h264")
        self._audio = (
            self._container.add_stream("libopus", rate=OPUS_CLOCK_HZ) if with_audio else None
        )
        self._video_time_base = fractions.Fraction(1, VIDEO_CLOCK_HZ)
        self._audio_time_base = fractions.Fraction(1, OPUS_CLOCK_HZ)
        self.seen_keyframe = False

    def write_video(self, access_unit: bytes, pts_90khz: int) -> bool:
        """Mux one access unit; units before the first IDR are dropped (undecodable). Returns
        whether it was written."""
        keyframe = contains_idr(access_unit)
        if not self.seen_keyframe and not keyframe:
            return False
        self.seen_keyframe = True
        packet = av.Packet(access_unit)
        packet.stream = self._video
        packet.time_base = self._video_time_base
        packet.pts = packet.dts = pts_90khz
        packet.is_keyframe = keyframe
        self._container.mux(packet)
        return True

    def write_audio(self, opus_packet: bytes, pts_48khz: int) -> bool:
        # audio before the first video keyframe would start the TS without a picture; FFmpeg's
        # probe then takes longer: hold the start to the first IDR
        if self._audio is None or not self.seen_keyframe:
            return False
        packet = av.Packet(opus_packet)
        packet.stream = self._audio
        packet.time_base = self._audio_time_base
        packet.pts = packet.dts = pts_48khz
        self._container.mux(packet)
        return True

    def close(self) -> None:
        self._container.close()
