"""RTP timestamp unwrapping and the A/V sync of the WHIP peer (pure)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from actors.ingest.whip_peer.timing import (
    RTP_TIMESTAMP_MODULUS,
    AvSync,
    RtpUnwrapper,
    TimedUnit,
    extend_rtp_timestamp,
)

RATES = {"video": 90_000, "audio": 48_000}


@given(
    start=st.integers(0, RTP_TIMESTAMP_MODULUS - 1),
    steps=st.lists(st.integers(0, 90_000 * 10), min_size=1, max_size=50),
)
def test_unwrapping_forward_steps_across_wraps_recovers_the_true_count(
    start: int, steps: list[int]
) -> None:
    unwrapper = RtpUnwrapper()
    true_value = start
    assert unwrapper.unwrap(start) == start
    for step in steps:
        true_value += step
        assert unwrapper.unwrap(true_value % RTP_TIMESTAMP_MODULUS) == true_value


@given(
    reference=st.integers(0, 1 << 40),
    offset=st.integers(-(1 << 31), (1 << 31) - 1),
)
def test_extend_picks_the_value_nearest_the_reference(reference: int, offset: int) -> None:
    value = reference + offset
    assert extend_rtp_timestamp(value % RTP_TIMESTAMP_MODULUS, reference) == value


def test_a_reordered_unit_just_before_a_wrap_maps_below_and_does_not_move_the_reference() -> None:
    unwrapper = RtpUnwrapper()
    unwrapper.unwrap(RTP_TIMESTAMP_MODULUS - 100)
    assert unwrapper.unwrap(50) == RTP_TIMESTAMP_MODULUS + 50
    assert unwrapper.unwrap(RTP_TIMESTAMP_MODULUS - 10) == RTP_TIMESTAMP_MODULUS - 10
    assert unwrapper.unwrap(60) == RTP_TIMESTAMP_MODULUS + 60


def test_sender_reports_align_audio_and_video_on_the_senders_clock() -> None:
    sync: AvSync[str] = AvSync(dict(RATES), sr_wait_s=1.0)
    # video RTP 1_000_000 was captured at NTP 100.0 s; audio RTP 5_000 at NTP 100.5 s
    sync.on_sender_report("video", 100.0, 1_000_000)
    # nothing is released before both tracks have an SR
    assert sync.push("video", 1_000_000 + 9_000, arrival_s=0.0, payload="v0") == []  # NTP 100.1
    sync.on_sender_report("audio", 100.5, 5_000)
    released = sync.push("audio", 5_000 - 9_600, arrival_s=0.02, payload="a0")  # NTP 100.3
    assert sync.mode == "sender_report"
    # origin = the earliest first unit = video at NTP 100.1: audio at 100.3 is 0.2 s later
    assert released == [TimedUnit("video", 0, "v0"), TimedUnit("audio", 9_600, "a0")]
    assert sync.push("video", 1_000_000 + 12_000, 0.05, "v1") == [TimedUnit("video", 3_000, "v1")]
    assert sync.push("audio", 5_000 - 8_640, 0.06, "a1") == [TimedUnit("audio", 10_560, "a1")]


def test_without_sender_reports_it_falls_back_to_arrival_times_after_the_wait() -> None:
    sync: AvSync[str] = AvSync(dict(RATES), sr_wait_s=1.0)
    assert sync.push("video", 4_000_000_000, arrival_s=10.0, payload="v0") == []
    assert sync.push("audio", 77, arrival_s=10.25, payload="a0") == []
    assert sync.poll(10.999) == []
    assert sync.poll(11.0) == [TimedUnit("video", 0, "v0"), TimedUnit("audio", 12_000, "a0")]
    assert sync.mode == "arrival"
    # video wraps past 2^32 and keeps counting
    wrapped = (4_000_000_000 + 300_000_000) % RTP_TIMESTAMP_MODULUS
    assert sync.push("video", wrapped, 11.1, "v1") == [TimedUnit("video", 300_000_000, "v1")]


def test_a_track_that_starts_after_the_decision_is_anchored_at_its_arrival() -> None:
    sync: AvSync[str] = AvSync(dict(RATES), sr_wait_s=0.5)
    sync.push("video", 1_000, arrival_s=0.0, payload="v0")
    assert sync.poll(0.5) == [TimedUnit("video", 0, "v0")]
    assert sync.push("audio", 123, arrival_s=2.0, payload="a0") == [
        TimedUnit("audio", 96_000, "a0")
    ]


def test_units_that_would_land_before_the_origin_are_dropped() -> None:
    sync: AvSync[str] = AvSync({"video": 90_000}, sr_wait_s=1.0)
    sync.on_sender_report("video", 50.0, 90_000)
    assert sync.push("video", 90_000, 0.0, "v0") == [TimedUnit("video", 0, "v0")]
    assert sync.push("video", 90_000 - 3_000, 0.01, "late") == []


def test_video_only_sessions_need_only_the_video_report() -> None:
    sync: AvSync[str] = AvSync({"video": 90_000}, sr_wait_s=1.0)
    sync.on_sender_report("video", 1.0, 0)
    assert sync.push("video", 0, 0.0, "v0") == [TimedUnit("video", 0, "v0")]
    assert sync.mode == "sender_report"
