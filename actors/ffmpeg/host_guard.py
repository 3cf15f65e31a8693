"""The source host policy in action: resolve before admitting, then watch where FFmpeg connects.

Two checks, because a name can resolve differently for us and for FFmpeg a moment later (DNS
rebinding), and because FFmpeg follows HTTP redirects and an HLS playlist's segment URLs on its own:

1. **Admission** (``SourceGuard.admit``): the URL's host is resolved (in a worker thread, bounded
   by ``resolve_timeout_s``) and *every* address it resolves to must pass ``host_policy``;
   otherwise the stream is refused with a 422 before anything runs.
2. **Connect time** (``SourceGuard.watch``): while FFmpeg runs, the peers of its connected
   sockets (borrowed with ``pidfd_getfd``, see ``process_peers``) are checked against the same
   policy — every ``fast_poll_s`` during the
   first ``fast_window_s`` of a run (where the connection and redirects happen), then every
   ``slow_poll_s``. A forbidden peer ends the watch with a reason; the actor kills FFmpeg and fails
   the stream. This sees what FFmpeg actually did, whatever protocol layer chose the address,
   but it is detection, not prevention: a request can reach the peer before the next poll.

Resolution and the socket listing are injected, so unit tests need neither DNS nor processes.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import socket
from collections.abc import Awaitable, Callable, Sequence
from typing import final

import psutil
import trio

from actors.ffmpeg.host_policy import (
    HostPolicy,
    IpAddress,
    first_refusal,
    parse_address,
    refusal_for_address,
    refusal_for_name,
)
from actors.ffmpeg.sources import SourceError, ValidatedSource

# host name → every address it resolves to (raises OSError when it does not resolve)
Resolver = Callable[[str], Awaitable[Sequence[IpAddress]]]
# pid → (address, port) of every remote peer of the process's inet sockets; blocking
PeerLister = Callable[[int], Sequence[tuple[IpAddress, int]]]

RESOLVE_TIMEOUT_S = 5.0
FAST_POLL_S = 0.05
FAST_WINDOW_S = 10.0
SLOW_POLL_S = 1.0


class SourceRefused(SourceError):  # noqa: N818 - reads as "the source is refused"
    """The source's host is refused by the host policy; ``str(err)`` is client-facing."""


class SourceUnresolvable(SourceRefused):
    """Refused because its name does not resolve *now* (no address to judge), not because of
    where it points: a resumed stream starts anyway (the connect-time guard still applies)."""


async def system_resolver(host: str) -> list[IpAddress]:
    """``getaddrinfo`` in a worker thread (abandoned if the caller gives up waiting)."""
    infos = await trio.to_thread.run_sync(
        lambda: socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP), abandon_on_cancel=True
    )
    addresses = (parse_address(str(info[4][0])) for info in infos)
    return [a for a in addresses if a is not None]


def this_host_addresses() -> frozenset[IpAddress]:
    """Blocking: every address of this host's interfaces (the policy refuses the service's own
    ports on them, not only on loopback)."""
    found = (
        parse_address(str(entry.address))
        for entries in psutil.net_if_addrs().values()
        for entry in entries
    )
    return frozenset(a for a in found if a is not None)


def process_peers(pid: int) -> list[tuple[IpAddress, int]]:
    """Remote peers of ``pid``'s connected inet sockets (none once it has exited). Blocking.

    Each socket of the process is borrowed with ``pidfd_getfd`` and asked ``getpeername``: cost
    grows with FFmpeg's few fds (~0.04 ms here), where reading ``/proc/net/tcp`` costs ~30 ms on a
    host with 3,000 sockets (a busy origin has more). Where the kernel or a seccomp profile refuses
    ``pidfd_getfd`` (it needs ptrace rights over the child), psutil's ``/proc`` scan is used.
    """
    global _pidfd_getfd_works  # noqa: PLW0603 - learnt once per process
    if _pidfd_getfd_works:
        try:
            return _peers_by_pidfd(pid)
        except _PidfdGetfdRefused:
            _pidfd_getfd_works = False
    return _peers_by_proc_scan(pid)


class _PidfdGetfdRefused(Exception):  # noqa: N818 - an internal signal
    pass


_SYS_PIDFD_GETFD = 438  # the same number on every Linux architecture (unified syscall table)
_libc = ctypes.CDLL(None, use_errno=True)
_pidfd_getfd_works = hasattr(os, "pidfd_open")


def _socket_fds(pid: int) -> list[int]:
    base = f"/proc/{pid}/fd"
    found = []
    for name in os.listdir(base):
        with contextlib.suppress(OSError):  # closed meanwhile
            if os.readlink(f"{base}/{name}").startswith("socket:["):
                found.append(int(name))
    return found


