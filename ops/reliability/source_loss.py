"""The source goes away for 15 s and comes back: the stream says why, backs off, and resumes alone.

    python -m ops.reliability.source_loss --count 3 [--player]

The source is a real RTMP publisher (FFmpeg ``-listen 1``, tests/integration/live.py) that is
killed and, ``outage_s`` later, started again. Promised, each time: the stream leaves ``live`` for
``restarting`` with a ``last_error`` that names the cause, retries with growing pauses (default
backoff, nothing opened up), its playlists stay valid while the source is gone, and once the
source is back it is ``live`` again without any request, with an ``EXT-X-DISCONTINUITY`` at the
gap and a live edge that keeps advancing (with ``--player``: hls.js still playing). Between
outages the stream runs for ``HEALTHY_BETWEEN_S``, past the backoff's reset.
"""

from __future__ import annotations

import itertools
import time
from pathlib import Path

from ops.bench.common import Service
from ops.reliability.player import PlayerWatch
from ops.reliability.probe import (
    PlaylistWatch,
    as_int,
    check_playlists,
    service_for_case,
    spread,
    start_watched_stream,
    status,
    wait_until,
)
from ops.reliability.report import Report, main
from tests.integration.live import running_publisher

STREAM_ID = "flaky"
OUTAGE_S = 15.0
# the backoff starts over once an encoder has run this long (supervisor Backoff.reset_after_s);
# between outages the stream stays up longer, so each outage meets a healthy stream, as a
# once-in-a-while source blip would (outages closer together get the long pauses, by design)
HEALTHY_BETWEEN_S = 30.0 + 3.0
# words of the errors FFmpeg gives for a vanished RTMP/HTTP source, as the service words them
CLEAR_CAUSES = ("refused", "connection", "end of file", "timed out", "no media", "i/o error")


def run(
    count: int = 3,
    *,
    outage_s: float = OUTAGE_S,
    player: PlayerWatch | None = None,
    workdir: Path | None = None,
) -> Report:
    report = Report(f"source gone {outage_s:g} s", count)
    with (
        running_publisher("rtmp", width=426, height=240) as publisher,
        service_for_case(workdir) as service,
    ):
        watch = start_watched_stream(
            report,
            service,
            STREAM_ID,
            publisher.url,
            player=player,
            player_src=f"{service.api}/streams/{STREAM_ID}/playlist.m3u8",
        )
        noticed_s: list[float] = []
        resumed_s: list[float] = []
        for outage in range(1, count + 1):
            before = status(service, STREAM_ID)
            publisher.stop()
            gone_at = time.monotonic()
            try:
                noticed_s.append(
                    wait_until(
                        lambda: status(service, STREAM_ID)["state"] == "restarting",
                        outage_s,
                        f"outage {outage}: state restarting",
                    )
                )
            except TimeoutError as error:
                report.problem(f"{error}: {status(service, STREAM_ID)}")
            restart_times = _watch_outage(report, service, watch, gone_at + outage_s, outage)
            during = status(service, STREAM_ID)
            error_text = str(during["last_error"] or "")
            report.figure(f"outage {outage}: last_error", repr(error_text))
            report.expect(
                any(word in error_text.lower() for word in CLEAR_CAUSES),
                f"outage {outage}: last_error does not say why: {error_text!r}",
            )
            pauses = [b - a for a, b in itertools.pairwise(restart_times)]
            report.figure(
                f"outage {outage}: restarts while gone / pauses between them",
                f"{as_int(during['restarts']) - as_int(before['restarts'])} / "
                + ", ".join(f"{p:.1f} s" for p in pauses),
            )
            report.expect(
                len(restart_times) >= 2 and pauses == sorted(pauses),
                f"outage {outage}: no growing backoff seen (restart moments {restart_times})",
            )
            produced = as_int(during["segments_produced"])
            publisher.start()
            back_at = time.monotonic()
            try:
                wait_until(
                    lambda p=produced: _live_past(status(service, STREAM_ID), p),
                    90,
                    f"outage {outage}: live again",
                )
                resumed_s.append(time.monotonic() - back_at)
            except TimeoutError as error:
                report.problem(f"{error}: {status(service, STREAM_ID)}")
                break
            _check_after(report, watch, outage)
            if outage < count:
                _stay_live(report, service, watch, time.monotonic() + HEALTHY_BETWEEN_S, outage)
        if player is not None:
            try:
                report.figure("player at the end", player.check_playing(4.0))
            except AssertionError as error:
                report.problem(f"hls.js did not recover: {error}")
        report.figure("source gone → state restarting", spread(noticed_s))
        report.figure("source back → live with a new segment", spread(resumed_s))
        report.figure("playlist reloads checked", watch.reloads)
    return report


def _watch_outage(
    report: Report, service: Service, watch: PlaylistWatch, until: float, outage: int
) -> list[float]:
    """Until ``until``: playlists valid, never ``live``; returns when each restart was seen."""
    restarts_seen: list[float] = []
    last_restarts = as_int(status(service, STREAM_ID)["restarts"])
    last_check = 0.0
    while (now := time.monotonic()) < until:
        info = status(service, STREAM_ID)
        if as_int(info["restarts"]) > last_restarts:
            last_restarts = as_int(info["restarts"])
            restarts_seen.append(now)
        report.expect(
            info["state"] in {"restarting", "starting", "live"},
            f"outage {outage}: state {info['state']}",
        )
        if now - last_check > 2.0:
            check_playlists(report, f"outage {outage}, source gone", watch)
            last_check = now
        time.sleep(0.1)
    return restarts_seen


def _stay_live(
    report: Report, service: Service, watch: PlaylistWatch, until: float, outage: int
) -> None:
    while time.monotonic() < until:
        state = status(service, STREAM_ID)["state"]
        report.expect(state == "live", f"after outage {outage}: state {state} with the source up")
        check_playlists(report, f"after outage {outage}", watch)
        time.sleep(2.0)


def _live_past(info: dict[str, object], produced: int) -> bool:
    return info["state"] == "live" and as_int(info["segments_produced"]) > produced


def _check_after(report: Report, watch: PlaylistWatch, outage: int) -> None:
    discontinuities = check_playlists(report, f"outage {outage}, back", watch)
    if discontinuities is not None:
        report.expect(
            min(discontinuities.values()) >= 1,
            f"outage {outage}: no EXT-X-DISCONTINUITY at the gap: {discontinuities}",
        )
    newest = max(c.newest_number or -1 for c in watch.checkers.values())
    try:
        wait_until(
            lambda: (
                check_playlists(report, f"outage {outage}, advancing", watch) is not None
                and min(c.newest_number or -1 for c in watch.checkers.values()) >= newest + 2
            ),
            15,
            f"outage {outage}: the live edge to advance 2 segments",
            poll_s=0.5,
        )
    except TimeoutError as error:
        report.problem(str(error))


if __name__ == "__main__":
    main(run, description=__doc__ or "", default_count=3, with_player=True)
