"""Pure: registry values to and from the JSON text both backends store.

The spec is stored whole, source URL credentials included (a resumed stream must reconnect with
them), and so is a push stream's ingest (its key's hash; an SRT stream's passphrase itself, which
libsrt needs to listen again); nothing here logs. Decoding is strict: a field of the wrong type is a
:class:`CorruptRecord`, so a damaged row is reported as such instead of becoming a stream that
crashes later.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from actors.ingest.publisher import IngestProtocol, StoredKey
from actors.packager.timeline import TimelinePosition
from actors.status import StreamSpec
from supervisor.registry.interface import JsonValue, RegistryError

_T = TypeVar("_T")
_SHA256_BYTES = 32


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
            # push streams only (records written before push streams were durable lack them)
            **({"ingest": spec.ingest} if spec.ingest is not None else {}),
            **({"srt_latency_ms": spec.srt_latency_ms} if spec.srt_latency_ms is not None else {}),
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
        # absent in records written before push streams existed
        ingest=_optional(raw, "ingest", str, "spec"),
        srt_latency_ms=_optional(raw, "srt_latency_ms", int, "spec"),
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


@dataclass(frozen=True, slots=True)
class PushIngest:
    """What a push stream keeps in its record's ``ingest`` dict."""

    protocol: IngestProtocol
    key: StoredKey  # its repr shows nothing of the key
    srt_port: int | None = None  # SRT: the port publishers were given (tried first on resume)


def encode_push_ingest(push: PushIngest) -> dict[str, JsonValue]:
    ingest: dict[str, JsonValue] = {
        "protocol": push.protocol.value,
        "key_sha256": push.key.key_sha256.hex(),
    }
    if push.key.srt_passphrase is not None:
        ingest["srt_passphrase"] = push.key.srt_passphrase
    if push.srt_port is not None:
        ingest["srt_port"] = push.srt_port
    return ingest


def decode_push_ingest(ingest: Mapping[str, JsonValue]) -> PushIngest:
    protocol_name = _typed(ingest, "protocol", str, "ingest")
    try:
        protocol = IngestProtocol(protocol_name)
        key_sha256 = bytes.fromhex(_typed(ingest, "key_sha256", str, "ingest"))
    except ValueError:
        raise CorruptRecord("ingest.protocol or ingest.key_sha256 is not valid") from None
    srt_port = _optional(ingest, "srt_port", int, "ingest")
    if srt_port is not None and not 0 < srt_port < 65536:
        raise CorruptRecord("ingest.srt_port is not a port")
    if len(key_sha256) != _SHA256_BYTES:
        raise CorruptRecord("ingest.key_sha256 is not a SHA-256 digest")
    passphrase = _optional(ingest, "srt_passphrase", str, "ingest")
    if (protocol is IngestProtocol.SRT) != (passphrase is not None):
        raise CorruptRecord("ingest.srt_passphrase: an SRT stream has one, no other stream has")
    return PushIngest(protocol, StoredKey(key_sha256, passphrase), srt_port)


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


def _optional(raw: Mapping[str, Any], key: str, kind: type[_T], what: str) -> _T | None:
    return None if raw.get(key) is None else _typed(raw, key, kind, what)


def _number(raw: Mapping[str, Any], key: str) -> float:
    value = raw.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise CorruptRecord(f"position.{key} must be a finite number")
    return float(value)