def _peers_by_pidfd(pid: int) -> list[tuple[IpAddress, int]]:
    try:
        pidfd = os.pidfd_open(pid)
    except (ProcessLookupError, PermissionError):
        return []
    peers = []
    try:
        try:
            fds = _socket_fds(pid)
        except OSError:  # exited meanwhile
            return []
        for fd in fds:
            borrowed = _libc.syscall(_SYS_PIDFD_GETFD, pidfd, fd, 0)
            if borrowed < 0:
                error = ctypes.get_errno()
                if error in {errno.EBADF, errno.ESRCH}:  # that fd or the process is gone
                    continue
                raise _PidfdGetfdRefused(os.strerror(error))
            try:
                borrowed_socket = socket.socket(fileno=borrowed)
            except OSError:  # the fd number was reused for something else meanwhile
                os.close(borrowed)
                continue
            with borrowed_socket as sock:  # closes our copy only
                if sock.family not in {socket.AF_INET, socket.AF_INET6}:
                    continue
                try:
                    host, port = sock.getpeername()[:2]
                except OSError:  # not connected (yet): listening, unconnected UDP, SYN sent
                    continue
            if (address := parse_address(str(host))) is not None:
                peers.append((address, int(port)))
    finally:
        os.close(pidfd)
    return peers


def _peers_by_proc_scan(pid: int) -> list[tuple[IpAddress, int]]:
    try:
        connections = psutil.Process(pid).net_connections(kind="inet")
    except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
        return []
    peers = []
    for connection in connections:
        remote = connection.raddr
        if not remote:  # listening or unconnected UDP: no peer yet
            continue
        address = parse_address(str(remote.ip))
        if address is not None:
            peers.append((address, int(remote.port)))
    return peers


@final
class SourceGuard:
    """Applies one ``HostPolicy`` to sources (admission) and to running FFmpegs (connect time)."""

    def __init__(
        self,
        policy: HostPolicy,
        *,
        resolver: Resolver = system_resolver,
        peer_lister: PeerLister = process_peers,
        resolve_timeout_s: float = RESOLVE_TIMEOUT_S,
        fast_poll_s: float = FAST_POLL_S,
        fast_window_s: float = FAST_WINDOW_S,
        slow_poll_s: float = SLOW_POLL_S,
    ) -> None:
        self.policy = policy
        self._resolve = resolver
        self._peers = peer_lister
        self.resolve_timeout_s = resolve_timeout_s
        self.fast_poll_s = fast_poll_s
        self.fast_window_s = fast_window_s
        self.slow_poll_s = slow_poll_s

    async def admit(self, source: ValidatedSource) -> None:
        """Return if ``source``'s host is allowed now; sources without a host (built by the
        service, or operator-only file protocols) pass.

        Raises:
            SourceRefused: naming the host or address and the rule.
        """
        host = source.host
        if host is None:
            return
        if (reason := refusal_for_name(host)) is not None:
            raise SourceRefused(reason)
        literal = parse_address(host)
        if literal is not None:
            addresses: Sequence[IpAddress] = [literal]
        else:
            addresses = await self._resolve_bounded(host)
        reason = first_refusal(self.policy, addresses, source.port)
        if reason is not None:
            if literal is None:
                reason = f"source host {host!r} resolves to a refused address: {reason}"
            raise SourceRefused(reason)

    async def _resolve_bounded(self, host: str) -> Sequence[IpAddress]:
        addresses: Sequence[IpAddress] = ()
        with trio.move_on_after(self.resolve_timeout_s):
            try:
                addresses = await self._resolve(host)
            except (OSError, UnicodeError):  # socket.gaierror is an OSError; IDNA errors
                addresses = ()
        if not addresses:
            raise SourceUnresolvable(f"source host {host!r} could not be resolved")
        return addresses

    def refusal_for_peers(self, pid: int) -> str | None:
        """Blocking: why ``pid``'s current connections are refused, or None."""
        for address, port in self._peers(pid):
            if (reason := refusal_for_address(self.policy, address, port)) is not None:
                return f"FFmpeg connected to a refused address: {reason}"
        return None

    async def watch(self, pid: int) -> str:
        """Return (only) when process ``pid`` has a connection the policy refuses, with why.

        Runs until cancelled otherwise; the caller cancels it when the process ends.
        """
        started = trio.current_time()
        while True:
            reason = await trio.to_thread.run_sync(self.refusal_for_peers, pid)
            if reason is not None:
                return reason
            fast = trio.current_time() - started < self.fast_window_s
            await trio.sleep(self.fast_poll_s if fast else self.slow_poll_s)
