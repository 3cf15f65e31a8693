"""The push-ingest seam: keys, one publisher at a time, bytes into the pipe, back-pressure."""

from __future__ import annotations

import pytest
import trio
import trio.testing
from hypothesis import given
from hypothesis import strategies as st

from actors.ingest.publisher import (
    ByteRate,
    IngestProtocol,
    PublisherGone,
    PublisherInfo,
    PublisherRefused,
    PushInput,
    StoredKey,
    hash_key,
    new_stream_key,
    pipe_format,
    pump_into,
    stream_id_of_key,
)


def _info(address: str = "127.0.0.1:50000") -> PublisherInfo:
    return PublisherInfo(
        protocol=IngestProtocol.RTMP, address=address, connected_since_unix_s=1000.0
    )


def _push(protocol: IngestProtocol = IngestProtocol.RTMP) -> tuple[PushInput, str]:
    key = new_stream_key("cam1", protocol)
    return PushInput("cam1", protocol, key, clock=trio.current_time), key


def test_keys_are_random_long_and_name_their_stream() -> None:
    keys = {new_stream_key("cam1") for _ in range(50)}
    assert len(keys) == 50
    for key in keys:
        assert stream_id_of_key(key) == "cam1"
        secret = key.partition(".")[2]
        assert len(secret) == 32  # 24 bytes, >= 128 bits
        assert "." not in secret
    srt_key = new_stream_key("x" * 64, IngestProtocol.SRT)
    assert len(srt_key) == 32  # FFmpeg's libsrt passphrase: 10..64 characters, whatever the id


@given(st.text(max_size=80))
def test_only_the_issued_key_matches(candidate: str) -> None:
    key = new_stream_key("cam1")
    push = PushInput("cam1", IngestProtocol.RTMP, key)
    assert push.check_key(key)
    assert push.check_key(candidate) == (candidate == key)


def test_the_key_is_kept_hashed_except_the_srt_passphrase() -> None:
    rtmp, rtmp_key = _push(IngestProtocol.RTMP)
    assert rtmp_key not in repr(vars(rtmp).values())
    assert hash_key(rtmp_key) in vars(rtmp).values()
    srt, srt_key = _push(IngestProtocol.SRT)
    assert srt.srt_passphrase == srt_key


def test_rotating_the_key_retires_the_old_one() -> None:
    push, old = _push(IngestProtocol.SRT)
    new = push.rotate_key()
    assert new != old
    assert push.check_key(new)
    assert not push.check_key(old)
    assert push.srt_passphrase == new
    assert push.key_version == 1


@given(st.sampled_from(IngestProtocol))
def test_a_push_input_from_its_stored_key_takes_the_same_key(protocol: IngestProtocol) -> None:
    before, key = _push(protocol)
    resumed = PushInput("cam1", protocol, before.stored_key)
    assert resumed.check_key(key)
    assert not resumed.check_key(new_stream_key("cam1", protocol))
    if protocol is IngestProtocol.SRT:
        assert resumed.srt_passphrase == key  # libsrt listens with it again
    assert resumed.stored_key == before.stored_key
    rotated = resumed.rotate_key()
    assert PushInput("cam1", protocol, resumed.stored_key).check_key(rotated)


def test_a_damaged_stored_key_is_refused() -> None:
    with pytest.raises(ValueError, match="SHA-256"):
        PushInput("cam1", IngestProtocol.RTMP, StoredKey(b"short"))
    with pytest.raises(ValueError, match="passphrase"):
        PushInput("cam1", IngestProtocol.SRT, StoredKey(bytes(32)))
    with pytest.raises(ValueError, match="passphrase"):
        PushInput("cam1", IngestProtocol.RTMP, StoredKey(bytes(32), "a-passphrase"))


def test_pipe_formats() -> None:
    assert pipe_format(IngestProtocol.RTMP) == "flv"
    assert pipe_format(IngestProtocol.WHIP) == "mpegts"
    assert pipe_format(IngestProtocol.SRT) == "mpegts"


async def test_a_second_publisher_is_refused_until_the_first_leaves() -> None:
    push, _ = _push()
    first = push.attach(_info())
    try:
        push.attach(_info("127.0.0.1:50001"))
        raise AssertionError("a second publisher was accepted")
    except PublisherRefused as refused:
        assert refused.code == "busy"
    assert await push.next_publisher() is first
    first.end()
    second = push.attach(_info("127.0.0.1:50001"))
    assert await push.next_publisher() is second
    assert push.reconnects == 1


async def test_a_publisher_that_left_before_the_actor_looked_is_skipped() -> None:
    push, _ = _push()
    push.attach(_info()).end()
    second = push.attach(_info("127.0.0.1:50001"))
    assert await push.next_publisher() is second


