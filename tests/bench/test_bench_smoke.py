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
    ("control_plane", ()),
    ("control_plane", ("--passthrough",)),
    ("first_part", ()),
    ("parts", ()),
]


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
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "==" in result.stdout  # printed at least one section
