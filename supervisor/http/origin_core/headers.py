"""Request and response header shapes shared by the origin core."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

HeaderPairs = tuple[tuple[str, str], ...]


class RequestHeaders(Protocol):
    """What we need from the framework's request headers: a case-insensitive ``get``.

    werkzeug/Quart ``Headers`` fits; so does a dict with lowercase keys (see :func:`lower_headers`).
    Names are always looked up in lowercase.
    """

    def get(self, key: str, /) -> str | None: ...


def lower_headers(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Fold raw header pairs into a lowercase-keyed dict; repeats are joined with ", ".

    Joining is what RFC 9110 §5.3 allows for list-valued fields (If-None-Match, Accept-Encoding);
    a repeated Range becomes a multi-range value, which is then ignored, as it should be.
    """
    out: dict[str, str] = {}
    for name, value in pairs:
        key = name.lower()
        out[key] = f"{out[key]}, {value}" if key in out else value
    return out
