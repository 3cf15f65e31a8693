"""Pure: registry values to and from the JSON text both backends store.

The spec is stored whole, source URL credentials included (a resumed stream must reconnect with
them); nothing here logs. Decoding is strict: a field of the wrong type is a
:class:`CorruptRecord`, so a damaged row is reported as such instead of becoming a stream that
crashes later.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any, TypeVar

from actors.packager.timeline import TimelinePosition
from actors.status import StreamSpec
from supervisor.registry.interface import JsonValue, RegistryError

_T = TypeVar("_T")


class CorruptRecord(RegistryError):  # noqa: N818
    """A stored value cannot be decoded (hand-edited, truncated, another program's data)."""


def encode_spec(spec: StreamSpec) -> str:
    return json.dumps(
        {
            "stream_id": spec.stream_id,
            "source_url": spec.source_url,
            "qualities": list(spec.qualities),
            "enable_hls": spec.enable_hls,
            "enable_dash": spec.enable_dash,
            "low_latency": spec.low_latency,
        },
        separators=(",", ":"),
    )


def decode_spec(text: str) -> StreamSpec:
    raw = _object(text, "spec")
    qualities = raw.get("qualities")
    if not isinstance(qualities, list) or not all(isinstance(q, str) for q in qualities):
        raise CorruptRecord("spec.qualities must be a list of strings")
    return StreamSpec(
        stream_id=_typed(raw, "stream_id", str, "spec"),
        source_url=_typed(raw, "source_url", str, "spec"),
        qualities=tuple(qualities),
        enable_hls=_typed(raw, "enable_hls", bool, "spec"),
        enable_dash=_typed(raw, "enable_dash", bool, "spec"),
        low_latency=_typed(raw, "low_latency", bool, "spec"),
    )


def encode_position(position: TimelinePosition) -> str:
    return json.dumps(
        {
            "availability_start_unix_s": position.availability_start_unix_s,
            "encoder_epoch": position.encoder_epoch,
            "last_number": position.last_number,
            "media_end_s": position.media_end_s,
            "discontinuities": position.discontinuities,
        },
        separators=(",", ":"),
    )


def decode_position(text: str) -> TimelinePosition:
    raw = _object(text, "position")
    position = TimelinePosition(
        availability_start_unix_s=_number(raw, "availability_start_unix_s"),
        encoder_epoch=_typed(raw, "encoder_epoch", int, "position"),
        last_number=_typed(raw, "last_number", int, "position"),
        media_end_s=_number(raw, "media_end_s"),
        discontinuities=_typed(raw, "discontinuities", int, "position"),
    )
    if position.last_number < 0 or position.encoder_epoch < 0 or position.discontinuities < 0:
        raise CorruptRecord("position: negative numbers")
    return position


def encode_ingest(ingest: Mapping[str, JsonValue] | None) -> str | None:
    return None if ingest is None else json.dumps(dict(ingest), separators=(",", ":"))


def decode_ingest(text: str | None) -> dict[str, JsonValue] | None:
    if text is None or text == "":
        return None
    raw: dict[str, JsonValue] = _object(text, "ingest")
    return raw


def _object(text: str, what: str) -> dict[str, Any]:
    try:
        raw = json.loads(text)
    except (ValueError, TypeError) as error:
        raise CorruptRecord(f"{what} is not JSON: {error}") from None
    if not isinstance(raw, dict):
        raise CorruptRecord(f"{what} is not a JSON object")
    return raw


def _typed(raw: Mapping[str, Any], key: str, kind: type[_T], what: str) -> _T:
    value = raw.get(key)
    # bool is an int in Python: an int field must not accept true/false
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise CorruptRecord(f"{what}.{key} must be {kind.__name__}")
    return value


def _number(raw: Mapping[str, Any], key: str) -> float:
    value = raw.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise CorruptRecord(f"position.{key} must be a finite number")
    return float(value)
