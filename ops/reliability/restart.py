"""The service itself killed and started again, N times: its streams come back by themselves.

    python -m ops.reliability.restart --count 10 [--player]

One 240p LL stream from a real-time lavfi source. Each round stops the whole service process,
SIGKILL and SIGTERM in turn, and starts ``hlsdash serve`` again with the same settings and
ports; the registry (the default SQLite file in OUTPUT_DIR) resumes the stream. Every media
playlist is followed across all the lives by the same checkers (numbers and EXT-X-MEDIA-SEQUENCE
never back, a number never names two different segments, EXT-X-TARGETDURATION fixed), and each
new life must start above every number published before, with EXT-X-DISCONTINUITY-SEQUENCE one
higher. Figures: new process → stream live again (numbers above the old ones), and, with
``--player``, whether hls.js (its page left open on the same URL all along) plays at the end:
while no process answers its loads fail, and after its retries (about 3 s) that is a fatal error
on which the page restarts loading (what hls.js documents); any other fatal error is a problem.
"""

from __future__ import annotations

import contextlib
import signal
import tempfile
import time
from pathlib import Path

from ops.bench.common import free_port
from ops.reliability.player import PlayerWatch
from ops.reliability.playlist import PlaylistError, parse_media_playlist
from ops.reliability.probe import (
    LAVFI_240P,
    check_playlists,
    fetch,
    service_for_case,
    spread,
    start_watched_stream,
    status,
    wait_until,
)
from ops.reliability.report import Report, main

STREAM_ID = "resumed"
RESUME_TIMEOUT_S = 60.0


def run(
    count: int = 10, *, player: PlayerWatch | None = None, workdir: Path | None = None
) -> Report:
    report = Report("service SIGKILL / SIGTERM, then resume", count)
    with contextlib.ExitStack() as stack:
        if workdir is None:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="hlsdash-")))
        ports = (free_port(), free_port())
        life = contextlib.ExitStack()
        stack.callback(life.close)
        service = life.enter_context(service_for_case(workdir, ports=ports))
        watch = start_watched_stream(
            report,
            service,
            STREAM_ID,
            LAVFI_240P,
            player=player,
            player_src=f"{service.origin}/{STREAM_ID}/playlist.m3u8",
        )
        created_at = status(service, STREAM_ID)["created_at"]
        live_again_s: list[float] = []
        for restart in range(1, count + 1):
            sig = signal.SIGKILL if restart % 2 else signal.SIGTERM
            check_playlists(report, f"restart {restart}, before", watch)
            newest = max(watch.numbers_seen(), default=-1)
            before = _discontinuity_sequences(service.origin)
            service.process.send_signal(sig)
            service.process.wait(timeout=30)
            life.close()
            began = time.monotonic()
            life = contextlib.ExitStack()
            service = life.enter_context(
                service_for_case(workdir, ports=ports, log_name=f"service-{restart + 1}.log")
            )
            watch.service = service
            try:
                wait_until(
                    lambda origin=service.origin, newest=newest: _live_above(origin, newest),
                    RESUME_TIMEOUT_S,
                    f"restart {restart} ({sig.name}): live above {newest}",
                )
            except TimeoutError as error:
                report.problem(f"{error}: {status(service, STREAM_ID)}")
                break
            live_again_s.append(time.monotonic() - began)
            check_playlists(report, f"restart {restart}, live again", watch)
            after = _discontinuity_sequences(service.origin)
            for uri, sequence in after.items():
                report.expect(
                    sequence >= before.get(uri, 0) + 1,
                    f"restart {restart}: {uri} EXT-X-DISCONTINUITY-SEQUENCE "
                    f"{before.get(uri)} → {sequence} (want +1)",
                )
            info = status(service, STREAM_ID)
            report.expect(
                info["created_at"] == created_at,
                f"restart {restart}: created_at {created_at} → {info['created_at']}",
            )
        if player is not None:
            try:
                summary = player.check_playing(4.0, through_network_outage=True)
                report.figure("player at the end", summary)
            except AssertionError as error:
                report.problem(f"hls.js stopped playing: {error}")
        seen = watch.numbers_seen()
        report.figure("new process → live again above the old numbers", spread(live_again_s))
        report.figure("playlist reloads checked", watch.reloads)
        report.figure("segment numbers seen", f"{min(seen)}…{max(seen)}" if seen else "none")
    return report


def _media_playlists(origin: str) -> dict[str, str]:
    base = f"{origin}/{STREAM_ID}"
    return {uri: fetch(f"{base}/{uri}") for uri in ("240p/playlist.m3u8", "audio/playlist.m3u8")}


def _discontinuity_sequences(origin: str) -> dict[str, int]:
    return {
        uri: parse_media_playlist(text).discontinuity_sequence
        for uri, text in _media_playlists(origin).items()
    }


def _live_above(origin: str, newest: int) -> bool:
    try:
        playlists = [parse_media_playlist(t) for t in _media_playlists(origin).values()]
    except (OSError, PlaylistError):
        return False  # not answering yet, or no playlist yet
    return all(p.media_sequence > newest and p.segment_numbers for p in playlists)


if __name__ == "__main__":
    main(run, description=__doc__ or "", default_count=10, with_player=True)
