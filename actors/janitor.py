"""The segment janitor: pure selection of what may go, and the thin loops that delete it.

Per stream: files of segments older than anything the timeline still retains (window + margin
for late players), and init versions no retained segment uses. Per service: stream folders that
no live stream owns (left over from a crash or a previous run) — but only folders this service
made. Every stream folder gets a marker file when it is created; a folder without one is never
deleted, whatever its name: a mistyped ``OUTPUT_DIR=/var/www`` must not empty ``/var/www``.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import structlog

from actors.packager.layout import is_valid_stream_id, parse_media_file_name

log = structlog.get_logger(__name__)


def expired_media_files(
    names: Iterable[str], *, oldest_retained_number: int | None, live_init_names: set[str]
) -> list[str]:
    """File names in a rendition folder that the janitor may delete.

    Never touches files it does not recognise (they are not ours to judge), playlists, the init
    segments still in use, or anything while nothing is retained yet.
    """
    if oldest_retained_number is None:
        return []
    expired = []
    for name in names:
        parsed = parse_media_file_name(name)
        if parsed is None:
            continue
        old_media = parsed.kind in {"segment", "part"} and parsed.number < oldest_retained_number
        unused_init = parsed.kind == "init" and name not in live_init_names
        if old_media or unused_init:
            expired.append(name)
    return sorted(expired)


# A hidden name: the origin never serves it, nginx's location rules never match it, and no other
# program writes a file of that name into a folder that happens to look like a stream id.
STREAM_MARKER = ".hlsdash-stream"


def marker_text(stream_id: str, *, pid: int, created_unix_s: float) -> str:
    """What the marker says: who made the folder, for an operator who finds it."""
    return json.dumps(
        {"made_by": "hlsdash", "stream_id": stream_id, "pid": pid, "created_unix_s": created_unix_s}
    )


def create_stream_folder(folder: Path) -> None:
    """Blocking: make a stream folder and mark it as ours. Run in a thread.

    Raises OSError if the folder cannot be made. A marker that cannot be written (a full disk)
    is logged, not raised: the stream still runs and removes its own folder when it ends; only a
    crash would leave that folder behind, unswept, which is the safe side.
    """
    folder.mkdir(parents=True, exist_ok=True)
    text = marker_text(folder.name, pid=os.getpid(), created_unix_s=time.time())
    try:
        (folder / STREAM_MARKER).write_text(text + "\n", encoding="utf-8")
    except OSError as error:
        log.warning("stream_marker_not_written", folder=str(folder), error=str(error))


def is_marked(folder: Path) -> bool:
    """Blocking: does the folder carry our marker (a regular file, not a symlink)?"""
    marker = folder / STREAM_MARKER
    return marker.is_file() and not marker.is_symlink()


def orphan_stream_dirs(dir_names: Iterable[str], live_stream_ids: set[str]) -> list[str]:
    """Stream folders under OUTPUT_DIR that no live stream owns."""
    return sorted(n for n in dir_names if is_valid_stream_id(n) and n not in live_stream_ids)


def delete_files(folder: Path, names: Iterable[str]) -> int:
    """Blocking: remove the named files from folder; returns how many went. Run in a thread."""
    removed = 0
    for name in names:
        try:
            (folder / name).unlink()
            removed += 1
        except FileNotFoundError:
            continue
        except OSError as error:
            log.warning("janitor_unlink_failed", file=str(folder / name), error=str(error))
    return removed


def list_names(folder: Path) -> list[str]:
    """Blocking: file names in folder ([] when it does not exist). Run in a thread."""
    try:
        return [p.name for p in folder.iterdir() if p.is_file()]
    except FileNotFoundError:
        return []
    except OSError as error:
        # an unreadable folder (EIO, …) skips this round; it must not end the stream
        log.warning("janitor_list_failed", folder=str(folder), error=str(error))
        return []


def remove_tree(folder: Path) -> None:
    """Blocking: delete a stream folder entirely. Run in a thread."""
    shutil.rmtree(folder, ignore_errors=True)


@dataclass(frozen=True, slots=True)
class SweepResult:
    removed: list[str] = field(default_factory=list)  # marked orphans, deleted
    unmarked: list[str] = field(default_factory=list)  # stream-id-shaped, not ours: kept


def sweep_orphans(output_dir: Path, is_live: Callable[[str], bool]) -> SweepResult:
    """Blocking: remove the marked stream folders no live stream owns. Run in a thread.

    ``is_live`` is asked again right before each deletion, so a stream created while the sweep
    runs (in its thread) keeps its folder. Folders without the marker are reported, never touched.
    """
    try:
        names = [p.name for p in output_dir.iterdir() if p.is_dir() and not p.is_symlink()]
    except FileNotFoundError:
        return SweepResult()
    result = SweepResult()
    for name in orphan_stream_dirs(names, set()):
        if is_live(name):
            continue
        if not is_marked(output_dir / name):
            result.unmarked.append(name)
            continue
        remove_tree(output_dir / name)
        result.removed.append(name)
    return result
