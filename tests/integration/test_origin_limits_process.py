"""The service as a real process under two faults: a sweep that fails, and viewers hoarding fds."""

from __future__ import annotations

import contextlib
import json
import resource
import socket
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from supervisor.http.origin_limits import reserved_fds
from tests.integration.live import LAVFI_SOURCE
from tests.integration.test_service_process import client, get_json, served, wait_encoder_pid

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def log_events(log_path: Path, event: str) -> list[dict[str, object]]:
    entries = []
    for line in log_path.read_text().splitlines():
        with contextlib.suppress(ValueError):
            entry = json.loads(line)
            if isinstance(entry, dict) and entry.get("event") == event:
                entries.append(entry)
    return entries


def wait_until(predicate: object, timeout_s: float, what: str) -> None:
    assert callable(predicate)
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.2)


def test_a_failing_orphan_sweep_does_not_stop_the_service(tmp_path: Path) -> None:
    output_dir = tmp_path / "streams"
    log_path = tmp_path / "service.log"
    with served(tmp_path, CLEANUP_INTERVAL="1") as (process, api_port, origin_port):
        # OUTPUT_DIR disappears and a file takes its place (an unmounted volume, a bad deploy):
        # every sweep now fails with NotADirectoryError
        output_dir.rename(tmp_path / "streams.moved")
        output_dir.write_bytes(b"not a folder")
        wait_until(
            lambda: len(log_events(log_path, "orphan_sweep_failed")) >= 2 or process.poll(),
            20,
            "two failed sweeps",
        )
        assert process.poll() is None, log_path.read_text()[-3000:]
        assert get_json(f"http://127.0.0.1:{api_port}/health")["status"] == "ok"
        assert get_json(f"http://127.0.0.1:{origin_port}/health")["status"] == "ok"
        # the folder comes back: the service works as before, no restart needed
        output_dir.unlink()
        (tmp_path / "streams.moved").rename(output_dir)
        started = client(api_port, "start", "after-sweeps", LAVFI_SOURCE, "--qualities", "240p")
        assert started.returncode == 0, started.stderr
        wait_encoder_pid(api_port, "after-sweeps", segments=1)
        assert process.poll() is None


@contextlib.contextmanager
def idle_connections(port: int, count: int) -> Iterator[list[socket.socket]]:
    sockets = []
    try:
        for _ in range(count):
            sockets.append(socket.create_connection(("127.0.0.1", port), timeout=5))
        yield sockets
    finally:
        for sock in sockets:
            sock.close()


def answered_503(sock: socket.socket) -> bool:
    """Non-blocking: did the origin answer 503 and close (True), or does it hold us (False)?"""
    sock.setblocking(False)
    try:
        data = sock.recv(4096)
    except BlockingIOError:
        return False
    finally:
        sock.setblocking(True)
    return data.startswith(b"HTTP/1.1 503 ")


def test_viewers_cannot_take_the_descriptors_a_stream_start_needs(tmp_path: Path) -> None:
    nofile_limit, max_streams, viewers = 512, 2, 600
    cap = nofile_limit - reserved_fds(max_streams)  # 512 - (128 + 128 + 2 × 32) = 192
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < viewers + 256:  # this test's own client sockets
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))
    with served(
        tmp_path,
        nofile_limit=nofile_limit,
        MAX_STREAMS=str(max_streams),
        ORIGIN_HEAD_TIMEOUT="120",  # the hoarders stay for the whole test
    ) as (process, api_port, origin_port):
        (limits,) = log_events(tmp_path / "service.log", "origin_limits")
        assert limits["nofile_limit"] == nofile_limit
        assert limits["max_connections"] == cap
        with idle_connections(origin_port, viewers) as hoarders:
            time.sleep(1)  # let the origin accept (or refuse) all of them
            refused = sum(answered_503(sock) for sock in hoarders)
            assert refused == viewers - cap
            # every descriptor the origin may use is taken, yet a stream starts and goes live
            started = client(api_port, "start", "needs-fds", LAVFI_SOURCE, "--qualities", "240p")
            assert started.returncode == 0, started.stderr
            wait_encoder_pid(api_port, "needs-fds", segments=2)
            assert get_json(f"http://127.0.0.1:{api_port}/streams/needs-fds")["state"] == "live"
        # the hoarders gone, viewers get in again
        playlist_url = f"http://127.0.0.1:{origin_port}/needs-fds/240p/playlist.m3u8"
        wait_until(lambda: _status(playlist_url) == 200, 10, "the origin to admit viewers again")
        assert process.poll() is None


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return int(response.status)
    except OSError:
        return 0
