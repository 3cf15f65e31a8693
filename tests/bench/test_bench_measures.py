"""The benchmarks' own arithmetic: what counts as an answer, a window, a percentile.

Fast and pure (plus one short real FFmpeg run for the progress feed); the benchmarks themselves
run in test_bench_smoke.py.
"""

from __future__ import annotations

import math
import socket
import struct
import subprocess
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ops.bench import edge as edge_bench
from ops.bench import steady
from ops.bench.blocking import (
    Answer,
    outcome_counts,
    publish_delays_s,
    response_complete,
)
from ops.bench.common import (
    FFMPEG,
    SO_TIMESTAMPNS,
    fmt_ms,
    fmt_spread,
    kernel_receive_time,
    percentile,
)
from ops.bench.compare import summary_lines
from ops.bench.origin import (
    SHIPPED_CONF,
    parse_wrk_output,
    plain_server,
    shipped_file_cache_directives,
)
from ops.bench.steady import (
    Run,
    argv_difference,
    progress_frames,
    steady_window,
    waiting_on,
    waiting_on_service,
)

# --- percentiles count failures ------------------------------------------------------------------


def test_percentile_interpolates_finite_values() -> None:
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert percentile([5.0], 99) == 5.0
    assert math.isnan(percentile([], 50))


def test_timeouts_count_as_infinite_and_are_not_dropped() -> None:
    delays = [0.010] * 98 + [math.inf] * 2  # 2 % of the waiters never got an answer
    assert percentile(delays, 50) == 0.010
    assert percentile(delays, 99) == math.inf
    assert percentile([0.010, math.inf], 0) == 0.010
    assert percentile([math.inf, math.inf], 50) == math.inf


@given(
    st.lists(st.floats(min_value=0, max_value=1e3), min_size=1, max_size=50),
    st.integers(min_value=0, max_value=20),
    st.floats(min_value=0, max_value=100),
)
def test_percentile_with_failures_never_undercounts(
    finite: list[float], failures: int, pct: float
) -> None:
    values = finite + [math.inf] * failures
    result = percentile(values, pct)
    assert not math.isnan(result)
    assert min(values) <= result <= max(values)
    # adding failures never makes a percentile look better
    assert result >= percentile(finite, pct)


def test_formatting_of_spreads_and_infinite_delays() -> None:
    assert fmt_spread([0.84, 0.82, 0.83]) == "0.830 (0.820–0.840, n=3)"
    assert fmt_spread([]) == "n/a"
    assert fmt_ms(0.0123) == "12.3"
    assert fmt_ms(math.inf) == "inf"


# --- blocking: every waiter is an answer or a failure ------------------------------------------


METRICS_PAGE = """\
# HELP hlsdash_http_requests_total HTTP requests by listener, route and status
# TYPE hlsdash_http_requests_total counter
hlsdash_http_requests_total{listener="origin",route="/{id}/media_playlist",status="200"} 40.0
hlsdash_http_requests_total{listener="origin",route="/{id}/media_playlist",status="404"} 2.0
hlsdash_http_requests_total{listener="origin",route="/{id}/part",status="200"} 39.0
hlsdash_http_requests_total{listener="api",route="/metrics",status="200"} 7.0
"""


def test_origin_requests_by_route_kind_and_in_total() -> None:
    assert edge_bench.origin_requests(METRICS_PAGE) == 81
    assert edge_bench.origin_requests(METRICS_PAGE, "media_playlist") == 42
    assert edge_bench.origin_requests(METRICS_PAGE, "part") == 39
    assert edge_bench.origin_requests(METRICS_PAGE, "segment") == 0


def test_player_targets_map_to_the_origins_route_kinds() -> None:
    assert edge_bench.object_kind("/edge/240p/part_5_1.m4s") == "part"
    assert edge_bench.object_kind("/edge/240p/playlist.m3u8?_HLS_msn=5&_HLS_part=1") == (
        "media_playlist"
    )


def test_kernel_receive_time_from_the_ancillary_data() -> None:
    stamp = struct.pack("qq", 1_800_000_000, 250_000_000)
    assert kernel_receive_time([(socket.SOL_SOCKET, SO_TIMESTAMPNS, stamp)]) == 1_800_000_000.25
    assert kernel_receive_time([]) is None
    assert kernel_receive_time([(socket.IPPROTO_IP, 7, stamp)]) is None


