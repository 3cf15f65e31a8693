"""Schemathesis against the running service's /openapi.json (ops/reliability/api_schema.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ops.reliability import api_schema
from tests.reliability.test_faults import assert_kept_promises

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.reliability]


def test_every_operation_answers_as_documented_and_never_5xx(tmp_path: Path) -> None:
    # a fixed seed in CI: a failure here reproduces; the ops command explores new seeds
    report = api_schema.run(count=15, workdir=tmp_path, seed=1)
    assert_kept_promises(report)
    assert int(report.figures["test cases generated"]) > 100
