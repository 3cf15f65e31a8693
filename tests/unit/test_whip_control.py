"""The WHIP peer's control channel, its argv and its small pure helpers."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from actors.ingest.whip_peer import control
from actors.ingest.whip_peer.muxer import contains_idr
from actors.ingest.whip_peer.ports import parse_port_range, port_candidates
from actors.ingest.whip_peer.timing import (
    FIRST_IDR_WAIT_S,
    KEYFRAME_INTERVAL_S,
    MEDIA_TIMEOUT_S,
    keyframe_due,
    media_stopped,
)
from actors.ingest.whip_session import WhipPeerSettings, peer_argv

MESSAGES = [
    control.Offer("v=0\r\n"),
    control.Stop("deleted"),
    control.RequestKeyframe("encoder restarted (input 2)"),
    control.Answer("v=0\r\nm=video 9 x\r\n"),
    control.Connected("H264", None, "127.0.0.1:5000"),
    control.Connected("H264", "opus", None),
    control.Stats(123, 4, 5, "sender_report"),
    control.Stats(0, 0, 0, None),
    control.Ended("publisher stopped sending video"),
    control.Error("no video"),
]


@pytest.mark.parametrize("message", MESSAGES)
def test_every_message_round_trips_as_one_line(message: control.ControlMessage) -> None:
    line = control.encode_message(message)
    assert line.endswith(b"\n")
    assert line.count(b"\n") == 1
    assert control.decode_message(line.rstrip(b"\n")) == message


@pytest.mark.parametrize(
    "line",
    [
        b"",
        b"not json",
        b"[1, 2]",
        b'{"type": "nope"}',
        b'{"sdp": "v=0"}',
        b'{"type": "offer"}',
        b'{"type": "offer", "sdp": 5}',
        b'{"type": "offer", "sdp": "v=0", "extra": 1}',
        b'{"type": "stats", "media_bytes_out": true, "video_units": 0, "audio_units": 0,'
        b' "sync_mode": null}',
        b"\xff\xfe",
    ],
)
def test_anything_else_is_a_control_message_error(line: bytes) -> None:
    with pytest.raises(control.ControlMessageError):
        control.decode_message(line)


@given(st.lists(st.sampled_from(MESSAGES), max_size=8), st.integers(1, 64))
def test_the_splitter_reassembles_lines_cut_anywhere(
    messages: list[control.ControlMessage], cut: int
) -> None:
    data = b"".join(control.encode_message(m) for m in messages)
    splitter = control.LineSplitter()
    decoded = [
        control.decode_message(line)
        for start in range(0, len(data), cut)
        for line in splitter.feed(data[start : start + cut])
    ]
    assert decoded == messages


def test_the_splitter_refuses_an_endless_line() -> None:
    splitter = control.LineSplitter(max_line_bytes=100)
    splitter.feed(b"x" * 100)
    with pytest.raises(control.ControlMessageError):
        splitter.feed(b"x")


def test_port_ranges() -> None:
    assert parse_port_range("40000-40002") == range(40000, 40003)
    assert parse_port_range(" 5000 ") == range(5000, 5001)
    for bad in ("", "x", "40002-40000", "80-90", "60000-70000", "1-2-3"):
        with pytest.raises(ValueError, match="port range"):
            parse_port_range(bad)


def test_port_candidates_visit_every_port_once_from_a_random_start() -> None:
    ports = range(40000, 40010)
    order = list(port_candidates(ports, random.Random(7)))
    assert sorted(order) == list(ports)
    start = order[0]
    assert order == [40000 + (start - 40000 + i) % 10 for i in range(10)]


def test_idr_detection_in_annex_b() -> None:
    sps, pps, idr, non_idr = b"\x67\x42", b"\x68\xce", b"\x65\x88", b"\x41\x9a"
    assert contains_idr(
        b"\x00\x00\x00\x01" + sps + b"\x00\x00\x00\x01" + pps + b"\x00\x00\x01" + idr
    )
    assert not contains_idr(b"\x00\x00\x00\x01" + non_idr)
    assert not contains_idr(b"")
    assert not contains_idr(b"\x00\x00\x01")


def test_peer_argv_is_a_list_with_each_setting() -> None:
    settings = WhipPeerSettings(
        python_path="/py",
        host_addresses=("127.0.0.1", "10.0.0.2"),
        udp_ports="40000-40100",
        public_ip="203.0.113.7",
        sr_wait_s=0.5,
    )
    assert peer_argv(settings, 7) == [
        "/py",
        "-m",
        "actors.ingest.whip_peer",
        "--control-fd",
        "7",
        "--host-address",
        "127.0.0.1",
        "--host-address",
        "10.0.0.2",
        "--udp-ports",
        "40000-40100",
        "--public-ip",
        "203.0.113.7",
        "--sr-wait-s",
        "0.5",
    ]
    assert peer_argv(WhipPeerSettings(python_path="/py"), 3) == [
        "/py",
        "-m",
        "actors.ingest.whip_peer",
        "--control-fd",
        "3",
        "--sr-wait-s",
        "1.0",
    ]


def test_a_publisher_is_gone_after_media_timeout_without_video() -> None:
    assert not media_stopped(None, 1000.0)  # no video yet: the ICE deadline decides
    assert not media_stopped(10.0, 10.0 + MEDIA_TIMEOUT_S - 0.01)
    assert media_stopped(10.0, 10.0 + MEDIA_TIMEOUT_S)


def test_a_keyframe_is_asked_for_only_when_the_publisher_has_not_sent_one_for_a_while() -> None:
    interval = KEYFRAME_INTERVAL_S
    assert not keyframe_due(None, None, 100.0)  # no video yet: its start brings an IDR
    assert not keyframe_due(10.0, None, 10.0 + interval - 0.01)
    assert keyframe_due(10.0, None, 10.0 + interval)
    # asked at 12: not again before 12 + interval, even without an answer
    assert not keyframe_due(10.0, 12.0, 12.0 + interval - 0.01)
    assert keyframe_due(10.0, 12.0, 12.0 + interval)
    # a publisher with a short GOP of its own is never asked
    assert not keyframe_due(20.0, 12.0, 20.0 + interval / 2)


def test_video_without_an_idr_gets_one_asked_for_at_once() -> None:
    """The first IDR lost on the way (or a publisher starting mid-GOP): nothing decodes until
    the next one, which a browser sends only when asked; not KEYFRAME_INTERVAL_S later."""
    wait = FIRST_IDR_WAIT_S
    assert wait < KEYFRAME_INTERVAL_S / 4
    assert not keyframe_due(None, None, 5.0 + wait - 0.01, first_video_at_s=5.0)
    assert keyframe_due(None, None, 5.0 + wait, first_video_at_s=5.0)
    # asked at 5.3 and still nothing: again after the usual interval
    assert not keyframe_due(None, 5.3, 5.3 + KEYFRAME_INTERVAL_S - 0.01, first_video_at_s=5.0)
    assert keyframe_due(None, 5.3, 5.3 + KEYFRAME_INTERVAL_S, first_video_at_s=5.0)
    # the first unit was the IDR: nothing to ask for
    assert not keyframe_due(5.0, None, 5.0 + wait, first_video_at_s=5.0)
