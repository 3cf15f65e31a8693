"""Reading FFmpeg's stderr: what the source is, and why it failed, in words a client can use.

The source description comes from the block FFmpeg prints after opening its input::

    Input #0, flv, from 'rtmp://…':
      Duration: N/A, start: 0.000000, bitrate: N/A
      Stream #0:0: Video: h264 (High), yuv420p(progressive), 1280x720 [SAR 1:1 DAR 16:9], 30 fps, …
      Stream #0:1: Audio: aac (LC), 48000 Hz, stereo, fltp, 128 kb/s
    Stream mapping:

Pure; tolerant of the ``[level]`` prefix that ``-loglevel level+…`` adds and of ``[0x100](eng)``
stream decorations from MPEG-TS and RTSP.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from actors.ffmpeg.sources import redact_url

_PREFIX_RE = re.compile(r"^(?:\[[a-z]+\]\s*)?")
_INPUT_RE = re.compile(r"^Input #0\b")
_OTHER_INPUT_RE = re.compile(r"^Input #[1-9]")
_END_RE = re.compile(r"^(?:Stream mapping:|Output #\d|Press \[q\])")
_STREAM_RE = re.compile(r"^\s*Stream #0:\d+\S*:\s*(Video|Audio):\s*(.*)$")
_CODEC_RE = re.compile(r"^([A-Za-z0-9_.-]+)")
_SIZE_RE = re.compile(r"(?:^|[\s,])(\d{2,5})x(\d{2,5})(?=[\s,\[]|$)")
_FPS_RE = re.compile(r"(\d+(?:\.\d+)?)\s*(?:fps|tbr)\b")


@dataclass(frozen=True, slots=True)
class SourceInfo:
    """The first video and audio stream of input #0 as FFmpeg described them."""

    width: int | None
    height: int | None
    frame_rate: float | None
    video_codec: str | None
    has_audio: bool
    audio_codec: str | None


def _strip(line: str) -> str:
    return _PREFIX_RE.sub("", line.rstrip("\r\n"), count=1)


class SourceInfoCollector:
    """Feed stderr lines one by one; returns the SourceInfo once, when the input block closes."""

    __slots__ = ("_audio_codec", "_done", "_fps", "_height", "_in_block", "_video_codec", "_width")

    def __init__(self) -> None:
        self._in_block = False
        self._done = False
        self._width: int | None = None
        self._height: int | None = None
        self._fps: float | None = None
        self._video_codec: str | None = None
        self._audio_codec: str | None = None

    def _result(self) -> SourceInfo:
        self._done = True
        return SourceInfo(
            width=self._width,
            height=self._height,
            frame_rate=self._fps,
            video_codec=self._video_codec,
            has_audio=self._audio_codec is not None,
            audio_codec=self._audio_codec,
        )

    def feed_line(self, line: str) -> SourceInfo | None:
        if self._done:
            return None
        text = _strip(line)
        if not self._in_block:
            self._in_block = _INPUT_RE.match(text) is not None
            return None
        if _END_RE.match(text) or _OTHER_INPUT_RE.match(text):
            return self._result()
        stream = _STREAM_RE.match(text)
        if stream is None:
            return None
        kind, details = stream.groups()
        codec_match = _CODEC_RE.match(details)
        codec = codec_match.group(1) if codec_match else "unknown"
        if kind == "Video" and self._video_codec is None:
            self._video_codec = codec
            if size := _SIZE_RE.search(details):
                self._width, self._height = int(size.group(1)), int(size.group(2))
            if fps := _FPS_RE.search(details):
                self._fps = float(fps.group(1))
        elif kind == "Audio" and self._audio_codec is None:
            self._audio_codec = codec
        return None


def parse_source_info(lines: Iterable[str]) -> SourceInfo | None:
    """SourceInfo from a whole stderr capture (also accepts a block cut off at the end)."""
    collector = SourceInfoCollector()
    for line in lines:
        if (info := collector.feed_line(line)) is not None:
            return info
    if collector._in_block and not collector._done:
        return collector._result()
    return None


# Ordered: the first match wins, so specific messages come before generic ones.
_ERRORS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"Connection refused", re.I), "source refused the connection"),
    (re.compile(r"timed out|Connection timeout", re.I), "source timed out"),
    (re.compile(r"Server returned 404|404 Not Found", re.I), "source not found (HTTP 404)"),
    (re.compile(r"Server returned 40[13]|40[13] (?:Forbidden|Unauthorized)", re.I),
     "source denied access (HTTP 401/403)"),
    (re.compile(r"Server returned 5\d\d", re.I), "source server error (HTTP 5xx)"),
    (re.compile(r"Failed to resolve hostname|Name or service not known", re.I),
     "source host name could not be resolved"),
    (re.compile(r"No route to host|Network is unreachable", re.I), "source host is unreachable"),
    (re.compile(r"No such file or directory", re.I), "source file does not exist"),
    (re.compile(r"Protocol not found", re.I), "protocol not supported"),
    (re.compile(r"does not contain any stream", re.I), "source contains no streams"),
    (re.compile(r"matches no streams", re.I), "source lacks a requested stream (e.g. no audio)"),
    (re.compile(r"Invalid data found when processing input", re.I),
     "source sent data FFmpeg cannot decode"),
    (re.compile(r"Connection reset by peer|End of file", re.I), "source closed the connection"),
    (re.compile(r"Broken pipe", re.I), "output pipe closed (packager stopped reading)"),
    (re.compile(r"Input/output error", re.I), "source could not be read (I/O error)"),
    (re.compile(r"Unknown encoder|Error (?:while opening|initializing output stream)", re.I),
     "encoder could not be opened"),
)  # fmt: skip


def redact_line(line: str) -> str:
    """``line`` fit to log or show: FFmpeg prints its input URL (``Input #0, flv, from 'rtmp://
    user:pass@…'``, ``Error opening input …``) with whatever credentials it carries."""
    return redact_url(line)


def classify_error(line: str) -> str | None:
    """A short human reason for a well-known FFmpeg failure line, else None."""
    text = _strip(line)
    for pattern, reason in _ERRORS:
        if pattern.search(text):
            return reason
    return None
