"""Objects and paths: which stream-relative paths the origin serves, taken apart (no path ever
leaves the stream folder: only names ``layout`` can make pass)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from actors.packager.layout import (
    DASH_MANIFEST,
    MULTIVARIANT_PLAYLIST,
    RENDITION_ID_PATTERN,
    is_valid_stream_id,
    parse_media_file_name,
)


class ObjectKind(StrEnum):
    MULTIVARIANT_PLAYLIST = "multivariant_playlist"
    MEDIA_PLAYLIST = "media_playlist"
    DASH_MANIFEST = "dash_manifest"
    INIT = "init"
    SEGMENT = "segment"
    PART = "part"


# Text documents that change on every update: short cache, gzip allowed.
_DOCUMENT_KINDS: Final = frozenset(
    {ObjectKind.MULTIVARIANT_PLAYLIST, ObjectKind.MEDIA_PLAYLIST, ObjectKind.DASH_MANIFEST}
)


def is_document(kind: ObjectKind) -> bool:
    """Playlists and manifests (as opposed to media: init, segments, parts)."""
    return kind in _DOCUMENT_KINDS


@dataclass(frozen=True, slots=True)
class OriginPath:
    """A stream-relative path the origin is willing to serve, taken apart."""

    kind: ObjectKind
    rendition_id: str | None = None  # None for the stream-level playlist and manifest
    number: int = 0  # segment number (SEGMENT, PART)
    part_index: int = 0  # PART only
    init_version: int = 0  # INIT only


# Every name layout.py can make is spelled with these characters. Checking the whole string up
# front refuses %, backslashes, NUL, control and non-ASCII characters in one go — the last matters
# because layout's ``\d`` would otherwise accept e.g. Arabic-Indic digits and alias "seg_١.m4s"
# onto segment 1.
_SAFE_PATH_RE: Final = re.compile(r"[A-Za-z0-9_.\-/]{1,200}", re.ASCII)
_MAX_DEPTH: Final = 2  # "{rendition}/{file}"

_FILE_KINDS: Final = {
    "playlist": ObjectKind.MEDIA_PLAYLIST,
    "init": ObjectKind.INIT,
    "segment": ObjectKind.SEGMENT,
    "part": ObjectKind.PART,
}


def parse_path(relative: str) -> OriginPath | None:
    """Take apart a stream-relative path (already percent-decoded by the framework), or refuse it.

    Only the names in ``actors/packager/layout.py`` are accepted; anything else — ``..``, absolute
    paths, backslashes, NUL, hidden names, extra depth, a literal ``%`` (double encoding) — is None,
    which the handler turns into a 404 without ever touching the file system.
    """
    if _SAFE_PATH_RE.fullmatch(relative) is None:
        return None
    parts = relative.split("/")
    if len(parts) > _MAX_DEPTH or any(not p or p.startswith(".") for p in parts):
        return None
    if len(parts) == 1:
        if relative == MULTIVARIANT_PLAYLIST:
            return OriginPath(ObjectKind.MULTIVARIANT_PLAYLIST)
        if relative == DASH_MANIFEST:
            return OriginPath(ObjectKind.DASH_MANIFEST)
        return None
    rendition_id, name = parts
    if RENDITION_ID_PATTERN.fullmatch(rendition_id) is None:
        return None
    parsed = parse_media_file_name(name)
    if parsed is None or parsed.kind not in _FILE_KINDS:
        return None
    return OriginPath(
        _FILE_KINDS[parsed.kind],
        rendition_id=rendition_id,
        number=parsed.number,
        part_index=parsed.part_index,
        init_version=parsed.init_version,
    )


def classify_path(relative: str) -> ObjectKind | None:
    """The kind of object a stream-relative path names, or None if the origin must not serve it."""
    parsed = parse_path(relative)
    return parsed.kind if parsed is not None else None


def split_stream_path(path: str) -> tuple[str, str] | None:
    """``"{stream_id}/{relative}"`` (leading slash optional) → (stream_id, relative), or None."""
    stream_id, sep, relative = path.removeprefix("/").partition("/")
    if not sep or not is_valid_stream_id(stream_id):
        return None
    return stream_id, relative
