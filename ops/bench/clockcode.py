"""A frame counter drawn as big black/white blocks, and read back from a screenshot.

The glass-to-glass benchmark needs to know *which* source frame a screenshot of a playing video
shows. Each source frame carries its counter in a strip at the top of the picture: 2 rows of 16
square blocks (the strip is 1/8 of the frame width tall), one bit per block, white = 1. The 32
bits are the 24-bit counter and a CRC-8 of it, so a misread (a blurred block, a half-drawn frame,
a black video element before the first frame) is detected and counted as unreadable instead of
giving a wrong latency. The strip sits at the top so the player's controls never cover it.

Everything here is pure: ``render_strip_luma`` makes the strip's luma rows for the source,
``decode_png_rows`` is a small PNG decoder (standard library ``zlib`` only; it decodes just the
top rows it needs), ``read_counter`` reads the blocks from RGB(A) rows.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

COLUMNS = 16
ROWS = 2
COUNTER_BITS = 24
CRC_BITS = 8
COUNTER_LIMIT = 1 << COUNTER_BITS  # 155 hours of frames at 30 fps
_CRC_POLY = 0x07
# Folded into the CRC so an all-black picture (counter 0, CRC 0) and an all-white one are invalid.
_CRC_XOR_OUT = 0x5A
# Limited-range luma (BT.601/709): what a player turns into RGB 0 and 255.
BLACK_Y = 16
WHITE_Y = 235
# A block is read from a square in its middle (half its size): block edges smear in a scaled,
# compressed picture, centres do not.
_SAMPLE_GRID = 5
# Mean brightness (0–255) below/above which a block is a clear 0/1; between is ambiguous.
_ZERO_BELOW = 90
_ONE_ABOVE = 165
# A block whose samples spread more than this is not a flat block (a picture, not our code).
_MAX_SPREAD = 110


def crc8(value: int) -> int:
    """CRC-8 (polynomial 0x07) of a 24-bit counter, MSB first, xor-ed with a constant."""
    crc = 0
    for byte in value.to_bytes(3, "big"):
        crc ^= byte
        for _ in range(8):
            crc = ((crc << 1) ^ _CRC_POLY) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc ^ _CRC_XOR_OUT


def encode_bits(counter: int) -> tuple[bool, ...]:
    """The 32 bits drawn for ``counter``: counter (MSB first) then its CRC, row by row."""
    if not 0 <= counter < COUNTER_LIMIT:
        raise ValueError(f"counter must be in [0, {COUNTER_LIMIT}), got {counter}")
    word = (counter << CRC_BITS) | crc8(counter)
    total = COUNTER_BITS + CRC_BITS
    return tuple(bool(word >> (total - 1 - i) & 1) for i in range(total))


def decode_bits(bits: Sequence[bool]) -> int | None:
    """The counter the bits carry, or None when the CRC does not match."""
    if len(bits) != COUNTER_BITS + CRC_BITS:
        return None
    word = 0
    for bit in bits:
        word = (word << 1) | int(bit)
    counter, crc = word >> CRC_BITS, word & 0xFF
    return counter if crc8(counter) == crc else None


def strip_height_px(width_px: int) -> int:
    """Height of the code strip in a frame ``width_px`` wide (blocks are square)."""
    return ROWS * width_px // COLUMNS


def render_strip_luma(counter: int, width_px: int) -> bytes:
    """The strip's luma plane (``width_px`` × ``strip_height_px``), one byte per pixel."""
    bits = encode_bits(counter)
    block_px = width_px // COLUMNS
    pad = bytes([BLACK_Y]) * (width_px - block_px * COLUMNS)
    out = bytearray()
    for row in range(ROWS):
        line = b"".join(
            bytes([WHITE_Y if bits[row * COLUMNS + col] else BLACK_Y]) * block_px
            for col in range(COLUMNS)
        )
        out += (line + pad) * block_px
    return bytes(out)


# ------------------------------------------------------------------------------- PNG


@dataclass(frozen=True, slots=True)
class DecodedRows:
    """The top ``len(rows)`` rows of a PNG, ``channels`` bytes per pixel (3 RGB, 4 RGBA)."""

    width: int
    height: int
    channels: int
    rows: tuple[bytes, ...]


class UnreadablePngError(ValueError):
    """Not a PNG this reader handles (8-bit RGB/RGBA/grey, not interlaced) or a broken one."""


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_CHANNELS = {0: 1, 2: 3, 4: 2, 6: 4}  # colour type → samples per pixel


