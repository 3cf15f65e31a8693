"""Files the stream could not write yet (disk full, quota, I/O error): pure, bounded, ordered.

While OUTPUT_DIR refuses writes, the stream keeps encoding and serving its live edge from memory;
what should have reached the disk waits here and is written, in order, once the disk takes it
again. It stays bounded for an outage of any length: a newer version of a file replaces the older
one (playlists, the MPD), and segments that left the retained window are dropped, exactly what the
janitor would have deleted from the disk by then.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import PurePosixPath

from actors.packager.layout import parse_media_file_name


class WriteBacklog:
    """(relative name → bytes) still to write, oldest first; a name re-added moves to the end."""

    __slots__ = ("_pending",)

    def __init__(self) -> None:
        self._pending: dict[str, bytes] = {}

    def __len__(self) -> int:
        return len(self._pending)

    def __bool__(self) -> bool:
        return bool(self._pending)

    @property
    def byte_count(self) -> int:
        return sum(len(data) for data in self._pending.values())

    def add(self, writes: Iterable[tuple[str, bytes]]) -> None:
        for name, data in writes:
            # moved to the end: a playlist rewritten after new segments must follow them
            self._pending.pop(name, None)
            self._pending[name] = data

    def snapshot(self) -> list[tuple[str, bytes]]:
        return list(self._pending.items())

    def discard_written(self, written: Iterable[tuple[str, bytes]]) -> None:
        """Forget what was written, unless a newer version of it came in meanwhile."""
        for name, data in written:
            if self._pending.get(name) is data:
                del self._pending[name]

    def prune(self, oldest_retained_number: int | None) -> int:
        """Drop segments older than anything retained (no playlist lists them any more)."""
        if oldest_retained_number is None:
            return 0
        expired = []
        for name in self._pending:
            parsed = parse_media_file_name(PurePosixPath(name).name)
            media = parsed is not None and parsed.kind in {"segment", "part"}
            if media and parsed is not None and parsed.number < oldest_retained_number:
                expired.append(name)
        for name in expired:
            del self._pending[name]
        return len(expired)
