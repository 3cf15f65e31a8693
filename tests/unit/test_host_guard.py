"""The host guard: admission with an injected resolver, the connect-time watch with injected peers
(issue 11, defect 3). Timers under the autojump clock, exact virtual times."""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Callable, Sequence

import pytest
import trio

from actors.ffmpeg.host_guard import (
    SourceGuard,
    SourceRefused,
    _peers_by_pidfd,
    _peers_by_proc_scan,
    process_peers,
    system_resolver,
    this_host_addresses,
)
from actors.ffmpeg.host_policy import HostPolicy, IpAddress
from actors.ffmpeg.sources import (
    DEFAULT_ALLOWED_PROTOCOLS,
    synthetic_source,
    validate_source_url,
)

ALLOWED = frozenset(DEFAULT_ALLOWED_PROTOCOLS)
POLICY = HostPolicy(own_ports=frozenset({8083, 8084}))


def addresses(*texts: str) -> list[IpAddress]:
    return [ipaddress.ip_address(t) for t in texts]


class FakeResolver:
    """Answers from a table; remembers what it was asked."""

    def __init__(self, table: dict[str, list[IpAddress]], delay_s: float = 0.0) -> None:
        self.table = table
        self.delay_s = delay_s
        self.asked: list[str] = []

    async def __call__(self, host: str) -> Sequence[IpAddress]:
        self.asked.append(host)
        await trio.sleep(self.delay_s)
        if host not in self.table:
            raise OSError(-2, "Name or service not known")
        return self.table[host]


def guard(resolver: FakeResolver, **options: float) -> SourceGuard:
    return SourceGuard(POLICY, resolver=resolver, peer_lister=lambda pid: [], **options)


async def admit(g: SourceGuard, url: str) -> None:
    await g.admit(validate_source_url(url, ALLOWED))


async def test_a_name_resolving_to_metadata_is_refused() -> None:
    resolver = FakeResolver({"sneaky.example": addresses("93.184.216.34", "169.254.169.254")})
    with pytest.raises(SourceRefused) as caught:
        await admit(guard(resolver), "http://sneaky.example/live.m3u8")
    assert str(caught.value) == (
        "source host 'sneaky.example' resolves to a refused address: "
        "source address 169.254.169.254 is a cloud metadata service"
    )
    assert resolver.asked == ["sneaky.example"]


@pytest.mark.parametrize(
    ("url", "rule"),
    [
        ("http://169.254.169.254/latest/meta-data/", "cloud metadata"),
        ("http://[fd00:ec2::254]/latest/", "cloud metadata"),
        ("http://[::ffff:169.254.169.254]/", "cloud metadata"),
        ("rtsp://169.254.3.4/cam", "link-local"),
        ("http://metadata.google.internal/computeMetadata/v1/", "cloud metadata"),
        ("http://127.0.0.1:8083/streams", "own listener"),
        ("http://[::1]:8084/x/playlist.m3u8", "own listener"),
    ],
)
async def test_literals_and_metadata_names_are_refused_without_resolving(
    url: str, rule: str
) -> None:
    resolver = FakeResolver({})
    with pytest.raises(SourceRefused, match=rule):
        await admit(guard(resolver), url)
    assert resolver.asked == []


async def test_allowed_sources_pass() -> None:
    resolver = FakeResolver({"media.example": addresses("10.0.0.5"), "localhost": addresses("::1")})
    g = guard(resolver)
    await admit(g, "rtmp://media.example/live/cam1")
    await admit(g, "http://localhost:8080/live.m3u8")
    await admit(g, "srt://127.0.0.1:9000?mode=caller")
    await g.admit(synthetic_source("testsrc2"))  # built by the service: no host
    assert resolver.asked == ["media.example", "localhost"]


async def test_deny_loopback_refuses_a_name_that_resolves_to_this_host() -> None:
    resolver = FakeResolver({"localhost": addresses("127.0.0.1", "::1")})
    g = SourceGuard(HostPolicy(deny_loopback=True), resolver=resolver)
    with pytest.raises(SourceRefused, match="'localhost' resolves to a refused address"):
        await admit(g, "http://localhost:8080/live.m3u8")


async def test_an_unresolvable_host_is_refused() -> None:
    with pytest.raises(SourceRefused, match=r"'nowhere\.example' could not be resolved"):
        await admit(guard(FakeResolver({})), "rtmp://nowhere.example/live")


async def test_resolution_is_bounded_in_time(autojump_clock: trio.abc.Clock) -> None:
    slow = FakeResolver({"slow.example": addresses("10.0.0.5")}, delay_s=60.0)
    with pytest.raises(SourceRefused, match="could not be resolved"):
        await admit(guard(slow, resolve_timeout_s=5.0), "rtmp://slow.example/live")
    assert trio.current_time() == 5.0


async def test_watch_reports_the_first_refused_peer_at_the_poll_that_sees_it(
    autojump_clock: trio.abc.Clock,
) -> None:
    polls: list[float] = []

    def peers(pid: int) -> list[tuple[IpAddress, int]]:
        assert pid == 4242
        polls.append(autojump_clock.current_time())  # in a worker thread: ask the clock
        # a redirect: the allowed origin first, the metadata service from the fourth poll on
        allowed = (ipaddress.ip_address("10.0.0.5"), 80)
        if len(polls) < 4:
            return [allowed]
        return [allowed, (ipaddress.ip_address("169.254.169.254"), 80)]

    g = SourceGuard(POLICY, peer_lister=peers, fast_poll_s=0.05, fast_window_s=10.0)
    reason = await g.watch(4242)
    assert reason == (
        "FFmpeg connected to a refused address: "
        "source address 169.254.169.254 is a cloud metadata service"
    )
    assert polls == pytest.approx([0.0, 0.05, 0.1, 0.15])


async def test_watch_slows_down_after_the_fast_window(autojump_clock: trio.abc.Clock) -> None:
    polls: list[float] = []

    def peers(pid: int) -> list[tuple[IpAddress, int]]:
        polls.append(autojump_clock.current_time())
        if polls[-1] >= 4.0:
            return [(ipaddress.ip_address("127.0.0.1"), 8084)]  # our own origin port
        return []

    g = SourceGuard(POLICY, peer_lister=peers, fast_poll_s=0.5, fast_window_s=2.0, slow_poll_s=1.0)
    reason = await g.watch(1)
    assert "own listener" in reason
    assert polls == [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0]


def test_process_peers_of_a_process_that_is_gone_is_empty() -> None:
    assert process_peers(2**22 + 12345) == []


@pytest.mark.parametrize("lister", [process_peers, _peers_by_pidfd, _peers_by_proc_scan])
def test_process_peers_lists_the_remote_end_of_real_sockets(
    lister: Callable[[int], list[tuple[IpAddress, int]]],
) -> None:
    fds_before = len(os.listdir("/proc/self/fd"))
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port)):
            peers = lister(os.getpid())
    # our connection seen from both ends; the listening socket has no peer and is not listed
    assert (ipaddress.ip_address("127.0.0.1"), port) in peers
    assert all(p != 0 for _, p in peers)
    assert len(os.listdir("/proc/self/fd")) == fds_before  # every borrowed fd closed


def test_this_host_addresses_include_loopback() -> None:
    assert ipaddress.ip_address("127.0.0.1") in this_host_addresses()


async def test_the_system_resolver_answers_from_the_hosts_file() -> None:
    found = await system_resolver("localhost")  # /etc/hosts: no DNS traffic
    assert set(found) & {ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1")}
