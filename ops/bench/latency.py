"""Live latency per player and POST → first part, against the real service.

    .venv/bin/python -m ops.bench.latency [--segment 1] [--part 0.5] [--seconds 20] [--rounds 3]

Starts ``hlsdash serve`` (a subprocess), creates a low-latency stream and a plain one from a real
live FFmpeg source (test pattern + tone), then for each player (hls.js, dash.js, Shaka on HLS and
on DASH) in headless Chromium plays each stream for ``--seconds`` and prints the latency it reports
and the wall-clock latency (now − the media's program-date-time / availabilityStartTime mapping at
the playhead), median over samples taken every second after warm-up. The plain stream is the
baseline of the same run; the ratio LL / plain is printed per player.

Also prints POST /streams → first part servable, → first full segment (median over ``--rounds``).
This is a benchmark, not a test: it asserts nothing.
"""

from __future__ import annotations

import argparse
import statistics
import time

import httpx

from tests.e2e.harness import ENGINES, launch_harness
from tests.e2e.live_service import LIVE_SOURCE, run_service


def first_part_times(client: httpx.Client, rounds: int) -> tuple[float, float]:
    to_part: list[float] = []
    to_segment: list[float] = []
    for n in range(rounds):
        sid = f"ttfp{n}"
        started = time.monotonic()
        client.post(
            "/streams",
            json={
                "stream_id": sid,
                "source_url": LIVE_SOURCE,
                "qualities": ["240p"],
                "low_latency": True,
            },
        ).raise_for_status()
        part_at = segment_at = None
        while segment_at is None and time.monotonic() - started < 30:
            text = client.get(f"/streams/{sid}/240p/playlist.m3u8").text
            now = time.monotonic() - started
            if part_at is None and "#EXT-X-PART:" in text:
                part_at = now
            if "#EXTINF" in text:
                segment_at = now
            time.sleep(0.02)
        client.delete(f"/streams/{sid}")
        if part_at is not None and segment_at is not None:
            to_part.append(part_at)
            to_segment.append(segment_at)
    return statistics.median(to_part), statistics.median(to_segment)


def measure(
    base: str, engine: str, src: str, low_latency: bool, seconds: float
) -> tuple[float | None, float | None]:
    with launch_harness() as harness:
        session = harness.open_player(
            base,
            engine,
            src,
            low_latency=low_latency,
            extra={"target": "mpd"} if low_latency else None,
        )
        try:
            session.wait_playing(min_advance_s=2.0, timeout_s=30.0)
            reported: list[float] = []
            wall: list[float] = []
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                state = session.state()
                if state.latency_s is not None:
                    reported.append(state.latency_s)
                if state.pdt_latency_s is not None:
                    wall.append(state.pdt_latency_s)
                time.sleep(1.0)
        finally:
            session.close()
    return (
        statistics.median(reported) if reported else None,
        statistics.median(wall) if wall else None,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--segment", type=float, default=1.0)
    parser.add_argument("--part", type=float, default=0.5)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with run_service(segment_duration_s=args.segment, part_target_s=args.part) as service:
        service.create_stream("plain", low_latency=False, qualities=("360p", "240p"))
        service.create_stream("ll", low_latency=True, qualities=("360p", "240p"))
        service.wait_segments("plain", at_least=3)
        service.wait_segments("ll", at_least=3)
        print(f"segments {args.segment:g} s, parts {args.part:g} s; median latency in seconds")
        print(f"{'player':12} {'plain rep/wall':>16} {'LL rep/wall':>14} {'LL/plain (wall)':>16}")
        for engine in ENGINES:
            dash = engine in {"dashjs", "shaka-dash"}
            results = {}
            for sid, ll in (("plain", False), ("ll", True)):
                src = service.dash_url(sid) if dash else service.hls_url(sid)
                results[sid] = measure(service.api_url, engine, src, ll, args.seconds)

            def fmt(pair: tuple[float | None, float | None]) -> str:
                return "/".join("n/a" if v is None else f"{v:.2f}" for v in pair)

            plain_wall, ll_wall = results["plain"][1], results["ll"][1]
            ratio = f"{ll_wall / plain_wall:.2f}" if plain_wall and ll_wall else "n/a"
            print(f"{engine:12} {fmt(results['plain']):>16} {fmt(results['ll']):>14} {ratio:>16}")
        to_part, to_segment = first_part_times(service.client, args.rounds)
        print(
            f"POST → first part {to_part:.2f} s, → first full segment {to_segment:.2f} s "
            f"(median of {args.rounds})"
        )


if __name__ == "__main__":
    main()
