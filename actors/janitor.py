"""The segment janitor: pure selection of what may go, and the thin loops that delete it.

Per stream: files of segments older than anything the timeline still retains (window + margin
for late players), and init versions no retained segment uses. Per service: stream folders that
no live stream owns (left over from a crash or a previous run).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterable
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


def sweep_orphans(output_dir: Path, is_live: Callable[[str], bool]) -> list[str]:
    """Blocking: remove stream folders no live stream owns; returns their names.

    ``is_live`` is asked again right before each deletion, so a stream created while the sweep
    runs (in its thread) keeps its folder.
    """
    try:
        names = [p.name for p in output_dir.iterdir() if p.is_dir() and not p.is_symlink()]
    except FileNotFoundError:
        return []
    removed = []
    for name in orphan_stream_dirs(names, set()):
        if not is_live(name):
            remove_tree(output_dir / name)
            removed.append(name)
    return removed
