"""Each benchmark in ops/bench/ at its --tiny size, so they don't rot. Asserts nothing about speed."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
BENCHES = [
    ("ladder", ()),
    ("origin", ()),
    ("blocking", ()),
    ("blocking", ("--edge", "varnish")),
    ("control_plane", ()),
    ("control_plane", ("--passthrough",)),
    ("first_part", ()),
    ("edge", ()),
    ("glass", ()),
    ("parts", ()),
    ("ingest", ()),
    ("ingest_whip", ()),
]
# headless Chromium, two live pipelines and two players: more than the others' 2 minutes
TIMEOUT_S = {"glass": 300}

# What a run must have printed besides its sections: its baseline ratio, and the checks that keep
# the comparison honest (same argv as the service; every waiter answered; LL through the front).
EXPECTED = {
    "ladder": (
        "ratios of medians: b/a = ",
        "(a)'s argv equals the service's FFmpeg command line",
        "PSNR dB",
        "largest realtime ladder",
    ),
    "origin": ("ratios (2xx req/s): origin/nginx segment ", "-> OK"),
    "blocking": ("round 1: 100 waiters {'ok': 100}", "0 failed or timed out (inf)"),
    # every edge candidate ran beside the origin
    "edge": ("  origin: ", "  varnish: ", "  nginx: ", "  nginx-unlocked-reloads: "),
    "ingest": ("ratios push/pull: CPU per media second ", "push: ", "pull: "),
    "ingest_whip": ("median: peer CPU ", "(sender_report)"),
}
# ... and with an extra flag
EXPECTED_WITH = {("blocking", ("--edge", "varnish")): ("the edge sent to the origin: 1\n",)}


@pytest.mark.parametrize(("name", "extra"), BENCHES, ids=[" ".join((n, *e)) for n, e in BENCHES])
def test_bench_runs_at_tiny_size(name: str, extra: tuple[str, ...]) -> None:
    if name == "origin":
        # scripts/install-system-deps provides both; a skipped benchmark would rot unseen
        assert shutil.which("nginx") or Path("/usr/sbin/nginx").exists(), (
            "nginx is missing: run scripts/install-system-deps"
        )
        assert shutil.which("wrk"), "wrk is missing: run scripts/install-system-deps"
    result = subprocess.run(
        [sys.executable, "-m", f"ops.bench.{name}", "--tiny", *extra],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S.get(name, 120),
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "==" in result.stdout  # printed at least one section
    for expected in (*EXPECTED.get(name, ()), *EXPECTED_WITH.get((name, extra), ())):
        assert expected in result.stdout, f"{expected!r} missing:\n{result.stdout[-3000:]}"