def test_every_waiter_counts_in_the_delays() -> None:
    published = 1_000.0
    answers = [
        Answer(200, True, 1_000.020, 1_000.030),
        Answer(200, True, 1_000.005, 1_000.006),
        Answer(200, False, 1_000.004, 1_000.004),  # a playlist without the part is no answer
        Answer(503, False, 1_000.001, 1_000.001),
        Answer(None, False, None, None, closed=True),
        Answer(None, False, None, None),  # timed out
    ]
    delays = publish_delays_s(answers, published)
    assert len(delays) == len(answers)
    assert delays[:2] == pytest.approx([0.020, 0.005])
    assert delays[2:] == [math.inf] * 4
    assert outcome_counts(answers) == {
        "ok": 2,
        "200 without the part": 1,
        "status 503": 1,
        "closed": 1,
        "timed out": 1,
    }


def test_a_response_is_complete_only_with_its_whole_body() -> None:
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\nContent-Type: x\r\n\r\n"
    assert response_complete(head[:-2]) is None
    assert response_complete(head + b"01234") is None
    assert response_complete(head + b"0123456789") == (200, b"0123456789")
    chunked = b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n"
    assert response_complete(chunked) is None
    assert response_complete(chunked + b"0\r\n\r\n") == (404, b"3\r\nabc\r\n0\r\n\r\n")


# --- origin: wrk's failures are not throughput ---------------------------------------------------

# Real wrk 4.1.0 output (Debian), against a server answering 404, and one with socket errors.
WRK_NON_2XX = """\
Running 1s test @ http://127.0.0.1:18777/nonexistent
  1 threads and 2 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.23ms    0.93ms  11.44ms   92.55%
    Req/Sec     1.70k   189.26     1.94k    72.73%
  1859 requests in 1.10s, 0.92MB read
  Non-2xx or 3xx responses: 1859
Requests/sec:   1689.65
Transfer/sec:    858.19KB
"""
WRK_SOCKET_ERRORS = """\
Running 5s test @ http://127.0.0.1:8080/bench/360p/seg_3.m4s
  2 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     6.36ms    2.15ms  33.04ms   77.84%
    Req/Sec     5.06k   350.11     5.73k    70.00%
  50412 requests in 5.00s, 24.11GB read
  Socket errors: connect 0, read 12, write 3, timeout 5
  Non-2xx or 3xx responses: 100
Requests/sec:  10078.35
Transfer/sec:      4.82GB
"""


def test_wrk_non_2xx_responses_are_errors_not_throughput() -> None:
    result = parse_wrk_output(WRK_NON_2XX)
    assert result.responses == 1859
    assert result.non_2xx == 1859
    assert result.ok_responses == 0
    assert result.ok_per_s == 0
    assert result.errors == 1859
    assert result.duration_s == pytest.approx(1.10)
    assert result.bytes_read == round(0.92 * 1024**2)


def test_wrk_socket_errors_are_counted_and_2xx_rate_excludes_failures() -> None:
    result = parse_wrk_output(WRK_SOCKET_ERRORS)
    assert result.socket_errors == 20
    assert result.errors == 120
    assert result.ok_per_s == pytest.approx((50412 - 100) / 5.0)
    assert result.bytes_read == round(24.11 * 1024**3)


def test_wrk_summary_in_milliseconds_and_without_errors() -> None:
    text = WRK_NON_2XX.replace("1.10s", "900.00ms").replace(
        "  Non-2xx or 3xx responses: 1859\n", ""
    )
    result = parse_wrk_output(text)
    assert result.errors == 0
    assert result.ok_per_s == pytest.approx(1859 / 0.9)
    with pytest.raises(ValueError, match="no wrk summary"):
        parse_wrk_output("wrk: connection refused")


def test_plain_nginx_gets_the_fronts_open_file_cache() -> None:
    directives = shipped_file_cache_directives()
    assert any(d.startswith("open_file_cache ") for d in directives)
    shipped = SHIPPED_CONF.read_text()
    plain = plain_server(8080, SHIPPED_CONF.parent)
    for directive in directives:
        assert directive in shipped
        assert directive in plain


# --- ladder: one window for every contender ------------------------------------------------------


class _Counters:
    """Fake CPU counters and clock that advance with every progress report."""

    def __init__(self) -> None:
        self.cpu = [0.0, 0.0]
        self.now = 0.0

    def reports(self, frames: list[int]) -> Iterator[int]:
        for value in frames:
            self.cpu = [value * 0.02, value * 0.001]  # 0.6 and 0.03 CPU-s per media-s at 30 fps
            self.now = value / 30
            yield value


