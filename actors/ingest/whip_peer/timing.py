"""RTP timestamps → presentation timestamps, with audio/video sync: pure, no clocks read here.

Each track's RTP clock starts at a random 32-bit value and wraps; a sender's RTCP sender reports
(SR) pair an RTP timestamp with its NTP wall clock, which is what puts audio and video on one
timeline (RFC 3550 §6.4.1). ``AvSync`` holds the first units back until every expected track has
sent an SR (FFmpeg sends one with its first packet; browsers within ~1 s), then maps every unit
to ``pts = (sender_ntp(unit) - origin) × clock_rate``. If an SR does not arrive within
``sr_wait_s`` it falls back to *arrival* anchoring: each track's first unit is placed at its
local arrival time, which is as good as the difference in the two tracks' pipeline delays
(measured and documented in the README).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Generic, TypeVar

RTP_TIMESTAMP_MODULUS = 1 << 32
# A publisher that vanishes without a word (killed, cable pulled) is only noticed by ICE consent
# freshness after ~30 s; a live encoder sends video every frame (browsers too, even muted), so
# no video for this long means it is gone, and its reconnect must not find the stream taken.
MEDIA_TIMEOUT_S = 3.0
_HALF_MODULUS = 1 << 31
PayloadT = TypeVar("PayloadT")


# Browsers send an IDR (with SPS/PPS) only at the start and when asked (RTCP PLI); FFmpeg can
# only start decoding at one, and the service's FFmpeg starts (and restarts: a re-planned ladder,
# a crash) mid-stream, its first IDR consumed by probing. So we ask for one whenever the publisher
# has not sent one for this long. Publishers with a short GOP of their own (FFmpeg -g 30, OBS)
# are never asked. Our ladder re-encodes, so the source GOP costs only the publisher's uplink
# (~5 % at 720p 2.5 Mb/s, an IDR every 2 s).
KEYFRAME_INTERVAL_S = 2.0


# Video comes but no IDR yet (the first one was lost on the way, or the publisher began mid-GOP):
# nothing is decodable, and a browser sends the next IDR only when asked. A publisher's first IDR
# is its first unit, so after this long without one, ask at once rather than after
# KEYFRAME_INTERVAL_S.
FIRST_IDR_WAIT_S = 0.25


def keyframe_due(
    last_idr_at_s: float | None,
    last_request_at_s: float | None,
    now_s: float,
    *,
    first_video_at_s: float | None = None,
) -> bool:
    """Whether to ask the publisher for an IDR now: none seen (or asked for) for
    KEYFRAME_INTERVAL_S, or video for FIRST_IDR_WAIT_S without any IDR yet. ``None``: never
    seen / never asked / no video yet."""
    if last_idr_at_s is None and last_request_at_s is None:
        return first_video_at_s is not None and now_s - first_video_at_s >= FIRST_IDR_WAIT_S
    newest = max((t for t in (last_idr_at_s, last_request_at_s) if t is not None), default=None)
    return newest is not None and now_s - newest >= KEYFRAME_INTERVAL_S


def media_stopped(last_video_at_s: float | None, now_s: float) -> bool:
    """Whether a publisher that has sent video went silent for MEDIA_TIMEOUT_S (before its
    first video, the ICE connect deadline decides)."""
    return last_video_at_s is not None and now_s - last_video_at_s >= MEDIA_TIMEOUT_S


def extend_rtp_timestamp(timestamp_32: int, near_extended: int) -> int:
    """The 64-bit (unwrapped) value of ``timestamp_32`` closest to ``near_extended``.

    A reordered packet a little before a wrap maps just below it, one a little after maps just
    above it: the difference to the reference is taken modulo 2^32 into [-2^31, 2^31).
    """
    delta = (timestamp_32 - near_extended) % RTP_TIMESTAMP_MODULUS
    if delta >= _HALF_MODULUS:
        delta -= RTP_TIMESTAMP_MODULUS
    return near_extended + delta


@dataclass(slots=True)
class RtpUnwrapper:
    """Unwraps one track's 32-bit RTP timestamps into a monotonic-ish 64-bit count."""

    last_extended: int | None = None

    def unwrap(self, timestamp_32: int) -> int:
        if self.last_extended is None:
            extended = timestamp_32
        else:
            extended = extend_rtp_timestamp(timestamp_32, self.last_extended)
        # a late (reordered) unit must not pull the reference back
        if self.last_extended is None or extended > self.last_extended:
            self.last_extended = extended
        return extended


@dataclass(frozen=True, slots=True)
class TimedUnit(Generic[PayloadT]):
    """One access unit (video) or packet (audio) with its PTS in its track's clock units."""

    kind: str
    pts: int
    payload: PayloadT


