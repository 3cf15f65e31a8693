"""Which hosts a source may reach: the operator's source host policy, as pure functions.

A source URL is a request to make *this machine* open a connection, so without a policy any client
can aim FFmpeg at the cloud metadata service (``http://169.254.169.254/…`` hands out credentials
on most clouds), at link-local devices, or at the service's own ports. The policy classifies an
address and says why it is refused:

1. cloud-metadata addresses and names: always refused;
2. the service's own ports on any address of this host: always refused (a stream must not pull
   from its own API or origin);
3. ``allow_networks`` (``SOURCE_ALLOW_NETWORKS``): operator exceptions to the rules below, e.g. a
   camera on a link-local address;
4. ``deny_networks`` (``SOURCE_DENY_NETWORKS``): operator's extra refusals;
5. link-local (169.254.0.0/16, fe80::/10): refused;
6. loopback / "this host" (127.0.0.0/8, ::1, 0.0.0.0/8, ::): allowed unless ``deny_loopback``;
7. private (RFC 1918, CGNAT 100.64.0.0/10, ULA fc00::/7): allowed unless ``deny_private`` — a
   media server on the same network is the common case.

IPv4-mapped (``::ffff:a.b.c.d``) and NAT64 (``64:ff9b::a.b.c.d``) addresses are judged as the IPv4
address they carry. Pure: no sockets, no DNS (``host_guard`` resolves and calls this).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TypeAlias

IpAddress: TypeAlias = ipaddress.IPv4Address | ipaddress.IPv6Address
IpNetwork: TypeAlias = ipaddress.IPv4Network | ipaddress.IPv6Network

# Instance metadata endpoints: AWS/GCP/Azure/OCI/DigitalOcean (169.254.169.254), AWS over IPv6
# (fd00:ec2::254), Alibaba (100.100.100.200), Azure's wire server (168.63.129.16), AWS ECS task
# metadata (169.254.170.2) and Oracle's legacy 192.0.0.192.
METADATA_ADDRESSES: frozenset[IpAddress] = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",
        "169.254.170.2",
        "fd00:ec2::254",
        "100.100.100.200",
        "168.63.129.16",
        "192.0.0.192",
    )
)
# Names that resolve to a metadata service inside a cloud (refused before any resolution, so a
# resolver that answers differently here than inside the VM does not matter).
METADATA_NAMES: frozenset[str] = frozenset(
    {
        "metadata",
        "metadata.google.internal",
        "metadata.goog",
        "instance-data",
        "instance-data.ec2.internal",
        "metadata.tencentyun.com",
    }
)
LINK_LOCAL_NETWORKS: tuple[IpNetwork, ...] = (
    ipaddress.ip_network("169.254.0.0/16"),
    ipaddress.ip_network("fe80::/10"),
)
LOOPBACK_NETWORKS: tuple[IpNetwork, ...] = (
    ipaddress.ip_network("127.0.0.0/8"),
    ipaddress.ip_network("0.0.0.0/8"),  # connect() to 0.0.0.0 reaches this host on Linux
    ipaddress.ip_network("::1/128"),
    ipaddress.ip_network("::/128"),
)
PRIVATE_NETWORKS: tuple[IpNetwork, ...] = (
    ipaddress.ip_network("10.0.0.0/8"),
    ipaddress.ip_network("172.16.0.0/12"),
    ipaddress.ip_network("192.168.0.0/16"),
    ipaddress.ip_network("100.64.0.0/10"),
    ipaddress.ip_network("fc00::/7"),
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


@dataclass(frozen=True, slots=True, kw_only=True)
class HostPolicy:
    """The operator's rules (from settings) plus what the service knows about itself."""

    deny_loopback: bool = False
    deny_private: bool = False
    deny_networks: tuple[IpNetwork, ...] = ()
    allow_networks: tuple[IpNetwork, ...] = ()
    own_ports: frozenset[int] = frozenset()  # the API and origin listeners
    # this host's interface addresses: the own ports are refused on them too, not only on loopback
    local_addresses: frozenset[IpAddress] = frozenset()


def parse_networks(raw: str) -> tuple[IpNetwork, ...]:
    """``"10.0.0.0/8, fd00::/8, 192.0.2.7"`` → networks (a bare address is a /32 or /128).

    Raises:
        ValueError: naming the first entry that is not an address or CIDR network.
    """
    networks: list[IpNetwork] = []
    for item in (part.strip() for part in raw.split(",")):
        if not item:
            continue
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ValueError(f"{item!r} is not an IP address or CIDR network") from None
    return tuple(networks)


def parse_address(text: str) -> IpAddress | None:
    """An address literal (``[::1]`` brackets and an IPv6 ``%zone`` allowed), else None."""
    text = text.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    text = text.split("%", 1)[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def effective_address(address: IpAddress) -> IpAddress:
    """The IPv4 address an IPv4-mapped or NAT64 IPv6 address really reaches."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address in _NAT64:
            return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address


def _within(address: IpAddress, networks: Iterable[IpNetwork]) -> bool:
    return any(address.version == n.version and address in n for n in networks)


def is_local(policy: HostPolicy, address: IpAddress) -> bool:
    """Does a connection to ``address`` reach this host?"""
    address = effective_address(address)
    local = {effective_address(a) for a in policy.local_addresses}
    return _within(address, LOOPBACK_NETWORKS) or address in local


def refusal_for_name(host: str) -> str | None:
    """Why a host *name* is refused before it is even resolved, or None."""
    name = host.strip().rstrip(".").lower()
    if name in METADATA_NAMES:
        return f"source host {host!r} is a cloud metadata service"
    return None


def refusal_for_address(
    policy: HostPolicy, address: IpAddress, port: int | None = None
) -> str | None:
    """Why a connection to ``address`` (``port`` when known) is refused, or None if allowed.

    The reason is client-facing: it names the address and the rule, never a setting's value.
    """
    shown = str(address)
    address = effective_address(address)
    if address in METADATA_ADDRESSES:
        return f"source address {shown} is a cloud metadata service"
    if port is not None and port in policy.own_ports and is_local(policy, address):
        return f"source address {shown} port {port} is this service's own listener"
    if _within(address, policy.allow_networks):
        return None
    if _within(address, policy.deny_networks):
        return f"source address {shown} is in a network the operator denies"
    if _within(address, LINK_LOCAL_NETWORKS):
        return f"source address {shown} is link-local"
    if policy.deny_loopback and is_local(policy, address):
        return f"source address {shown} is this host (loopback), denied by the operator"
    if policy.deny_private and _within(address, PRIVATE_NETWORKS):
        return f"source address {shown} is a private address, denied by the operator"
    return None


def first_refusal(
    policy: HostPolicy, addresses: Iterable[IpAddress], port: int | None
) -> str | None:
    """The first refusal among every address a name resolved to: FFmpeg may use any of them."""
    for address in addresses:
        if (reason := refusal_for_address(policy, address, port)) is not None:
            return reason
    return None
