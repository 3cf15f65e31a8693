"""The Dockerfile's contract (no Docker engine runs here; the entry point itself is tested as a
process in tests/integration/test_service_process.py)."""

import re
from pathlib import Path

DOCKERFILE = (Path(__file__).resolve().parents[2] / "Dockerfile").read_text()


def instructions(name: str) -> list[str]:
    return [m.group(1).strip() for m in re.finditer(rf"^{name}\s+(.+)$", DOCKERFILE, re.MULTILINE)]


def test_slim_python_base_and_pip_install() -> None:
    assert instructions("FROM") == ["python:3.11-slim"]
    assert any("pip install ." in run for run in instructions("RUN"))


def test_runs_as_a_non_root_user() -> None:
    users = instructions("USER")
    assert users
    assert users[-1] not in {"root", "0"}


def test_exposes_both_listeners_and_checks_health() -> None:
    assert "8083 8084" in instructions("EXPOSE")
    assert "/health" in DOCKERFILE.split("HEALTHCHECK", 1)[1]


def test_entry_point_is_the_service_in_exec_form() -> None:
    # exec form: hlsdash itself gets SIGTERM and stops every stream before exiting 0
    assert instructions("ENTRYPOINT") == ['["hlsdash"]']
    assert instructions("CMD") == ['["serve"]']
    assert instructions("STOPSIGNAL") == ["SIGTERM"]
