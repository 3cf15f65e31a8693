"""The ``--origin`` URL of the edge: plain ``http://host[:port]``, nothing else."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass(frozen=True, slots=True)
class HostPort:
    host: str
    port: int

    @property
    def authority(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


class BadOriginError(ValueError):
    """The --origin URL is not ``http://host[:port]``."""


def parse_origin(url: str) -> HostPort:
    parts = urlsplit(url)
    if parts.scheme != "http":
        raise BadOriginError(f"--origin must be an http:// URL, got {url!r}")
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        raise BadOriginError(f"--origin must be http://host[:port] only, got {url!r}")
    try:
        port = parts.port or 80
    except ValueError as error:
        raise BadOriginError(f"--origin has a bad port: {url!r}") from error
    if not parts.hostname:
        raise BadOriginError(f"--origin has no host: {url!r}")
    return HostPort(parts.hostname, port)
