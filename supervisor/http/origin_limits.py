"""How many viewers the origin may hold, and for how long: timeouts and the file-descriptor budget.

Every origin connection is one file descriptor, and so is every end of every FFmpeg pipe. Without
a budget, a few thousand idle viewers take the last descriptors and the next stream start fails
in ``pipe2()`` (``EMFILE``): viewers would decide whether a stream can start. So at start-up the
soft ``RLIMIT_NOFILE`` is raised to the hard limit, descriptors are set aside for what the service
itself and ``MAX_STREAMS`` streams need, and the origin takes connections only from the rest::

    origin connections = RLIMIT_NOFILE
                         - SERVICE_FDS          (128: listeners, epoll, wake-up pipes, logs,
                                                 worker-thread file I/O, /ready probes, psutil)
                         - API_MAX_CONNECTIONS  (128 by default: control-API and dashboard
                                                 connections, capped at that by api_server.py)
                         - MAX_STREAMS × FDS_PER_STREAM
                                                (32 each: up to 6 media pipes + stdout + stderr,
                                                 both ends open while FFmpeg is spawned = 16,
                                                 a pidfd, /dev/null, the exec-error pipe, and the
                                                 segment and playlist files being written)

e.g. hard limit 1,048,576 (Docker, systemd) and ``MAX_STREAMS=16``: 1,048,576 − 768 connections;
a soft limit stuck at 1,024: 256. ``ORIGIN_MAX_CONNECTIONS`` may lower the cap, never raise it
past the budget. Beyond the cap a new connection gets ``503`` and is closed at once.
"""

from __future__ import annotations

import resource
from dataclasses import dataclass
from typing import Final

from supervisor.config import Settings

SERVICE_FDS: Final = 128
API_CONNECTION_FDS: Final = 128  # API_MAX_CONNECTIONS's default
FDS_PER_STREAM: Final = 32
# below this the origin is useless; run with it anyway and say why at start-up
MIN_ORIGIN_CONNECTIONS: Final = 16
# when the hard limit is "unlimited", ask for the kernel's usual per-process ceiling
_UNLIMITED_NOFILE: Final = 1 << 20


@dataclass(frozen=True, slots=True)
class OriginLimits:
    """Per-connection deadlines and the connection cap of the origin's listener."""

    head_timeout_s: float = 10.0  # from accept (or the first byte of a request) to a whole head
    idle_timeout_s: float = 15.0  # keep-alive: no byte of a next request for this long → close
    send_timeout_s: float = 10.0  # a write that makes no progress for this long → close
    max_connections: int = 1024


@dataclass(frozen=True, slots=True)
class ConnectionBudget:
    max_connections: int
    reserved_fds: int
    warning: str | None = None  # said once at start-up when the budget bent the settings


def reserved_fds(max_streams: int, api_connections: int = API_CONNECTION_FDS) -> int:
    """Descriptors kept for the service itself, its API and ``max_streams`` streams."""
    return SERVICE_FDS + api_connections + max_streams * FDS_PER_STREAM


def connection_budget(
    *,
    nofile_limit: int,
    max_streams: int,
    configured: int,
    api_connections: int = API_CONNECTION_FDS,
) -> ConnectionBudget:
    """The origin's connection cap from the fd limit (pure; see the module docstring).

    ``configured`` is ``ORIGIN_MAX_CONNECTIONS`` (0: as many as the budget allows).
    """
    reserve = reserved_fds(max_streams, api_connections)
    budget = nofile_limit - reserve
    if budget < MIN_ORIGIN_CONNECTIONS:
        return ConnectionBudget(
            MIN_ORIGIN_CONNECTIONS,
            reserve,
            f"RLIMIT_NOFILE {nofile_limit} leaves {budget} descriptors for origin connections "
            f"after the {reserve} that MAX_STREAMS={max_streams} needs; serving "
            f"{MIN_ORIGIN_CONNECTIONS} anyway: raise the limit or lower MAX_STREAMS",
        )
    if configured == 0:
        return ConnectionBudget(budget, reserve)
    if configured > budget:
        return ConnectionBudget(
            budget,
            reserve,
            f"ORIGIN_MAX_CONNECTIONS {configured} lowered to {budget}: RLIMIT_NOFILE "
            f"{nofile_limit} minus the {reserve} descriptors kept for MAX_STREAMS={max_streams}",
        )
    return ConnectionBudget(configured, reserve)


def raise_nofile_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit; returns the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = _UNLIMITED_NOFILE if hard == resource.RLIM_INFINITY else hard
    if soft == resource.RLIM_INFINITY or soft >= target:
        return _UNLIMITED_NOFILE if soft == resource.RLIM_INFINITY else soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (OSError, ValueError):
        return soft  # not allowed (a container policy): budget with what there is
    return target


def origin_limits(
    settings: Settings, *, nofile_limit: int
) -> tuple[OriginLimits, ConnectionBudget]:
    budget = connection_budget(
        nofile_limit=nofile_limit,
        max_streams=settings.max_streams,
        configured=settings.origin_max_connections,
        api_connections=settings.api_max_connections,
    )
    limits = OriginLimits(
        head_timeout_s=settings.origin_head_timeout_s,
        idle_timeout_s=settings.origin_idle_timeout_s,
        send_timeout_s=settings.origin_send_timeout_s,
        max_connections=budget.max_connections,
    )
    return limits, budget
