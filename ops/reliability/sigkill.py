"""FFmpeg SIGKILLed again and again on one live stream; a second stream must not notice.

    python -m ops.reliability.sigkill --count 50 [--player]

Two 240p LL streams from real-time lavfi sources. For each kill: SIGKILL the victim's FFmpeg, check
every media playlist of the victim while it restarts, wait for a new FFmpeg (restarts exactly +1)
to commit a segment, check the playlists again (valid, numbers never back, a discontinuity where
the restart is). The bystander's playlists are checked each round too: restarts stay 0, numbers
consecutive, no discontinuity. With ``--player`` hls.js plays the victim all along and must still
be playing at the end. Restart intensity and backoff are opened up (``RESTART_MAX=1000``,
``RESTART_BACKOFF_MAX=1``) so 50 kills take minutes, not the default policy's half hour (the
policy itself is the unit tests' business), and the watchdog given 6 segments instead of 2, so
that an encoder starved of CPU on a loaded machine (a browser playing next to it) is not
restarted by it in the middle of the count. Why each encoder exited is read from the service log.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

from ops.reliability.player import PlayerWatch
from ops.reliability.probe import (
    LAVFI_240P,
    PlaylistWatch,
    alive,
    as_int,
    check_playlists,
    encoder_exit_causes,
    encoder_pid,
    service_for_case,
    signal_encoder,
    spread,
    status,
    wait_live,
    wait_until,
)
from ops.reliability.report import Report, main

VICTIM, BYSTANDER = "victim", "bystander"
RECOVERY_TIMEOUT_S = 60.0


def run(
    count: int = 50, *, player: PlayerWatch | None = None, workdir: Path | None = None
) -> Report:
    report = Report("FFmpeg SIGKILL", count)
    overrides = {
        "RESTART_MAX": "1000",
        "RESTART_PERIOD": "60",
        "RESTART_BACKOFF_MAX": "1",
        "WATCHDOG_SEGMENTS": "6",
    }
    with service_for_case(workdir, **overrides) as service:
        for stream_id in (VICTIM, BYSTANDER):
            service.create(stream_id, LAVFI_240P, qualities=["240p"], low_latency=True)
        for stream_id in (VICTIM, BYSTANDER):
            wait_live(service, stream_id, segments=2)
        victim, bystander = PlaylistWatch(service, VICTIM), PlaylistWatch(service, BYSTANDER)
        victim.check_now()
        bystander.check_now()
        if player is not None:
            player.open(service.api, f"{service.api}/streams/{VICTIM}/playlist.m3u8")
            player.check_playing(2.0)
        bystander_began = as_int(status(service, BYSTANDER)["segments_produced"])
        restarts_began = as_int(status(service, VICTIM)["restarts"])
        recoveries_s: list[float] = []
        for kill in range(1, count + 1):
            killed = signal_encoder(report, service, VICTIM, signal.SIGKILL, f"kill {kill}")
            if killed is None:
                break
            pid, restarts, killed_at = killed
            check_playlists(report, f"kill {kill}, restarting", victim)

            def restarted(pid: int = pid, restarts: int = restarts) -> bool:
                now = status(service, VICTIM)
                new_pid = encoder_pid(now)
                # "live" again is set by the first segment the new FFmpeg commits
                return (
                    as_int(now["restarts"]) > restarts
                    and now["state"] == "live"
                    and new_pid not in (None, pid)
                )

            try:
                wait_until(restarted, RECOVERY_TIMEOUT_S, f"kill {kill}: a new FFmpeg's segment")
            except TimeoutError as error:
                report.problem(f"{error}: {status(service, VICTIM)}")
                break
            recoveries_s.append(time.monotonic() - killed_at)
            now = status(service, VICTIM)
            report.expect(
                as_int(now["restarts"]) == restarts + 1,
                f"kill {kill}: restarts {restarts} → {now['restarts']} (want +1)",
            )
            report.expect(not alive(pid), f"kill {kill}: the killed FFmpeg {pid} is still there")
            discontinuities = check_playlists(report, f"kill {kill}, live again", victim)
            report.expect(
                discontinuities is None or min(discontinuities.values()) >= 1,
                f"kill {kill}: no EXT-X-DISCONTINUITY after the restart: {discontinuities}",
            )
            _check_bystander(report, f"kill {kill}", bystander)
        final, other = status(service, VICTIM), status(service, BYSTANDER)
        restarted = as_int(final["restarts"]) - restarts_began
        report.expect(
            restarted == count, f"the victim restarted {restarted} times for {count} kills"
        )
        report.expect(other["restarts"] == 0, f"the bystander restarted: {other}")
        report.expect(other["state"] == "live", f"the bystander is {other['state']}")
        if player is not None:
            try:
                report.figure("player at the end", player.check_playing(4.0))
            except AssertionError as error:
                report.problem(f"hls.js stopped playing: {error}")
        seen = victim.numbers_seen()
        report.figure("kills / victim restarts", f"{count} / {restarted}")
        report.figure(
            "victim encoder exits by cause (service log)",
            encoder_exit_causes(service.log_path, VICTIM),
        )
        report.figure("kill → first segment of the new FFmpeg", spread(recoveries_s))
        report.figure("playlist reloads checked", victim.reloads + bystander.reloads)
        report.figure("victim segment numbers seen", f"{min(seen)}…{max(seen)}" if seen else "none")
        report.figure(
            "bystander",
            f"restarts {other['restarts']}, "
            f"{as_int(other['segments_produced']) - bystander_began} segments during the kills",
        )
    return report


def _check_bystander(report: Report, when: str, watch: PlaylistWatch) -> None:
    discontinuities = check_playlists(report, f"{when}, bystander", watch)
    if discontinuities is not None:
        report.expect(
            max(discontinuities.values()) == 0,
            f"{when}: the bystander has a discontinuity: {discontinuities}",
        )


if __name__ == "__main__":
    main(run, description=__doc__ or "", default_count=50, with_player=True)
