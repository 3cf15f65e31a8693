"""Schemathesis against the service's own /openapi.json: zero 5xx, every answer as documented.

    python -m ops.reliability.api_schema --count 100      # examples per operation

Every operation, every check (all are on by default: status codes, content types, headers and bodies
against the document, schema-valid data accepted, invalid data refused, Allow headers, use after
delete, …), all phases including the stateful one, which follows the document's links from
``POST /streams`` to read, renew and delete the stream it created. The service allows only
``file`` sources, so no generated ``source_url`` can make FFmpeg reach the network; the hooks
(``schemathesis_hooks.py``) hand half of the generated creates a real local file so that streams
really start. Judged twice: Schemathesis's own verdict, and the service's request counter from
``/metrics`` (no 5xx other than the documented 503 at MAX_STREAMS).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from ops.bench.common import ROOT, http
from ops.bench.control_plane import passthrough_source
from ops.reliability.probe import service_for_case
from ops.reliability.report import Report, main

HERE = Path(__file__).resolve().parent
SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
RUN_TIMEOUT_S = 1800
_REQUESTS = re.compile(r"^hlsdash_http_requests_total\{([^}]*)\} ([0-9.e+]+)$", re.MULTILINE)


def run(count: int = 100, *, workdir: Path | None = None, seed: int | None = None) -> Report:
    report = Report("Schemathesis on /openapi.json", count)
    with tempfile.TemporaryDirectory(prefix="hlsdash-schema-") as scratch:
        source = passthrough_source(Path(scratch))
        with service_for_case(workdir, ALLOWED_PROTOCOLS="file", MAX_STREAMS="8") as service:
            argv = [
                str(SCHEMATHESIS), "--config-file", str(HERE / "schemathesis.toml"),
                "run", f"{service.api}/openapi.json",
                "--phases", "examples,coverage,fuzzing,stateful",
                "--max-examples", str(count),
                "--workers", "1",
                "--request-timeout", "30",
                "--no-color",
            ]  # fmt: skip
            if seed is not None:
                argv += ["--seed", str(seed)]
            env = {
                **os.environ,
                "SCHEMATHESIS_HOOKS": "ops.reliability.schemathesis_hooks",
                "HLSDASH_SCHEMA_SOURCE_URL": source,
                "PYTHONPATH": os.pathsep.join(
                    filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])
                ),
            }
            result = subprocess.run(
                argv, cwd=scratch, env=env, capture_output=True, text=True,
                timeout=RUN_TIMEOUT_S, check=False,
            )  # fmt: skip
            output = result.stdout + result.stderr
            alive = service.process.poll() is None
            statuses = _api_statuses(service.api) if alive else {}
        report.expect(alive, "the service died during the run")
        failures = sorted(set(re.findall(r"^- (ST\d+ [^\n]+)$", output, re.MULTILINE)))
        details = output.split("= FAILURES =", 1)[-1].split("= WARNINGS =", 1)[0]
        report.expect(
            result.returncode == 0,
            f"schemathesis exit {result.returncode}: {failures}\n{details[-6000:]}",
        )
        server_errors = {s: n for s, n in statuses.items() if s >= 500 and s != 503}
        report.expect(not server_errors, f"the API answered 5xx: {server_errors}")
        generated = re.search(r"(\d+) generated", output)
        report.figure("test cases generated", generated.group(1) if generated else "?")
        report.figure("schemathesis failures", ", ".join(failures) or "none")
        report.figure("API answers by status (from /metrics)", dict(sorted(statuses.items())))
        report.figure("schemathesis summary", _summary(output))
        warnings = re.findall(r"^\s*⚠️\s*(.+)$", output, re.MULTILINE)
        report.figure("schemathesis warnings", "; ".join(warnings) or "none")
    return report


def _api_statuses(api: str) -> dict[int, int]:
    """The control API's answers by status, from the service's own request counter."""
    _, body, _ = http("GET", f"{api}/metrics")
    counts: dict[int, int] = {}
    for labels, value in _REQUESTS.findall(body.decode()):
        fields = dict(re.findall(r'(\w+)="([^"]*)"', labels))
        if fields.get("listener") == "api" and fields.get("status", "").isdigit():
            status = int(fields["status"])
            counts[status] = counts.get(status, 0) + int(float(value))
    return counts


def _summary(output: str) -> str:
    lines = output.strip().splitlines()
    return lines[-1].strip("= ") if lines else ""


if __name__ == "__main__":
    main(run, description=__doc__ or "", default_count=100)