def test_window_skips_the_warm_up_and_spans_the_media_asked_for() -> None:
    counters = _Counters()
    reports = counters.reports([0, 10, 25, 40, 55, 70, 85, 100, 115])
    ffmpeg, service = steady_window(
        waiting_on(reports),
        lambda: tuple(counters.cpu),
        lambda: counters.now,
        warmup_frames=30,  # opens at 40, the first report at or past it
        window_frames=60,  # closes at 100, the first report >= 40 + 60
    )
    assert ffmpeg == Run(cpu_s=pytest.approx(60 * 0.02), wall_s=pytest.approx(2.0), media_s=2.0)
    assert service.cpu_s == pytest.approx(60 * 0.001)
    assert ffmpeg.cpu_per_media_s == pytest.approx(0.6)
    assert service.cpu_per_media_s == pytest.approx(0.03)
    assert next(reports) == 115  # nothing read past the window


def test_window_that_never_closes_is_an_error() -> None:
    counters = _Counters()
    with pytest.raises(RuntimeError, match="stopped before"):
        steady_window(
            waiting_on(counters.reports([0, 30, 60])),
            lambda: tuple(counters.cpu),
            lambda: counters.now,
            warmup_frames=30,
            window_frames=60,
        )


class _Service:
    """Answers GET /streams/{id} like the service: the encoder's frames advance 15 per report."""

    def __init__(self, pid: int = 42) -> None:
        self.frames = 0
        self.pid = pid
        self.requests = 0

    def stream(self, stream_id: str) -> dict[str, object]:
        self.requests += 1
        return {"encoder": {"pid": self.pid, "frames": self.frames}, "last_error": "stalled"}


def test_the_service_is_polled_sparsely_near_the_edges(monkeypatch: pytest.MonkeyPatch) -> None:
    service = _Service()
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:  # media advances at real time while the bench sleeps
        sleeps.append(seconds)
        service.frames += int(seconds * 30 // 15 * 15) or 15

    monkeypatch.setattr(steady.time, "sleep", sleep)
    wait_for_frames = waiting_on_service(service, "s", 42)  # type: ignore[arg-type]
    assert wait_for_frames(600) >= 600  # 20 s of media
    assert service.requests <= 12  # not 400 requests at 50 ms
    assert sleeps[0] == pytest.approx(20 - 0.75)
    service.pid = 43
    with pytest.raises(RuntimeError, match="encoder restarted during the window: stalled"):
        wait_for_frames(1200)


PROGRESS_ARGV = [
    FFMPEG, "-hide_banner", "-nostdin", "-loglevel", "error",
    "-progress", "pipe:1", "-stats_period", "0.1",
    "-f", "lavfi", "-i", "testsrc2=size=160x90:rate=30:duration=1",
    "-f", "null", "-",
]  # fmt: skip


def test_progress_frames_from_a_real_ffmpeg_progress_feed() -> None:
    result = subprocess.run(PROGRESS_ARGV, capture_output=True, check=True, timeout=60)
    frames = list(progress_frames(result.stdout.splitlines(keepends=True)))
    assert frames, result.stdout[:500]
    assert frames == sorted(frames)
    assert frames[-1] == 30


def test_progress_of_an_audio_only_feed_is_its_media_time_in_frames() -> None:
    audio_only = [
        FFMPEG, "-hide_banner", "-nostdin", "-loglevel", "error",
        "-progress", "pipe:1", "-stats_period", "0.1",
        "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=1",
        "-c:a", "aac", "-f", "null", "-",
    ]  # fmt: skip
    result = subprocess.run(audio_only, capture_output=True, check=True, timeout=60)
    assert b"frame=" not in result.stdout  # nothing but out_time to go by
    frames = list(progress_frames(result.stdout.splitlines(keepends=True)))
    assert frames == sorted(frames)
    assert frames[-1] == pytest.approx(30, abs=1)  # 1 s of audio = 30 frames at the bench's rate


def test_argv_difference_ignores_fd_numbers_and_the_binary() -> None:
    ours = ["/a/ffmpeg", "-i", "x", "-f", "mp4", "pipe:5", "pipe:6"]
    theirs = ["/b/ffmpeg", "-i", "x", "-f", "mp4", "pipe:9", "pipe:10"]
    assert argv_difference(ours, theirs) == []
    assert argv_difference(ours, [*theirs[:2], "y", *theirs[3:]]) == [("x", "y")]
    assert argv_difference(ours, theirs[:-1]) == [("6 args", "5 args")]


def test_compare_keeps_only_each_benchmarks_summary_lines() -> None:
    output = "== rounds ==\nround 1: 100 waiters\nnoise\nall rounds: p99 13 ms\n"
    assert summary_lines("blocking", output) == ["round 1: 100 waiters", "all rounds: p99 13 ms"]
    assert summary_lines("origin", "hlsdash origin  segment 10\nother\nratios (2xx): 1.0") == [
        "hlsdash origin  segment 10",
        "ratios (2xx): 1.0",
    ]
