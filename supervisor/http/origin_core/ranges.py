"""Byte ranges (RFC 9110 §14): one ``Range`` → 206, unsatisfiable → 416, several → the whole
object; and the closed ``bytes=a-b`` form LL-HLS uses to address a part inside its segment."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True, slots=True)
class ByteRange:
    """A satisfiable range, inclusive at both ends, clamped to the object."""

    first: int
    last: int


@dataclass(frozen=True, slots=True)
class Unsatisfiable:
    """A valid single range that selects nothing in the object → 416."""


UNSATISFIABLE: Final = Unsatisfiable()

_RANGE_RE: Final = re.compile(r"([A-Za-z]+)=([0-9]*)-([0-9]*)", re.ASCII)
# Positions are capped before int(): Python refuses int() on strings over 4300 digits, and any
# position past this is past the end of any object we serve anyway.
_POS_CAP_DIGITS: Final = 18
_POS_CAP: Final = 10**_POS_CAP_DIGITS


def _position(digits: str) -> int:
    return int(digits) if len(digits) <= _POS_CAP_DIGITS else _POS_CAP


def parse_range(header: str | None, length: int) -> ByteRange | Unsatisfiable | None:
    """Evaluate a ``Range`` field against an object of ``length`` bytes (RFC 9110 §14.1–14.2).

    Returns None when the field must be ignored (absent, malformed, another unit, several ranges,
    ``last < first``), which means a 200 with the whole object. Supports ``a-b``, ``a-`` and ``-n``;
    ``last`` past the end is clamped; a suffix longer than the object selects all of it.
    """
    if header is None:
        return None
    m = _RANGE_RE.fullmatch(header.strip())
    if m is None or m.group(1).lower() != "bytes":
        return None  # malformed, a list of ranges, or a unit we do not serve
    first_s, last_s = m.group(2), m.group(3)
    if not first_s:
        if not last_s:
            return None  # "bytes=-" is not a range
        suffix = _position(last_s)
        if suffix == 0 or length == 0:
            return UNSATISFIABLE
        return ByteRange(max(0, length - suffix), length - 1)
    first = _position(first_s)
    if last_s:
        last = _position(last_s)
        if last < first:
            return None  # invalid int-range → the whole field is invalid → ignore
    else:
        last = length - 1
    if first >= length:
        return UNSATISFIABLE
    return ByteRange(first, min(last, length - 1))


_CLOSED_RANGE: Final = re.compile(r"\s*bytes\s*=\s*(\d{1,15})-(\d{1,15})\s*", re.ASCII)


def closed_range(header: str | None) -> tuple[int, int] | None:
    """``bytes=a-b`` with both ends (how LL-HLS addresses a part inside its segment), or None."""
    if header is None:
        return None
    match = _CLOSED_RANGE.fullmatch(header)
    if match is None:
        return None
    first, last = int(match.group(1)), int(match.group(2))
    return (first, last) if first <= last else None
