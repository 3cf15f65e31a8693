"""The glass-to-glass pixel reader on known images: encode → render → PNG → decode → same value."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ops.bench.clockcode import (
    BLACK_Y,
    COUNTER_LIMIT,
    WHITE_Y,
    DecodedRows,
    UnreadablePngError,
    decode_bits,
    decode_png_rows,
    encode_bits,
    read_counter,
    read_png_counter,
    render_strip_luma,
    strip_height_px,
)
from ops.bench.glass import Shot, longest_same_run, summarize

counters = st.integers(min_value=0, max_value=COUNTER_LIMIT - 1)


# ---------------------------------------------------------------- a PNG writer for the tests


def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return a if pa <= pb and pa <= pc else (b if pb <= pc else c)


def _filter(kind: int, row: bytes, prior: bytes, bpp: int) -> bytes:
    def left(i: int) -> int:
        return row[i - bpp] if i >= bpp else 0

    def upper_left(i: int) -> int:
        return prior[i - bpp] if i >= bpp else 0

    predictors: dict[int, Callable[[int], int]] = {
        0: lambda i: 0,
        1: left,
        2: lambda i: prior[i],
        3: lambda i: (left(i) + prior[i]) >> 1,
        4: lambda i: _paeth(left(i), prior[i], upper_left(i)),
    }
    predict = predictors[kind]
    return bytes((row[i] - predict(i)) & 0xFF for i in range(len(row)))


def png_bytes(rows: list[bytes], width: int, channels: int) -> bytes:
    """An 8-bit PNG; every row uses the next filter type (0–4), so all five are exercised."""
    colour = {1: 0, 3: 2, 4: 6}[channels]
    raw = bytearray()
    prior = bytes(width * channels)
    for y, row in enumerate(rows):
        kind = y % 5
        raw += bytes([kind]) + _filter(kind, row, prior, channels)
        prior = row

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, len(rows), 8, colour, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(bytes(raw)))
        + chunk(b"IEND", b"")
    )


def frame_rgb_rows(counter: int, width: int, height: int, channels: int = 3) -> list[bytes]:
    """A whole picture as a player shows it: the strip (limited → full range) over a grey body."""
    strip = render_strip_luma(counter, width)
    strip_rows = len(strip) // width
    rows: list[bytes] = []
    for y in range(height):
        if y < strip_rows:
            luma = strip[y * width : (y + 1) * width]
            full = bytes(round((v - BLACK_Y) * 255 / (WHITE_Y - BLACK_Y)) for v in luma)
        else:
            full = bytes([(x + y) % 256 for x in range(width)])  # a busy picture below
        if channels == 1:
            rows.append(full)
        else:
            pixel_tail = b"\xff" if channels == 4 else b""
            rows.append(b"".join(bytes([v, v, v]) + pixel_tail for v in full))
    return rows


def scaled(rows: list[bytes], width: int, channels: int, factor: float) -> tuple[list[bytes], int]:
    """Nearest-neighbour scale: what a player does to a 720p picture in a smaller element."""
    new_w = int(width * factor)
    new_h = int(len(rows) * factor)
    out = []
    for y in range(new_h):
        src = rows[min(int(y / factor), len(rows) - 1)]
        line = bytearray()
        for x in range(new_w):
            sx = min(int(x / factor), width - 1) * channels
            line += src[sx : sx + channels]
        out.append(bytes(line))
    return out, new_w


# ---------------------------------------------------------------- bits


@given(counters)
def test_bits_round_trip(counter: int) -> None:
    bits = encode_bits(counter)
    assert len(bits) == 32
    assert decode_bits(bits) == counter


@given(counters, st.integers(min_value=0, max_value=31))
def test_any_single_flipped_bit_is_detected(counter: int, flipped: int) -> None:
    bits = list(encode_bits(counter))
    bits[flipped] = not bits[flipped]
    assert decode_bits(bits) is None


def test_all_black_and_all_white_pictures_are_not_codes() -> None:
    assert decode_bits([False] * 32) is None
    assert decode_bits([True] * 32) is None


def test_counter_out_of_range_is_refused() -> None:
    with pytest.raises(ValueError, match="counter"):
        encode_bits(COUNTER_LIMIT)
    with pytest.raises(ValueError, match="counter"):
        encode_bits(-1)


# ---------------------------------------------------------------- render → PNG → read


@pytest.mark.parametrize("channels", [3, 4, 1])
@pytest.mark.parametrize("counter", [0, 1, 12_345, COUNTER_LIMIT - 1])
def test_rendered_frame_as_png_reads_back_the_same_counter(channels: int, counter: int) -> None:
    width, height = 320, 180
    png = png_bytes(frame_rgb_rows(counter, width, height, channels), width, channels)
    assert read_png_counter(png) == counter


@pytest.mark.parametrize("factor", [0.5, 0.83, 1.3])
def test_scaled_picture_reads_back(factor: float) -> None:
    """Players show a 720p picture in whatever box the page gives the video element."""
    counter = 987_654
    rows, width = scaled(frame_rgb_rows(counter, 320, 180), 320, 3, factor)
    assert read_png_counter(png_bytes(rows, width, 3)) == counter


@settings(max_examples=40, deadline=None)  # a pure-Python PNG round trip: slow on a busy box
@given(counters)
def test_any_counter_survives_render_and_png(counter: int) -> None:
    width = 160
    png = png_bytes(frame_rgb_rows(counter, width, strip_height_px(width) + 4), width, 3)
    assert read_png_counter(png) == counter


def test_only_the_strip_rows_are_decoded() -> None:
    width, height = 320, 180
    png = png_bytes(frame_rgb_rows(7, width, height), width, 3)
    image = decode_png_rows(png, strip_height_px(width))
    assert (image.width, image.height, image.channels) == (320, 180, 3)
    assert len(image.rows) == strip_height_px(width)
    assert read_counter(image) == 7


# ---------------------------------------------------------------- corrupt or foreign images


def paint_block(rows: list[bytes], column: int, value: int, width: int) -> None:
    """Paint block (row 0, ``column``) of an RGB picture one grey ``value``."""
    block = width // 16
    for y in range(block):
        row = bytearray(rows[y])
        row[column * block * 3 : (column + 1) * block * 3] = bytes([value]) * (block * 3)
        rows[y] = bytes(row)


def test_one_block_painted_over_is_unreadable_not_a_wrong_value() -> None:
    width, height = 320, 180
    rows = frame_rgb_rows(4242, width, height)
    block = width // 16
    # paint block (row 0, column 3) the opposite colour: a misread the CRC must catch
    paint_block(rows, 3, 255 - rows[0][3 * block * 3 + block // 2 * 3], width)
    assert read_png_counter(png_bytes(rows, width, 3)) is None


def test_grey_block_is_ambiguous_and_unreadable() -> None:
    width, height = 320, 180
    rows = frame_rgb_rows(4242, width, height)
    paint_block(rows, 0, 0x80, width)
    assert read_png_counter(png_bytes(rows, width, 3)) is None


def test_black_picture_before_the_first_frame_is_unreadable() -> None:
    width, height = 320, 180
    rows = [bytes(width * 3)] * height
    assert read_png_counter(png_bytes(rows, width, 3)) is None


def test_busy_picture_is_unreadable() -> None:
    width, height = 320, 180
    rows = [bytes([(x * 37 + y * 11) % 256 for x in range(width * 3)]) for y in range(height)]
    assert read_png_counter(png_bytes(rows, width, 3)) is None


@pytest.mark.parametrize(
    "mangle",
    [
        pytest.param(lambda png: png[:60], id="truncated"),
        pytest.param(lambda png: b"GIF89a" + png[6:], id="not-a-png"),
        pytest.param(lambda png: png[:45] + bytes(40) + png[85:], id="garbled-data"),
        pytest.param(lambda png: b"", id="empty"),
    ],
)
def test_corrupt_png_is_unreadable(mangle: object) -> None:
    width, height = 320, 180
    png = png_bytes(frame_rgb_rows(31337, width, height), width, 3)
    assert callable(mangle)
    assert read_png_counter(mangle(png)) is None


def test_unsupported_png_kinds_are_refused() -> None:
    png = png_bytes(frame_rgb_rows(1, 32, 8), 32, 3)
    sixteen_bit = png[:24] + bytes([16]) + png[25:]
    with pytest.raises(UnreadablePngError, match="unsupported"):
        decode_png_rows(sixteen_bit, 4)


def test_too_few_rows_is_unreadable() -> None:
    image = DecodedRows(width=320, height=180, channels=3, rows=(bytes(960),) * 10)
    assert read_counter(image) is None


# ---------------------------------------------------------------- the benchmark's summary


@pytest.mark.parametrize(
    ("counters", "run"),
    [
        ([], 0),
        ([None, None], 0),
        ([1, 2, 3], 1),
        ([1, 1, 2, 2, 2, 3], 3),
        ([5, 5, None, 5, 5], 2),  # an unreadable shot breaks a run: it proves nothing
        ([7, 7, 7, 7], 4),
    ],
)
def test_longest_run_of_screenshots_on_one_frame(counters: list[int | None], run: int) -> None:
    assert longest_same_run(counters) == run


def test_summary_counts_unreadable_shots_and_keeps_them_out_of_the_figures() -> None:
    def shot(counter: int | None, glass_s: float | None, height: int = 720) -> Shot:
        return Shot(0.0, 0.1, counter, glass_s, 1.5, 1.6, height)

    summary = summarize(
        [shot(10, 2.0), shot(None, None), shot(40, 3.0), shot(40, 4.0, 360), shot(70, 2.5)]
    )
    assert summary.shots == 5
    assert summary.unreadable == 1
    assert summary.glass_median_s == 2.75
    assert summary.player_median_s == 1.5
    assert summary.frozen_run == 2
    assert summary.heights == "720p×4 360p×1"
