"""Atomic file writes for the stream folder (blocking; call from a worker thread)."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterable
from pathlib import Path


def write_atomic(path: Path, data: bytes) -> None:
    """Write via a hidden temp file + rename, so readers never see a half-written file.

    The temp name starts with "." so neither the janitor nor the origin ever picks it up.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        with open(temp, "wb") as handle:
            handle.write(data)
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def write_many(folder: Path, files: Iterable[tuple[str, bytes]]) -> None:
    """Write (relative name, bytes) pairs under folder atomically, one by one, in order."""
    for relative, data in files:
        write_atomic(folder / relative, data)


def read_or_none(path: Path) -> bytes | None:
    """Blocking: a regular file's bytes, or None if it is missing or unreadable."""
    try:
        return path.read_bytes() if path.is_file() else None
    except OSError:
        return None