def decode_png_rows(png: bytes, max_rows: int) -> DecodedRows:
    """Decode the first ``max_rows`` rows of an 8-bit, non-interlaced PNG.

    Only the top of the image is decompressed and unfiltered: PNG filters refer to the row
    above, never below, so the strip can be read without touching the rest of the picture.
    """
    if not png.startswith(_PNG_SIGNATURE):
        raise UnreadablePngError("not a PNG")
    pos = len(_PNG_SIGNATURE)
    header: tuple[int, ...] | None = None
    idat = bytearray()
    while pos + 8 <= len(png):
        (length,) = struct.unpack(">I", png[pos : pos + 4])
        kind = png[pos + 4 : pos + 8]
        data = png[pos + 8 : pos + 8 + length]
        if len(data) != length:
            raise UnreadablePngError("truncated chunk")
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", data)
        elif kind == b"IDAT":
            idat += data
        elif kind == b"IEND":
            break
        pos += 12 + length
    if header is None:
        raise UnreadablePngError("no IHDR")
    width, height, depth, colour, _, _, interlace = header
    if depth != 8 or colour not in _CHANNELS or interlace != 0:
        raise UnreadablePngError(f"unsupported PNG (depth {depth}, colour {colour}, interlace)")
    channels = _CHANNELS[colour]
    stride = width * channels
    wanted = min(max_rows, height)
    try:
        raw = zlib.decompressobj().decompress(bytes(idat), wanted * (stride + 1))
    except zlib.error as error:
        raise UnreadablePngError(f"bad image data: {error}") from error
    if len(raw) < wanted * (stride + 1):
        raise UnreadablePngError("image data ends early")
    rows: list[bytes] = []
    prior = bytes(stride)
    for y in range(wanted):
        start = y * (stride + 1)
        row = _unfilter(raw[start], raw[start + 1 : start + 1 + stride], prior, channels)
        rows.append(row)
        prior = row
    return DecodedRows(width, height, channels, tuple(rows))


def _unfilter(kind: int, line: bytes, prior: bytes, bpp: int) -> bytes:
    if kind == 0:
        return line
    if kind == 2:
        return bytes((a + b) & 0xFF for a, b in zip(line, prior, strict=True))
    out = bytearray(line)
    if kind == 1:
        for i in range(bpp, len(out)):
            out[i] = (out[i] + out[i - bpp]) & 0xFF
    elif kind == 3:
        for i in range(len(out)):
            left = out[i - bpp] if i >= bpp else 0
            out[i] = (out[i] + ((left + prior[i]) >> 1)) & 0xFF
    elif kind == 4:
        for i in range(len(out)):
            a = out[i - bpp] if i >= bpp else 0
            b = prior[i]
            c = prior[i - bpp] if i >= bpp else 0
            p = a + b - c
            pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
            out[i] = (out[i] + pred) & 0xFF
    else:
        raise UnreadablePngError(f"unknown filter type {kind}")
    return bytes(out)


# ------------------------------------------------------------------------------- reading


def read_counter(image: DecodedRows) -> int | None:
    """The counter in the strip at the top of ``image`` (the video picture), None if unreadable.

    ``image`` must start at the picture's top-left corner and be as wide as the picture; it needs
    ``strip_height_px(image.width)`` rows. Unreadable: a block that is neither clearly black nor
    clearly white, or not flat, or a CRC mismatch.
    """
    block_px = image.width / COLUMNS
    if len(image.rows) < int(ROWS * block_px):
        return None
    grey = image.channels < 3
    bits: list[bool] = []
    for row in range(ROWS):
        for col in range(COLUMNS):
            samples: list[float] = []
            for sy in range(_SAMPLE_GRID):
                y = int((row + 0.25 + 0.5 * sy / (_SAMPLE_GRID - 1)) * block_px)
                line = image.rows[min(y, len(image.rows) - 1)]
                for sx in range(_SAMPLE_GRID):
                    x = int((col + 0.25 + 0.5 * sx / (_SAMPLE_GRID - 1)) * block_px)
                    at = min(x, image.width - 1) * image.channels
                    pixel = line[at : at + (1 if grey else 3)]
                    samples.append(sum(pixel) / len(pixel))
            mean = sum(samples) / len(samples)
            if max(samples) - min(samples) > _MAX_SPREAD:
                return None
            if mean < _ZERO_BELOW:
                bits.append(False)
            elif mean > _ONE_ABOVE:
                bits.append(True)
            else:
                return None
    return decode_bits(bits)


def read_png_counter(png: bytes) -> int | None:
    """``read_counter`` of a PNG screenshot of the picture; None for any unreadable image."""
    try:
        width = struct.unpack(">I", png[16:20])[0] if len(png) >= 24 else 0
        image = decode_png_rows(png, strip_height_px(width) + 1)
    except UnreadablePngError:
        return None
    return read_counter(image)
