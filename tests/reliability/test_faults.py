"""The reliability suite at CI size: the ops/reliability cases, real service process, real FFmpeg.

Each case is the same code as ``python -m ops.reliability.NAME --count N`` (whose full-size
figures are in the README), run here at a small count. A case collects every broken promise in
``report.problems``; the report is printed in full when one fails.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from ops.reliability import churn, restart, shutdown, sigkill, sigstop, source_loss
from ops.reliability.report import Report

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.reliability]


def assert_kept_promises(report: Report) -> None:
    print(report.render())  # the figures, shown by pytest -s or on failure
    assert report.problems == [], report.render()


CASES = [
    pytest.param(sigkill.run, 5, id="ffmpeg-sigkilled-5-times"),
    pytest.param(sigstop.run, 2, id="ffmpeg-sigstopped-replaced-by-the-watchdog"),
    pytest.param(source_loss.run, 1, id="source-gone-15s-then-back"),
    pytest.param(churn.run, 40, id="create-delete-churn-40"),
    pytest.param(shutdown.run, 1, id="sigterm-4-streams-100-viewers"),
    pytest.param(restart.run, 2, id="service-sigkilled-then-sigtermed-resumes"),
]


@pytest.mark.parametrize(("case", "count"), CASES)
def test_reliability_case(case: Callable[..., Report], count: int, tmp_path: Path) -> None:
    assert_kept_promises(case(count=count, workdir=tmp_path))