async def test_bytes_reach_the_pipe_in_order_and_end_closes_it() -> None:
    push, _ = _push()
    feed = push.attach(_info())
    send_stream, receive_stream = trio.testing.memory_stream_one_way_pair()
    received = bytearray()

    async def read_all() -> None:
        while data := await receive_stream.receive_some():
            received.extend(data)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(pump_into, await push.next_publisher(), send_stream)
        nursery.start_soon(read_all)
        for index in range(100):
            await feed.send(b"FLV" + bytes([index]))
        feed.end()
    assert bytes(received) == b"".join(b"FLV" + bytes([i]) for i in range(100))
    assert feed.bytes_in == 400
    assert push.publisher() is None


async def test_a_dropped_publisher_gets_publisher_gone() -> None:
    push, _ = _push()
    feed = push.attach(_info())
    push.close("deleted")
    try:
        await feed.send(b"x")
        raise AssertionError("send after drop succeeded")
    except PublisherGone as gone:
        assert "deleted" in str(gone)
    try:
        push.attach(_info())
        raise AssertionError("attach after close succeeded")
    except PublisherRefused as refused:
        assert refused.code == "ended"


async def test_an_encoder_that_stops_reading_drops_the_publisher() -> None:
    push, _ = _push()
    feed = push.attach(_info())
    send_stream, receive_stream = trio.testing.memory_stream_one_way_pair()
    await receive_stream.aclose()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(pump_into, await push.next_publisher(), send_stream)
        await feed.send(b"x")
    assert feed.dropped_reason == "the encoder stopped reading"
    try:
        await feed.send(b"y")
        raise AssertionError("send after the encoder went away succeeded")
    except PublisherGone:
        pass


async def test_send_waits_while_the_queue_is_full(autojump_clock: trio.abc.Clock) -> None:
    push, _ = _push()
    feed = push.attach(_info())
    sent = 0

    async def flood() -> None:
        nonlocal sent
        while True:
            await feed.send(b"x")
            sent += 1

    async with trio.open_nursery() as nursery:
        nursery.start_soon(flood)
        await trio.sleep(1)
        assert sent == 256  # FEED_BUFFER_CHUNKS: nobody reads, the publisher is held back
        nursery.cancel_scope.cancel()


async def test_publisher_snapshot_shows_bitrate(autojump_clock: trio.abc.Clock) -> None:
    push, _ = _push()
    feed = push.attach(_info())
    feed.note_codec("h264/aac")
    await trio.sleep(1)
    for _ in range(10):
        await feed.send(b"x" * 1000)  # queued, nobody reading yet: the queue holds 256
        await trio.sleep(0.5)
    snapshot = push.publisher()
    assert snapshot is not None
    assert snapshot.info.codec == "h264/aac"
    assert snapshot.bytes_in == 10_000
    # 10 sends over the last 4.5 s (the first send at t=1, the snapshot at t=6): a 5 s window
    assert snapshot.bitrate_in_bps == 16_000


def test_byte_rate_window() -> None:
    now = [0.0]
    rate = ByteRate(lambda: now[0], window_s=2.0)
    assert rate.bits_per_second() is None
    rate.add(100)
    assert rate.bits_per_second() is None  # no time has passed
    now[0] = 1.0
    rate.add(100)
    assert rate.bits_per_second() == 1600
    now[0] = 10.0
    assert rate.bits_per_second() == 0


async def test_a_restarted_encoder_reads_the_preamble_first() -> None:
    push, _ = _push()
    feed = push.attach(_info())
    await feed.send(b"HD", preamble="header")
    await feed.send(b"c0", preamble="config")
    await feed.send(b"R", preamble="config")  # a newer configuration replaces the older
    await feed.send(b"m1")
    first_in, first_out = trio.testing.memory_stream_one_way_pair()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(pump_into, feed, first_in)
        await trio.testing.wait_all_tasks_blocked()
        assert await first_out.receive_some() == b"HDc0Rm1"
        nursery.cancel_scope.cancel()  # that FFmpeg went away
    await feed.send(b"m2")
    feed.end()
    second_in, second_out = trio.testing.memory_stream_one_way_pair()
    received = bytearray()

    async def read_all() -> None:
        while data := await second_out.receive_some():
            received.extend(data)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(pump_into, feed, second_in)
        nursery.start_soon(read_all)
    assert bytes(received) == b"HDRm2"
    assert feed.preamble == b"HDR"


async def test_a_feed_is_silent_after_a_second_without_bytes(
    autojump_clock: trio.abc.Clock,
) -> None:
    push, _ = _push()
    feed = push.attach(_info())
    await feed.send(b"x")
    await trio.sleep(0.9)
    assert not feed.silent
    await trio.sleep(0.1)
    assert feed.silent
    await feed.send(b"y")
    assert not feed.silent
