"""Pure validation of a stream request (the JSON body of ``POST /streams``).

Returns a ``StreamSpec`` or raises ``RequestInvalid`` naming the field, so the HTTP layer can
answer ``{"error": {"code", "message", "field"}}`` with a 422 and nothing already running changes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from actors.ffmpeg.command import LADDER
from actors.ffmpeg.sources import SourceError, ValidatedSource, validate_source_url
from actors.packager.layout import STREAM_ID_PATTERN, is_valid_stream_id
from actors.status import QUALITY_NAMES, StreamSpec

KNOWN_FIELDS = (
    "stream_id",
    "source_url",
    "ingest",
    "srt_latency_ms",
    "qualities",
    "enable_hls",
    "enable_dash",
    "low_latency",
)
MAX_SOURCE_URL_CHARS = 2048
INGEST_PROTOCOLS = ("whip", "rtmp", "srt")
SRT_LATENCY_RANGE_MS = (20, 8000)


class RequestInvalid(ValueError):  # noqa: N818 - reads as "the request is invalid"
    def __init__(self, field: str | None, message: str, code: str = "invalid_request") -> None:
        super().__init__(message)
        self.field = field
        self.message = message
        self.code = code


def known_qualities() -> tuple[str, ...]:
    return tuple(q for q in (*QUALITY_NAMES, "source") if q in LADDER)


def parse_stream_request(
    body: Any, *, allowed_protocols: frozenset[str], default_low_latency: bool
) -> tuple[StreamSpec, ValidatedSource | None]:
    """The spec and, for a pull stream, its validated source (None for a push stream)."""
    if not isinstance(body, Mapping):
        raise RequestInvalid(None, "the request body must be a JSON object", "invalid_body")
    unknown = sorted(str(k) for k in body if k not in KNOWN_FIELDS)
    if unknown:
        raise RequestInvalid(unknown[0], f"unknown field {unknown[0]!r}", "unknown_field")

    stream_id = body.get("stream_id")
    if not isinstance(stream_id, str) or not stream_id:
        raise RequestInvalid("stream_id", "stream_id is required and must be a string")
    if not is_valid_stream_id(stream_id):
        raise RequestInvalid(
            "stream_id",
            f"stream_id must match {STREAM_ID_PATTERN.pattern} "
            "(letters, digits, '-' and '_', at most 64 characters)",
        )

    ingest, srt_latency_ms = _ingest(body)
    source: ValidatedSource | None = None
    source_url = ""
    if ingest is None:
        raw_url = body.get("source_url")
        if not isinstance(raw_url, str) or not raw_url:
            raise RequestInvalid("source_url", "source_url is required and must be a string")
        source_url = raw_url
        if len(source_url) > MAX_SOURCE_URL_CHARS:
            raise RequestInvalid(
                "source_url", f"source_url is longer than {MAX_SOURCE_URL_CHARS}"
            )
        try:
            source = validate_source_url(source_url, allowed_protocols)
        except SourceError as error:
            raise RequestInvalid("source_url", str(error), "source_refused") from None

    qualities = _qualities(body.get("qualities"))
    flags = {}
    for name, default in (
        ("enable_hls", True),
        ("enable_dash", True),
        ("low_latency", default_low_latency),
    ):
        value = body.get(name, default)
        if value is None:
            value = default
        if not isinstance(value, bool):
            raise RequestInvalid(name, f"{name} must be true or false")
        flags[name] = value
    if not flags["enable_hls"] and not flags["enable_dash"]:
        raise RequestInvalid(
            "enable_hls", "at least one of enable_hls and enable_dash must be true"
        )
    spec = StreamSpec(
        stream_id=stream_id,
        source_url=source_url,
        qualities=qualities,
        enable_hls=flags["enable_hls"],
        enable_dash=flags["enable_dash"],
        low_latency=flags["low_latency"],
        ingest=ingest,
        srt_latency_ms=srt_latency_ms,
    )
    return spec, source


def _ingest(body: Mapping[str, Any]) -> tuple[str | None, int | None]:
    """(push protocol or None, SRT latency or None); exactly one of source_url and ingest."""
    has_source = body.get("source_url") is not None
    ingest = body.get("ingest")
    if ingest is None:
        if not has_source:
            raise RequestInvalid(
                "source_url",
                "give either source_url (a source to pull) or ingest "
                f"({', '.join(INGEST_PROTOCOLS)}: publishers push to the service)",
                "source_or_ingest_required",
            )
        if body.get("srt_latency_ms") is not None:
            raise RequestInvalid("srt_latency_ms", "srt_latency_ms needs \"ingest\": \"srt\"")
        return None, None
    if has_source:
        raise RequestInvalid(
            "ingest",
            "give either source_url or ingest, not both (a stream either pulls or is pushed to)",
            "source_and_ingest",
        )
    if not isinstance(ingest, str) or ingest not in INGEST_PROTOCOLS:
        raise RequestInvalid("ingest", f"ingest must be one of {', '.join(INGEST_PROTOCOLS)}")
    latency = body.get("srt_latency_ms")
    if latency is None:
        return ingest, None
    low, high = SRT_LATENCY_RANGE_MS
    if ingest != "srt":
        raise RequestInvalid("srt_latency_ms", "srt_latency_ms needs \"ingest\": \"srt\"")
    if isinstance(latency, bool) or not isinstance(latency, int) or not low <= latency <= high:
        raise RequestInvalid(
            "srt_latency_ms", f"srt_latency_ms must be an integer from {low} to {high}"
        )
    return ingest, latency


def _qualities(raw: Any) -> tuple[str, ...]:
    known = known_qualities()
    if raw is None:
        return QUALITY_NAMES
    if not isinstance(raw, list) or not raw:
        raise RequestInvalid("qualities", "qualities must be a non-empty list of strings")
    seen: list[str] = []
    for item in raw:
        if not isinstance(item, str) or item not in known:
            raise RequestInvalid(
                "qualities", f"unknown quality {item!r}; known: {', '.join(known)}"
            )
        if item not in seen:
            seen.append(item)
    if "source" in seen and len(seen) > 1:
        raise RequestInvalid("qualities", "'source' (passthrough) cannot be combined with others")
    return tuple(sorted(seen, key=known.index))
