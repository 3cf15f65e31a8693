from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from actors.ffmpeg.progress import Progress, ProgressParser

# Two real blocks as printed by the bundled FFmpeg 9 (-progress pipe:1, two outputs).
REAL = (
    b"frame=0\nfps=0.00\nstream_0_0_q=0.0\nbitrate=N/A\ntotal_size=N/A\nout_time_us=N/A\n"
    b"out_time_ms=N/A\nout_time=N/A\ndup_frames=0\ndrop_frames=0\nspeed=N/A\nprogress=continue\n"
    b"frame=90\nfps=29.97\nstream_0_0_q=22.0\nstream_1_0_q=20.0\nbitrate=   4.1kbits/s\n"
    b"total_size=306186\nout_time_us=602566667\nout_time_ms=602566667\n"
    b"out_time=00:10:02.566667\ndup_frames=2\ndrop_frames=1\nspeed=1.01x\nprogress=end\n"
)

FIRST = Progress(
    frame=0, fps=0.0, speed=None, out_time_s=None, total_size_bytes=None, bitrate_kbps=None,
    dup_frames=0, drop_frames=0, ended=False,
)  # fmt: skip
SECOND = Progress(
    frame=90, fps=29.97, speed=1.01, out_time_s=602.566667, total_size_bytes=306186,
    bitrate_kbps=4.1, dup_frames=2, drop_frames=1, ended=True,
)  # fmt: skip


def test_real_blocks() -> None:
    assert ProgressParser().feed(REAL) == [FIRST, SECOND]


def test_partial_block_is_held_back() -> None:
    parser = ProgressParser()
    assert parser.feed(b"frame=5\nfps=5.0\nspe") == []
    assert parser.feed(b"ed=0.5x\nprogress=contin") == []
    [block] = parser.feed(b"ue\n")
    assert block.frame == 5
    assert block.speed == 0.5
    assert not block.ended


def test_garbage_is_tolerated() -> None:
    parser = ProgressParser()
    blocks = parser.feed(
        b"\xff\xfe junk\n=\nframe=abc\nfps=nan\nspeed=fast\nbitrate=lots\n"
        b"total_size=-\ndup_frames=1e3\nprogress=continue\n"
    )
    assert blocks == [
        Progress(
            frame=0,
            fps=0.0,
            speed=None,
            out_time_s=None,
            total_size_bytes=None,
            bitrate_kbps=None,
            dup_frames=0,
            drop_frames=0,
            ended=False,
        )
    ]


def test_fields_do_not_leak_between_blocks() -> None:
    [a, b] = ProgressParser().feed(b"frame=7\nprogress=continue\nprogress=continue\n")
    assert a.frame == 7
    assert b.frame == 0


def test_crlf_lines() -> None:
    [block] = ProgressParser().feed(b"frame=3\r\nout_time_us=1500000\r\nprogress=end\r\n")
    assert block.frame == 3
    assert block.out_time_s == 1.5
    assert block.ended


@given(st.lists(st.integers(min_value=0, max_value=len(REAL)), max_size=20))
def test_any_split_gives_the_same_blocks(cuts: list[int]) -> None:
    points = sorted({0, len(REAL), *cuts})
    parser = ProgressParser()
    blocks: list[Progress] = []
    for start, end in itertools.pairwise(points):
        blocks += parser.feed(REAL[start:end])
    assert blocks == [FIRST, SECOND]


@given(st.binary(max_size=300))
def test_random_bytes_never_raise(data: bytes) -> None:
    blocks = ProgressParser().feed(data + b"\nprogress=continue\n")
    # The appended terminator always closes a block, whatever came before it.
    assert blocks
    assert blocks[-1].ended is False
