"""Parser for FFmpeg's ``-progress`` feed: ``key=value`` lines, each block ending ``progress=…``.

Feeds the stall watchdog and the metrics. Pure; tolerant by design: FFmpeg writes ``N/A`` before
the first output packet, and a garbled line must never kill the stream actor.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

MAX_PENDING_BYTES = 64 * 1024  # a line longer than this is garbage, not progress
_BITRATE_RE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*kbits/s\s*$")
_SPEED_RE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?(?:e[+-]?[0-9]+)?)\s*x\s*$")


@dataclass(frozen=True, slots=True)
class Progress:
    """One ``-progress`` block. None means FFmpeg said N/A (or sent nothing parseable)."""

    frame: int
    fps: float
    speed: float | None
    out_time_s: float | None
    total_size_bytes: int | None
    bitrate_kbps: float | None
    dup_frames: int
    drop_frames: int
    ended: bool  # progress=end: FFmpeg is finishing


def _int(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return int(value.strip())
    except ValueError:
        return None


def _float(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        number = float(value.strip())
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _out_time_s(fields: dict[str, str]) -> float | None:
    # out_time_us is the precise one; out_time_ms is *also* µs (a historic FFmpeg misnomer).
    for key in ("out_time_us", "out_time_ms"):
        micros = _int(fields.get(key))
        if micros is not None:
            return micros / 1_000_000
    return None


def _block(fields: dict[str, str], *, ended: bool) -> Progress:
    bitrate = _BITRATE_RE.match(fields.get("bitrate", ""))
    speed = _SPEED_RE.match(fields.get("speed", ""))
    return Progress(
        frame=_int(fields.get("frame")) or 0,
        fps=_float(fields.get("fps")) or 0.0,
        speed=float(speed.group(1)) if speed else None,
        out_time_s=_out_time_s(fields),
        total_size_bytes=_int(fields.get("total_size")),
        bitrate_kbps=float(bitrate.group(1)) if bitrate else None,
        dup_frames=_int(fields.get("dup_frames")) or 0,
        drop_frames=_int(fields.get("drop_frames")) or 0,
        ended=ended,
    )


class ProgressParser:
    """Incremental: ``feed`` any split of the byte stream, get every block completed so far."""

    __slots__ = ("_fields", "_pending")

    def __init__(self) -> None:
        self._pending = b""
        self._fields: dict[str, str] = {}

    def feed(self, chunk: bytes) -> list[Progress]:
        self._pending += chunk
        *lines, self._pending = self._pending.split(b"\n")
        if len(self._pending) > MAX_PENDING_BYTES:
            self._pending = b""
        out: list[Progress] = []
        for raw in lines:
            line = raw.decode("utf-8", "replace").strip()
            key, sep, value = line.partition("=")
            if not sep or not key:
                continue  # garbage line: skip, keep the block
            key = key.strip()
            if key == "progress":
                state = value.strip()
                out.append(_block(self._fields, ended=state == "end"))
                self._fields = {}
            else:
                self._fields[key] = value
        return out
