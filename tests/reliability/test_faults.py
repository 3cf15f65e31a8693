"""The reliability suite at CI size: the ops/reliability cases, real service process, real FFmpeg.

Each case is the same code as ``python -m ops.reliability.NAME --count N`` (whose full-size
figures are in the README), run here at a small count. A case collects every broken promise in
``report.problems``; the report is printed in full when one fails.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ops.reliability import churn, shutdown, sigkill, sigstop, source_loss
from ops.reliability.report import Report

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.reliability]


def assert_kept_promises(report: Report) -> None:
    print(report.render())  # the figures, shown by pytest -s or on failure
    assert report.problems == [], report.render()


def test_ffmpeg_sigkilled_five_times(tmp_path: Path) -> None:
    report = sigkill.run(count=5, workdir=tmp_path)
    assert_kept_promises(report)
    assert report.figures["kills / victim restarts"] == "5 / 5"


def test_ffmpeg_sigstopped_is_replaced_by_the_watchdog(tmp_path: Path) -> None:
    assert_kept_promises(sigstop.run(count=2, workdir=tmp_path))


def test_source_gone_for_15_s_then_back(tmp_path: Path) -> None:
    assert_kept_promises(source_loss.run(count=1, workdir=tmp_path))


def test_create_delete_churn_leaves_nothing_and_stays_flat(tmp_path: Path) -> None:
    report = churn.run(count=40, workdir=tmp_path)
    assert_kept_promises(report)
    assert report.figures["cycles done"] == "40"


def test_sigterm_with_four_streams_and_a_hundred_viewers(tmp_path: Path) -> None:
    assert_kept_promises(shutdown.run(count=1, workdir=tmp_path))