@dataclass(slots=True)
class _Track:
    clock_rate_hz: int
    unwrapper: RtpUnwrapper = field(default_factory=RtpUnwrapper)
    # the first SR: (sender NTP seconds, extended RTP timestamp)
    sender_report: tuple[float, int] | None = None
    first_extended: int | None = None
    first_arrival_s: float | None = None
    # extended RTP timestamp at pts 0 of this track, once the anchors are decided
    zero_extended: int | None = None


@dataclass(slots=True)
class AvSync(Generic[PayloadT]):
    """Puts the units of several RTP tracks of one sender on one PTS timeline.

    ``clock_rates_hz`` names the tracks we expect (e.g. ``{"video": 90000, "audio": 48000}``).
    Feed units with ``push`` (in arrival order per track) and SRs with ``on_sender_report``;
    call ``poll`` with the current time so a sender that never sends an SR is not waited for
    forever. Units come back in arrival order with non-negative PTS; a unit that would land
    before the origin (a late first packet of the other track) is dropped.
    """

    clock_rates_hz: dict[str, int]
    sr_wait_s: float = 1.0
    mode: str | None = None  # None until decided: "sender_report" or "arrival"
    _tracks: dict[str, _Track] = field(default_factory=dict)
    _held: list[tuple[str, int, PayloadT]] = field(default_factory=list)
    _first_arrival_s: float | None = None
    _origin_ntp_s: float | None = None
    _origin_arrival_s: float | None = None

    def __post_init__(self) -> None:
        self._tracks = {kind: _Track(rate) for kind, rate in self.clock_rates_hz.items()}

    def on_sender_report(self, kind: str, ntp_s: float, rtp_timestamp_32: int) -> None:
        track = self._tracks.get(kind)
        if track is None or track.sender_report is not None:
            return  # later SRs would only re-anchor by the senders' clock drift: keep the first
        reference = track.unwrapper.last_extended
        extended = (
            rtp_timestamp_32
            if reference is None
            else extend_rtp_timestamp(rtp_timestamp_32, reference)
        )
        track.sender_report = (ntp_s, extended)
        if reference is None:
            track.unwrapper.last_extended = extended  # the first packet unwraps next to it

    def push(
        self, kind: str, rtp_timestamp_32: int, arrival_s: float, payload: PayloadT
    ) -> list[TimedUnit[PayloadT]]:
        track = self._tracks[kind]
        extended = track.unwrapper.unwrap(rtp_timestamp_32)
        if track.first_extended is None:
            track.first_extended = extended
            track.first_arrival_s = arrival_s
        if self._first_arrival_s is None:
            self._first_arrival_s = arrival_s
        self._held.append((kind, extended, payload))
        return self.poll(arrival_s)

    def poll(self, now_s: float) -> list[TimedUnit[PayloadT]]:
        if self.mode is None:
            if self._first_arrival_s is None:
                return []
            if all(t.sender_report is not None for t in self._tracks.values()):
                self.mode = "sender_report"
            elif now_s - self._first_arrival_s >= self.sr_wait_s:
                self.mode = "arrival"
            else:
                return []
        released: list[TimedUnit[PayloadT]] = []
        for kind, extended, payload in self._held:
            pts = self._pts(kind, extended)
            if pts is not None and pts >= 0:
                released.append(TimedUnit(kind, pts, payload))
        self._held.clear()
        return released

    def _pts(self, kind: str, extended: int) -> int | None:
        track = self._tracks[kind]
        if track.zero_extended is None:
            track.zero_extended = self._zero_extended(track)
        return extended - track.zero_extended

    def _zero_extended(self, track: _Track) -> int:
        """The extended RTP timestamp of this track at the session's PTS 0."""
        rate = track.clock_rate_hz
        assert track.first_extended is not None
        assert track.first_arrival_s is not None
        if self.mode == "sender_report":
            if self._origin_ntp_s is None:
                self._origin_ntp_s = min(
                    self._sender_time_s(t, t.first_extended)
                    for t in self._tracks.values()
                    if t.first_extended is not None
                )
            assert track.sender_report is not None
            ntp_s, sr_extended = track.sender_report
            return sr_extended - round((ntp_s - self._origin_ntp_s) * rate)
        if self._origin_arrival_s is None:
            self._origin_arrival_s = self._first_arrival_s
        assert self._origin_arrival_s is not None
        offset_ticks = round((track.first_arrival_s - self._origin_arrival_s) * rate)
        return track.first_extended - offset_ticks

    @staticmethod
    def _sender_time_s(track: _Track, extended: int) -> float:
        assert track.sender_report is not None
        ntp_s, sr_extended = track.sender_report
        return ntp_s + (extended - sr_extended) / track.clock_rate_hz
