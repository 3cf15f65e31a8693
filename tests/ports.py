"""Free loopback ports that no other test process on this machine is handed at the same time.

``bind(("127.0.0.1", 0))`` and release is racy once tests run in parallel (pytest-xdist workers,
or two test runs on one machine): the kernel may give the port just released to another process
before the test's server binds it. So every test process claims its own block of ports below the
kernel's ephemeral range (which ``bind(0)`` and outgoing connections use), by holding an
exclusive ``flock`` on a lock file for that block until the process exits, and hands out the
ports of its block in turn, skipping any that something else holds.
"""

from __future__ import annotations

import fcntl
import os
import random
import socket
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import IO

# Below Linux's default ephemeral range (32768-60999): nothing picks these ports at random.
FIRST_PORT = 20_000
BLOCK_SIZE_PORTS = 256
BLOCK_COUNT = 48  # 20000..32287
LOCK_DIR = Path(tempfile.gettempdir()) / "hlsdash-test-ports"


@dataclass
class _PortBlock:
    first_port: int
    lock_file: IO[bytes]  # held open: the flock lasts as long as this process
    next_offset: int = 0


_lock = threading.Lock()
_block: _PortBlock | None = None


def _claim_block() -> _PortBlock:
    LOCK_DIR.mkdir(parents=True, exist_ok=True)
    start = random.randrange(BLOCK_COUNT)
    for step in range(BLOCK_COUNT):
        index = (start + step) % BLOCK_COUNT
        lock_file = (LOCK_DIR / f"block-{index}.lock").open("ab")
        try:
            fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock_file.close()
            continue
        lock_file.write(f"{os.getpid()}\n".encode())
        lock_file.flush()
        return _PortBlock(first_port=FIRST_PORT + index * BLOCK_SIZE_PORTS, lock_file=lock_file)
    raise RuntimeError(f"all {BLOCK_COUNT} test port blocks in {LOCK_DIR} are held")


def _bindable(port: int, kind: int) -> bool:
    with socket.socket(socket.AF_INET, kind) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A loopback port of this process's block that is free for ``kind`` (TCP or UDP) now."""
    global _block  # noqa: PLW0603 - one block per process, claimed on first use
    with _lock:
        if _block is None:
            _block = _claim_block()
        block = _block
        for _ in range(BLOCK_SIZE_PORTS):
            port = block.first_port + block.next_offset
            block.next_offset = (block.next_offset + 1) % BLOCK_SIZE_PORTS
            if _bindable(port, kind):
                return port
    raise RuntimeError(f"no free port in {block.first_port}..+{BLOCK_SIZE_PORTS}")
