"""glibc allocator tuning for a long-lived service that makes and drops large buffers.

The service reads FFmpeg's pipes in 256 KiB chunks and keeps segment-sized objects (hundreds of
KiB) in its caches. glibc serves allocations above its *mmap threshold* with their own mapping,
returned to the OS on free; but after each such free it raises the threshold (up to 32 MiB), so
later segment-sized buffers come from the main heap, where they fragment it: the churn run
(`ops/reliability/churn`) saw RSS grow ~1.2 MiB per 100 create/delete cycles with Python's own
heap flat (tracemalloc and pymalloc both constant). A fixed threshold of 64 KiB halved that
growth (README, *Churn memory*). Giving free heap pages back when a stream ends (``malloc_trim``)
keeps the floor from creeping between streams.

Nothing here is needed for correctness; where glibc is absent (musl, macOS) it does nothing.
An operator's own ``MALLOC_MMAP_THRESHOLD_`` in the environment wins (glibc reads it itself).
"""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Mapping
from functools import cache

import structlog

log = structlog.get_logger(__name__)

M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter number (malloc.h)
DEFAULT_MMAP_THRESHOLD_BYTES = 64 * 1024
OPERATOR_SETTING = "MALLOC_MMAP_THRESHOLD_"


@cache
def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
    except OSError:
        return None
    if not hasattr(libc, "mallopt") or not hasattr(libc, "malloc_trim"):
        return None
    return libc


def fix_mmap_threshold(
    environ: Mapping[str, str], threshold_bytes: int = DEFAULT_MMAP_THRESHOLD_BYTES
) -> bool:
    """Pin glibc's mmap threshold (once, at start). False when not done: no glibc, or the
    operator set ``MALLOC_MMAP_THRESHOLD_`` (glibc already applied theirs)."""
    if OPERATOR_SETTING in environ:
        return False
    libc = _libc()
    if libc is None:
        return False
    done = bool(libc.mallopt(M_MMAP_THRESHOLD, threshold_bytes))
    log.debug("malloc_mmap_threshold", bytes=threshold_bytes, applied=done)
    return done


def give_back_free_memory() -> bool:
    """glibc's ``malloc_trim(0)``: return free heap pages to the OS. False where unavailable."""
    libc = _libc()
    return bool(libc.malloc_trim(0)) if libc is not None else False
