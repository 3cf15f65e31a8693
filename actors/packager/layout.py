"""On-disk and URL naming for one stream. The one place names are made.

The packager, the janitor and the origin all go through here, so a name is never spelled twice.
Every URL a playlist or manifest writes is *relative*, so the same files play from the control API
(``/streams/{id}/…``), from the origin (``/{id}/…``) and from a plain static server or CDN.

Layout of ``{output_dir}/{stream_id}/``::

    playlist.m3u8            multivariant HLS playlist
    manifest.mpd             DASH MPD
    {rendition}/playlist.m3u8  media playlist of one rendition ("720p", "audio")
    {rendition}/init_{v}.mp4   init segment, version v (changes only when the codec config does)
    {rendition}/seg_{n}.m4s    media segment n (HLS media sequence number == DASH $Number$)
    {rendition}/part_{n}_{k}.m4s  part k of segment n (LL-HLS); served from memory, never on disk
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

STREAM_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$", re.ASCII)
RENDITION_ID_PATTERN = re.compile(r"^(?:\d{3,4}p|audio|source)$", re.ASCII)

MULTIVARIANT_PLAYLIST = "playlist.m3u8"
MEDIA_PLAYLIST = "playlist.m3u8"
DASH_MANIFEST = "manifest.mpd"

_SEGMENT_RE = re.compile(r"^seg_(\d{1,12})\.m4s$", re.ASCII)
_PART_RE = re.compile(r"^part_(\d{1,12})_(\d{1,4})\.m4s$", re.ASCII)
_INIT_RE = re.compile(r"^init_(\d{1,6})\.mp4$", re.ASCII)


def is_valid_stream_id(stream_id: str) -> bool:
    return STREAM_ID_PATTERN.fullmatch(stream_id) is not None


def init_file_name(version: int) -> str:
    return f"init_{version}.mp4"


def segment_file_name(number: int) -> str:
    return f"seg_{number}.m4s"


def part_file_name(number: int, part_index: int) -> str:
    return f"part_{number}_{part_index}.m4s"


# DASH SegmentTemplate spelling of segment_file_name; kept next to it so they cannot drift apart.
DASH_MEDIA_TEMPLATE = "$RepresentationID$/seg_$Number$.m4s"


def dash_init_template(init_name: str) -> str:
    return f"$RepresentationID$/{init_name}"


def media_playlist_uri(rendition_id: str) -> str:
    """URI of a media playlist relative to the multivariant playlist."""
    return f"{rendition_id}/{MEDIA_PLAYLIST}"


def rendition_report_uri(rendition_id: str) -> str:
    """URI of a sibling's media playlist relative to another media playlist."""
    return f"../{rendition_id}/{MEDIA_PLAYLIST}"


@dataclass(frozen=True, slots=True)
class MediaFileName:
    """A parsed rendition file name."""

    kind: str  # "segment" | "part" | "init" | "playlist"
    number: int = 0
    part_index: int = 0
    init_version: int = 0


def parse_media_file_name(name: str) -> MediaFileName | None:
    """Recognise a rendition file name; anything else is not ours (→ 404, never a path)."""
    if name == MEDIA_PLAYLIST:
        return MediaFileName("playlist")
    if m := _SEGMENT_RE.fullmatch(name):
        return MediaFileName("segment", number=int(m.group(1)))
    if m := _PART_RE.fullmatch(name):
        return MediaFileName("part", number=int(m.group(1)), part_index=int(m.group(2)))
    if m := _INIT_RE.fullmatch(name):
        return MediaFileName("init", init_version=int(m.group(1)))
    return None


def stream_dir(output_dir: Path, stream_id: str) -> Path:
    if not is_valid_stream_id(stream_id):
        raise ValueError(f"invalid stream id {stream_id!r}")
    return output_dir / stream_id


def resolve_inside(root: Path, relative: str) -> Path | None:
    """Map a URL path below a stream folder to a file, or None if it would leave the folder.

    Refuses absolute paths, ``..`` and ``.`` components, backslashes, NULs, hidden files and
    anything that resolves (through symlinks) outside ``root``.
    """
    if not relative or "\\" in relative or "\x00" in relative:
        return None
    pure = PurePosixPath(relative)
    if pure.is_absolute():
        return None
    if any(part in {"", ".", ".."} or part.startswith(".") for part in pure.parts):
        return None
    candidate = root.joinpath(*pure.parts)
    try:
        resolved = candidate.resolve(strict=False)
        root_resolved = root.resolve(strict=False)
    except OSError:
        return None
    if resolved != root_resolved and root_resolved not in resolved.parents:
        return None
    return resolved
