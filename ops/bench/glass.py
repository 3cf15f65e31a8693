"""Glass-to-glass latency: what the viewer sees, per player, against FFmpeg's own HLS muxer.

    .venv/bin/python -m ops.bench.glass              # every player, 30 screenshots each
    .venv/bin/python -m ops.bench.glass --tiny       # hls.js + the baseline, 4 screenshots each
    .venv/bin/python -m ops.bench.glass --players hlsjs,shaka-dash --no-baseline --verbose

A clocked live source (``clocked_source``: 1280x720 at 30 fps + a tone, each frame's counter
drawn as black/white blocks, its capture time recorded when the frame is written to the encoder
(x264 ``zerolatency``); live MPEG-TS over HTTP that a client joins at the live point, like a
hardware encoder or a media server) feeds the real service (``hlsdash serve`` as a
process; ``SEGMENT_DURATION=2``, ``PART_TARGET`` as configured, the default preset) through one
``low_latency`` stream with qualities 720p + 360p (then, deleted first, one ``low_latency: false``
stream for the plain-output rows: hls.js and dash.js in their non-LL mode; ``--no-plain`` skips
them). Each player plays it in headless Chromium
(``supervisor/static/player.html`` through the e2e harness); after a warm-up the benchmark takes
screenshots of the video picture at least ``--interval`` seconds apart, reads the frame counter
back from the pixels and computes

    glass-to-glass = the screenshot's wall-clock time − the capture time of the frame shown

next to what the player itself says at the same moment (hls.js ``latency``, dash.js
``getCurrentLiveLatency()``, Shaka ``getStats().liveLatency``) and the page's wall-clock vs PDT /
availability-time figure (what the dashboard shows). "frozen" is the longest run of consecutive
screenshots showing the same frame (1 = the picture always moved). Unreadable screenshots are
counted, never dropped silently; their PNGs are kept in ``--keep`` if given.

Baseline, same run, same clocked source: FFmpeg pulls it, encodes 720p (same preset) and
writes plain HLS with its own muxer (``-hls_time 1``), served by a static HTTP server, played by
hls.js. The service's stream is stopped first, so each pipeline is measured alone.

The two figures' clock is the same: capture and screenshot times are this process's
``time.time()``. A screenshot takes tens of ms; its midpoint is used and the median capture time
is printed (half of it is the uncertainty). This is a benchmark, not a test: it asserts nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from actors.ffmpeg.process import die_with_this_thread
from ops.bench.clockcode import read_png_counter
from ops.bench.clocked_source import ClockedSource, clocked_source
from ops.bench.common import (
    FFMPEG,
    Service,
    header,
    median,
    percentile,
    running_service,
    stop_process,
)
from supervisor.config import Settings
from tests.e2e.harness import (
    Picture,
    PlayerHarness,
    PlayerSession,
    StaticServer,
    launch_harness,
)

STREAM_ID = "glass"
PLAIN_STREAM_ID = "glass-plain"
QUALITIES = ("720p", "360p")


@dataclass(frozen=True, slots=True)
class PlayerCase:
    label: str
    engine: str
    protocol: str  # "hls" | "dash" | "baseline"
    low_latency: bool
    extra: tuple[tuple[str, str], ...] = ()


CASES: tuple[PlayerCase, ...] = (
    PlayerCase("hls.js LL", "hlsjs", "hls", True),
    PlayerCase("dash.js LL (MPD target)", "dashjs", "dash", True, (("target", "mpd"),)),
    PlayerCase("dash.js LL liveDelay 3", "dashjs", "dash", True, (("target", "3"),)),
    PlayerCase("Shaka HLS LL", "shaka-hls", "hls", True),
    PlayerCase("Shaka DASH LL", "shaka-dash", "dash", True),
    # our own plain output (a second stream, ``low_latency: false``), players in their default
    # (non-LL) mode: what a viewer of plain HLS/DASH gets
    PlayerCase("hls.js plain HLS", "hlsjs", "hls", False),
    PlayerCase("dash.js plain DASH", "dashjs", "dash", False),
)
BASELINE = PlayerCase("baseline: FFmpeg HLS 1 s, hls.js", "hlsjs", "baseline", False)


def select_cases(players: str, *, tiny: bool = False, plain: bool = True) -> tuple[PlayerCase, ...]:
    """The cases to run: ``players`` is "all" or comma-separated engines / labels."""
    if tiny:
        return CASES[:1]
    cases = CASES
    if players != "all":
        wanted = set(players.split(","))
        cases = tuple(c for c in CASES if c.engine in wanted or c.label in wanted)
    return cases if plain else tuple(c for c in cases if c.low_latency)


def cases_per_stream(cases: Sequence[PlayerCase]) -> list[list[PlayerCase]]:
    """The cases grouped by the stream they play: the LL stream's first, then the plain one's."""
    groups = [[c for c in cases if c.low_latency == ll] for ll in (True, False)]
    return [group for group in groups if group]


@dataclass(frozen=True, slots=True)
class Shot:
    """One screenshot: which frame it showed, and the latencies at that moment."""

    taken_at_s: float
    duration_s: float
    counter: int | None  # None: unreadable
    glass_s: float | None  # None: unreadable, or a counter this source never wrote
    player_s: float | None
    pdt_s: float | None
    video_height: int


@dataclass(frozen=True, slots=True)
class Summary:
    shots: int
    unreadable: int
    glass_p10_s: float
    glass_median_s: float
    glass_p90_s: float
    player_median_s: float
    pdt_median_s: float
    frozen_run: int  # longest run of consecutive shots showing one frame
    shot_duration_s: float
    heights: str


def longest_same_run(counters: Sequence[int | None]) -> int:
    """Longest run of consecutive equal, readable counters (0 when none is readable)."""
    best = run = 0
    previous: int | None = None
    for counter in counters:
        if counter is None:
            run, previous = 0, None
            continue
        run = run + 1 if counter == previous else 1
        previous = counter
        best = max(best, run)
    return best


def summarize(shots: Sequence[Shot]) -> Summary:
    glass = [s.glass_s for s in shots if s.glass_s is not None]
    player = [s.player_s for s in shots if s.player_s is not None]
    pdt = [s.pdt_s for s in shots if s.pdt_s is not None]
    heights: dict[int, int] = {}
    for shot in shots:
        heights[shot.video_height] = heights.get(shot.video_height, 0) + 1
    return Summary(
        shots=len(shots),
        unreadable=sum(1 for s in shots if s.glass_s is None),
        glass_p10_s=percentile(glass, 10),
        glass_median_s=median(glass),
        glass_p90_s=percentile(glass, 90),
        player_median_s=median(player),
        pdt_median_s=median(pdt),
        frozen_run=longest_same_run([s.counter for s in shots]),
        shot_duration_s=median([s.duration_s for s in shots]),
        heights=" ".join(f"{h}p×{n}" for h, n in sorted(heights.items(), reverse=True)),
    )


def _player_latency_s(raw: Mapping[str, Any]) -> float | None:
    """The engine's own figure (the page's ``latencyS`` falls back to PDT for Shaka)."""
    value = raw.get("playerLatencyS")
    return None if value is None else float(value)


def take_shot(session: PlayerSession, source: ClockedSource) -> tuple[Shot, Picture | None]:
    """Screenshot the picture and read its frame counter (unreadable before it has a size)."""
    state = session.state()
    picture = session.picture()
    if picture is None:
        player_s = _player_latency_s(state.raw)
        return Shot(time.time(), 0.0, None, None, player_s, state.pdt_latency_s, 0), None
    counter = read_png_counter(picture.png)
    captured_s = None if counter is None else source.captured_at(counter)
    shot = Shot(
        taken_at_s=picture.taken_at_s,
        duration_s=picture.duration_s,
        counter=counter,
        glass_s=None if captured_s is None else picture.taken_at_s - captured_s,
        player_s=_player_latency_s(state.raw),
        pdt_s=state.pdt_latency_s,
        video_height=picture.video_height,
    )
    return shot, picture


def shoot(
    session: PlayerSession,
    source: ClockedSource,
    *,
    count: int,
    interval_s: float,
    keep: Path | None,
    label: str,
) -> list[Shot]:
    """``count`` shots at least ``interval_s`` apart; unreadable PNGs go to ``keep``.

    The next capture starts ``interval_s`` after the previous one *ended*, so the shots' times
    (mid-capture) are never closer than ``interval_s``, whatever a capture takes.
    """
    shots: list[Shot] = []
    while len(shots) < count:
        if shots:
            time.sleep(interval_s)
        shot, picture = take_shot(session, source)
        shots.append(shot)
        if shot.counter is None and picture is not None and keep is not None:
            name = f"{label.replace(' ', '_').replace(':', '')}_{len(shots):03d}.png"
            (keep / name).write_bytes(picture.png)
    return shots


def measure(
    harness: PlayerHarness,
    base_url: str,
    case: PlayerCase,
    src: str,
    source: ClockedSource,
    args: argparse.Namespace,
) -> Summary | str:
    """Play ``src`` with ``case``; a Summary, or why the player never played."""
    with harness.player(
        base_url, case.engine, src, low_latency=case.low_latency, extra=dict(case.extra)
    ) as session:
        try:
            session.wait_playing(min_advance_s=2.0, timeout_s=args.start_timeout)
        except AssertionError as error:
            return f"did not play: {str(error).splitlines()[0]}"
        time.sleep(args.warmup)
        shots = shoot(
            session,
            source,
            count=args.shots,
            interval_s=args.interval,
            keep=args.keep,
            label=case.label,
        )
        if args.verbose:
            for shot in shots:
                print(f"  {case.label}: {shot}", flush=True)
        return summarize(shots)


def stream_health(status: Mapping[str, Any]) -> str:
    """State, restarts and encoder speed: a player that did not play may have had no stream."""
    encoder = status.get("encoder") or {}
    assert isinstance(encoder, dict)
    return (
        f"state {status.get('state')}, restarts {status.get('restarts')}, encoder speed "
        f"{encoder.get('speed')}×, last error {status.get('last_error')}"
    )


def measure_stream(
    harness: PlayerHarness,
    service: Service,
    source: ClockedSource,
    cases: Sequence[PlayerCase],
    args: argparse.Namespace,
) -> list[tuple[str, Summary | str]]:
    """One stream (LL or plain, as ``cases`` play it) from the source; each case played on it.

    The stream is deleted afterwards, so the LL and the plain pipeline are each measured alone.
    """
    low_latency = cases[0].low_latency
    assert all(c.low_latency == low_latency for c in cases), "one stream per latency mode"
    stream_id = STREAM_ID if low_latency else PLAIN_STREAM_ID
    info = service.create(stream_id, source.url, qualities=list(QUALITIES), low_latency=low_latency)
    rows: list[tuple[str, Summary | str]] = []
    try:
        service.wait_segments(stream_id, 3)
        urls = info["urls"]
        assert isinstance(urls, dict)
        for case in cases:
            key = f"cdn_{case.protocol}" if args.cdn else case.protocol
            src = str(urls[key])
            if src.startswith("/"):
                src = service.api + src
            rows.append((case.label, measure(harness, service.api, case, src, source, args)))
            print_table(rows[-1:], legend=False)
            print(
                f"  stream after it: {stream_health(service.stream(stream_id))}; source "
                f"writer stalls {source.stalls} (a stall or an encoder speed below 1× means "
                "this machine was too busy for the figures to mean much)",
                flush=True,
            )
    finally:
        service.delete(stream_id)
    return rows


@contextlib.contextmanager
def ffmpeg_hls_baseline(source_url: str, workdir: Path, preset: str) -> Iterator[str]:
    """FFmpeg pulling the source into plain HLS (its own muxer, 1 s segments); the folder served.

    Yields the playlist URL on a static server (threaded, CORS, no-store).
    """
    folder = workdir / "baseline"
    folder.mkdir()
    argv = [
        FFMPEG,
        *("-hide_banner", "-loglevel", "error", "-nostdin", "-i", source_url),
        *("-c:v", "libx264", "-preset", preset, "-g", "30", "-keyint_min", "30"),
        *("-sc_threshold", "0", "-c:a", "aac", "-b:a", "96k"),
        *("-f", "hls", "-hls_time", "1", "-hls_list_size", "6"),
        *("-hls_flags", "delete_segments+program_date_time+independent_segments"),
        *("-hls_segment_filename", str(folder / "seg_%05d.ts"), str(folder / "index.m3u8")),
    ]
    process = subprocess.Popen(
        argv,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=die_with_this_thread(),  # noqa: PLW1509 - prctl only
    )
    try:
        with StaticServer({"/baseline/": folder}) as server:
            deadline = time.monotonic() + 30
            while len(list(folder.glob("seg_*.ts"))) < 3:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("the FFmpeg HLS baseline produced no segments")
                time.sleep(0.2)
            yield f"{server.base_url}/baseline/index.m3u8"
    finally:
        stop_process(process)


def print_table(rows: Sequence[tuple[str, Summary | str]], *, legend: bool = True) -> None:
    def sec(value: float) -> str:
        return "  n/a" if value != value else f"{value:5.2f}"  # NaN: nothing measured

    print(
        f"{'player (settings)':34} {'shots':>5} {'unread':>6}  "
        f"{'glass-to-glass p10/med/p90 s':>28}  {'player says':>11}  {'PDT/AST':>7}  "
        f"{'frozen':>6}  renditions"
    )
    for label, result in rows:
        if isinstance(result, str):
            print(f"{label:34} {result}")
            continue
        s = result
        glass = f"{sec(s.glass_p10_s)} / {sec(s.glass_median_s)} / {sec(s.glass_p90_s)}"
        print(
            f"{label:34} {s.shots:5d} {s.unreadable:6d}  {glass:>28}  "
            f"{sec(s.player_median_s):>11}  {sec(s.pdt_median_s):>7}  {s.frozen_run:6d}  "
            f"{s.heights}",
            flush=True,
        )
    if not legend:
        return
    durations = [r.shot_duration_s for _, r in rows if isinstance(r, Summary)]
    print(
        f"screenshot capture took {median(durations) * 1000:.0f} ms (median): each time is "
        "±half that. 'player says': the player's own latency; 'PDT/AST': wall clock minus the "
        "playhead's program-date-time / DASH availability time; 'frozen': longest run of "
        "consecutive screenshots showing one frame (1 = always moving)."
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shots", type=int, default=30, help="screenshots per player")
    parser.add_argument("--interval", type=float, default=0.8, help="seconds between shots")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds played before shots")
    parser.add_argument("--start-timeout", type=float, default=30.0)
    parser.add_argument("--segment", type=float, default=2.0, help="SEGMENT_DURATION, s")
    parser.add_argument(
        "--part", type=float, default=Settings().part_target_s, help="PART_TARGET, s"
    )
    parser.add_argument("--players", default="all", help="comma-separated labels' engines")
    parser.add_argument("--cdn", action="store_true", help="play from the origin port")
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument("--no-plain", action="store_true", help="skip our plain (non-LL) rows")
    parser.add_argument("--keep", type=Path, help="folder for unreadable screenshots")
    parser.add_argument("--verbose", action="store_true", help="print every shot")
    parser.add_argument("--tiny", action="store_true")
    args = parser.parse_args(argv)
    if args.tiny:
        args.shots, args.warmup = 4, 2.0
    cases = select_cases(args.players, tiny=args.tiny, plain=not args.no_plain)
    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=True)
    preset = Settings().encoder_preset
    rows: list[tuple[str, Summary | str]] = []
    with tempfile.TemporaryDirectory(prefix="glass-") as tmp, launch_harness() as harness:
        workdir = Path(tmp)
        with (
            clocked_source() as source,
            running_service(
                workdir / "service",
                SEGMENT_DURATION=f"{args.segment:g}",
                PART_TARGET=f"{args.part:g}",
            ) as service,
        ):
            header(
                f"glass-to-glass: hlsdash, 1280x720p30 clocked HTTP-TS source → {list(QUALITIES)}, "
                f"LL on (then plain), SEGMENT_DURATION={args.segment:g}, "
                f"PART_TARGET={args.part:g}, "
                f"preset {preset}, {args.shots} shots ≥ {args.interval:g} s apart per player "
                f"after {args.warmup:g} s"
            )
            for stream_cases in cases_per_stream(cases):
                rows += measure_stream(harness, service, source, stream_cases, args)
            if not args.no_baseline:
                with ffmpeg_hls_baseline(source.url, workdir, preset) as src:
                    result = measure(harness, service.api, BASELINE, src, source, args)
                    rows.append((BASELINE.label, result))
        header("glass-to-glass, per player (seconds)")
        print_table(rows)


if __name__ == "__main__":
    main()
