"""LL-HLS delivery directives (``_HLS_msn``, ``_HLS_part``, ``_HLS_skip``; rfc8216bis §6.2.5)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, Literal
from urllib.parse import parse_qsl

from supervisor.http.origin_core.responses import OriginResponse, error_json

SkipMode = Literal["YES", "v2"]


@dataclass(frozen=True, slots=True)
class HlsDirectives:
    """``_HLS_msn`` / ``_HLS_part`` / ``_HLS_skip`` from a media-playlist request."""

    msn: int | None = None
    part: int | None = None
    skip: SkipMode | None = None

    @property
    def blocking(self) -> bool:
        """A blocking reload: the playlist URL names one future version, so caching it is safe."""
        return self.msn is not None


NO_DIRECTIVES: Final = HlsDirectives()


class HlsDirectiveError(ValueError):
    """A directive the spec says to answer with 400; ``field`` names the parameter."""

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    def response(self) -> OriginResponse:
        return error_json(400, "bad_request", self.message, self.field)


_DECIMAL_INTEGER_RE: Final = re.compile(r"[0-9]{1,20}", re.ASCII)
_MAX_DECIMAL_INTEGER: Final = 2**64 - 1  # rfc8216bis §4.2 decimal-integer range


def _directive_int(name: str, values: list[str]) -> int | None:
    if not values:
        return None
    if len(values) > 1:
        raise HlsDirectiveError(f"{name} given more than once", field=name)
    value = values[0]
    if _DECIMAL_INTEGER_RE.fullmatch(value) is None or int(value) > _MAX_DECIMAL_INTEGER:
        raise HlsDirectiveError(f"{name} must be a non-negative decimal integer", field=name)
    return int(value)


def parse_hls_directives(query_string: str | bytes) -> HlsDirectives:
    """Read the LL-HLS delivery directives from a raw query string (spec C3, C5).

    Any order, any extra parameters. Raises :class:`HlsDirectiveError` (→ 400) for ``_HLS_part``
    without ``_HLS_msn``, a value that is not a non-negative decimal integer, or a repeated
    directive. An unknown ``_HLS_skip`` value is ignored rather than refused: a full playlist is
    always a correct answer to a delta request, and a 400 would stop playback for a newer client.
    Checks that need the playlist (msn too far ahead, skip without CAN-SKIP-UNTIL, after ENDLIST)
    are the handler's.
    """
    if isinstance(query_string, bytes):
        query_string = query_string.decode("latin-1")
    if "_HLS_" not in query_string:
        return NO_DIRECTIVES  # the common non-blocking poll: skip parsing entirely
    found: dict[str, list[str]] = {"_HLS_msn": [], "_HLS_part": [], "_HLS_skip": []}
    for key, value in parse_qsl(query_string, keep_blank_values=True):
        if key in found:
            found[key].append(value)
    msn = _directive_int("_HLS_msn", found["_HLS_msn"])
    part = _directive_int("_HLS_part", found["_HLS_part"])
    if part is not None and msn is None:
        raise HlsDirectiveError("_HLS_part requires _HLS_msn", field="_HLS_part")
    skip_values = found["_HLS_skip"]
    skip: SkipMode | None = None
    if skip_values and skip_values[-1] in {"YES", "v2"}:
        skip = "YES" if skip_values[-1] == "YES" else "v2"
    return HlsDirectives(msn=msn, part=part, skip=skip)
