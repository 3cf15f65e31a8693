"""The source host policy: pure address classification (issue 11, defect 3)."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from actors.ffmpeg.host_policy import (
    METADATA_ADDRESSES,
    HostPolicy,
    first_refusal,
    parse_address,
    parse_networks,
    refusal_for_address,
    refusal_for_name,
)

DEFAULT = HostPolicy(own_ports=frozenset({8083, 8084}))
STRICT = HostPolicy(deny_loopback=True, deny_private=True, own_ports=frozenset({8083}))


def ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    address = parse_address(text)
    assert address is not None
    return address


@pytest.mark.parametrize(
    ("address", "rule"),
    [
        ("169.254.169.254", "cloud metadata"),
        ("169.254.170.2", "cloud metadata"),
        ("fd00:ec2::254", "cloud metadata"),
        ("100.100.100.200", "cloud metadata"),
        ("168.63.129.16", "cloud metadata"),
        ("::ffff:169.254.169.254", "cloud metadata"),  # IPv4-mapped
        ("64:ff9b::a9fe:a9fe", "cloud metadata"),  # NAT64 of 169.254.169.254
        ("169.254.1.1", "link-local"),
        ("fe80::1", "link-local"),
        ("[fe80::1%eth0]", "link-local"),
    ],
)
def test_metadata_and_link_local_are_refused_by_default(address: str, rule: str) -> None:
    reason = refusal_for_address(DEFAULT, ip(address))
    assert reason is not None
    assert rule in reason


@pytest.mark.parametrize(
    "address", ["127.0.0.1", "::1", "10.1.2.3", "172.16.0.9", "192.168.1.10", "100.64.0.1",
                "fd12::1", "93.184.216.34", "2001:db8::1", "239.0.0.1"]
)  # fmt: skip
def test_loopback_private_and_public_are_allowed_by_default(address: str) -> None:
    assert refusal_for_address(DEFAULT, ip(address), 1935) is None


@pytest.mark.parametrize(
    ("address", "rule"),
    [
        ("127.0.0.1", "loopback"),
        ("127.8.9.10", "loopback"),
        ("::1", "loopback"),
        ("0.0.0.0", "loopback"),  # connect() to 0.0.0.0 is this host
        ("::ffff:127.0.0.1", "loopback"),
        ("10.1.2.3", "private"),
        ("172.31.255.255", "private"),
        ("192.168.0.1", "private"),
        ("100.127.0.1", "private"),
        ("fd12:3456::1", "private"),
    ],
)
def test_loopback_and_private_are_deniable(address: str, rule: str) -> None:
    reason = refusal_for_address(STRICT, ip(address), 1935)
    assert reason is not None
    assert rule in reason


def test_this_hosts_own_addresses_count_as_loopback_when_denied() -> None:
    policy = HostPolicy(deny_loopback=True, local_addresses=frozenset({ip("192.0.2.10")}))
    assert "loopback" in (refusal_for_address(policy, ip("192.0.2.10")) or "")
    assert refusal_for_address(policy, ip("192.0.2.11")) is None


@pytest.mark.parametrize("address", ["127.0.0.1", "::1", "0.0.0.0", "192.0.2.10"])
def test_the_services_own_ports_are_refused_on_this_host(address: str) -> None:
    policy = HostPolicy(
        own_ports=frozenset({8083, 8084}), local_addresses=frozenset({ip("192.0.2.10")})
    )
    for port in (8083, 8084):
        assert "own listener" in (refusal_for_address(policy, ip(address), port) or "")
    assert refusal_for_address(policy, ip(address), 8085) is None
    # the same port on another machine is someone else's service
    assert refusal_for_address(policy, ip("198.51.100.1"), 8083) is None


def test_operator_deny_and_allow_networks() -> None:
    policy = HostPolicy(
        deny_networks=parse_networks("203.0.113.0/24, 2001:db8::/32"),
        allow_networks=parse_networks("169.254.10.0/24,203.0.113.7"),
        own_ports=frozenset({8083}),
    )
    assert "operator denies" in (refusal_for_address(policy, ip("203.0.113.8")) or "")
    assert "operator denies" in (refusal_for_address(policy, ip("2001:db8::5")) or "")
    assert refusal_for_address(policy, ip("203.0.113.7")) is None  # allow wins over deny
    assert refusal_for_address(policy, ip("169.254.10.20")) is None  # a link-local camera
    assert "link-local" in (refusal_for_address(policy, ip("169.254.11.20")) or "")


def test_allow_networks_never_open_metadata_or_own_ports() -> None:
    policy = HostPolicy(
        allow_networks=parse_networks("0.0.0.0/0,::/0"), own_ports=frozenset({8083})
    )
    for address in METADATA_ADDRESSES:
        assert "cloud metadata" in (refusal_for_address(policy, address) or "")
    assert "own listener" in (refusal_for_address(policy, ip("127.0.0.1"), 8083) or "")


@given(st.integers(min_value=0, max_value=2**16 - 1), st.integers(0, 65535))
def test_every_link_local_ipv4_is_refused_whatever_its_spelling(low: int, port: int) -> None:
    v4 = ipaddress.IPv4Address((169 << 24) | (254 << 16) | low)
    for spelling in (
        v4,
        ipaddress.IPv6Address(f"::ffff:{v4}"),
        ipaddress.IPv6Address(f"64:ff9b::{v4}"),
    ):
        assert refusal_for_address(DEFAULT, spelling, port) is not None


@given(st.ip_addresses(), st.booleans(), st.booleans())
def test_flags_only_ever_add_refusals(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address, loopback: bool, private: bool
) -> None:
    loose = refusal_for_address(DEFAULT, address, 443)
    tighter = HostPolicy(deny_loopback=loopback, deny_private=private, own_ports=DEFAULT.own_ports)
    if loose is not None:
        assert refusal_for_address(tighter, address, 443) is not None


def test_first_refusal_checks_every_resolved_address() -> None:
    addresses = [ip("93.184.216.34"), ip("169.254.169.254")]
    assert "cloud metadata" in (first_refusal(DEFAULT, addresses, 80) or "")
    assert first_refusal(DEFAULT, addresses[:1], 80) is None


@pytest.mark.parametrize(
    "name", ["metadata.google.internal", "METADATA.google.internal.", "metadata", "metadata.goog"]
)
def test_metadata_names_are_refused_before_resolution(name: str) -> None:
    assert "cloud metadata" in (refusal_for_name(name) or "")


def test_ordinary_names_are_left_to_resolution() -> None:
    assert refusal_for_name("media.example") is None


def test_parse_networks() -> None:
    assert parse_networks(" 10.0.0.0/8, ,fd00::/8,192.0.2.7 ") == (
        ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("fd00::/8"),
        ipaddress.ip_network("192.0.2.7/32"),
    )
    assert parse_networks("") == ()
    assert parse_networks("10.1.2.3/8") == (ipaddress.ip_network("10.0.0.0/8"),)
    with pytest.raises(ValueError, match="'nope' is not an IP address or CIDR network"):
        parse_networks("10.0.0.0/8,nope")


@pytest.mark.parametrize("text", ["media.example", "", "1.2.3", "[::1"])
def test_parse_address_rejects_names(text: str) -> None:
    assert parse_address(text) is None
