"""A small tmpfs for disk-full tests (CI runs as root); skipped with the reason when not allowed."""

from __future__ import annotations

import contextlib
import errno
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


@contextlib.contextmanager
def small_tmpfs(mount_point: Path, size: str = "1m") -> Iterator[Path]:
    """Mount a tmpfs of ``size`` on ``mount_point`` for the duration; unmounted in finally."""
    mount_point.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        # an error, never a skip: the test command runs as root (as CI does); a skipped disk-full
        # test would prove nothing
        pytest.fail(
            f"cannot mount a tmpfs here (run the tests as root): {mounted.stderr.strip()}",
            pytrace=False,
        )
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], capture_output=True, check=False)


def fill(folder: Path) -> Path:
    """Blocking: write one file until the file system is full; returns it."""
    filler = folder / "filler.bin"
    block = b"\0" * 65536
    with open(filler, "wb") as handle:
        try:
            while True:
                handle.write(block)
                handle.flush()
        except OSError as error:
            if error.errno != errno.ENOSPC:
                raise
    return filler
