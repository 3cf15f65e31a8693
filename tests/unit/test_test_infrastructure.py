"""The suite's own parallel plumbing: which worker unit a test belongs to, and test ports that two
processes are never both handed (tests/xdist_scheduling.py, tests/ports.py)."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

from tests.ports import BLOCK_SIZE_PORTS, FIRST_PORT, free_port
from tests.xdist_scheduling import CPU_GROUP, CPU_HUNGRY_FILES, PLAYER_GROUP, work_unit_of

ROOT = Path(__file__).resolve().parents[2]


def test_every_player_test_is_in_the_one_player_group() -> None:
    assert work_unit_of("tests/e2e/test_players.py::test_a[hlsjs]") == PLAYER_GROUP
    assert work_unit_of("tests/e2e/test_dashboard.py::test_b") == PLAYER_GROUP


def test_the_cpu_hungry_files_share_one_group_and_exist() -> None:
    for path in CPU_HUNGRY_FILES:
        assert (ROOT / path).is_file(), path
        assert work_unit_of(f"{path}::test_x[a]") == CPU_GROUP


def test_other_live_tests_are_grouped_by_file_and_unit_tests_stand_alone() -> None:
    assert (
        work_unit_of("tests/integration/test_push_ingest.py::test_srt")
        == work_unit_of("tests/integration/test_push_ingest.py::test_rtmp[x::y]")
        == "tests/integration/test_push_ingest.py"
    )
    assert (
        work_unit_of("tests/bench/test_cluster_scale.py::t") == "tests/bench/test_cluster_scale.py"
    )
    unit = "tests/unit/test_hls.py::test_x[1]"
    assert work_unit_of(unit) == unit


def test_ports_come_from_this_process_block_and_are_free() -> None:
    ports = [free_port() for _ in range(5)] + [free_port(socket.SOCK_DGRAM)]
    assert len(set(ports)) == len(ports)
    first_of_block = min(ports) - (min(ports) - FIRST_PORT) % BLOCK_SIZE_PORTS
    assert all(first_of_block <= port < first_of_block + BLOCK_SIZE_PORTS for port in ports)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", free_port()))  # free: nothing holds it


def test_two_processes_get_different_port_blocks() -> None:
    here = free_port()
    other = subprocess.run(
        [sys.executable, "-c", "from tests.ports import free_port; print(free_port())"],
        cwd=ROOT, capture_output=True, text=True, check=True, timeout=30,
    )  # fmt: skip
    there = int(other.stdout)
    assert (here - FIRST_PORT) // BLOCK_SIZE_PORTS != (there - FIRST_PORT) // BLOCK_SIZE_PORTS
