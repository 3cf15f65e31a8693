"""Prometheus rules, the Grafana dashboard and the compose file, checked by the tools made for them.

* every PromQL expression (alert rules, dashboard panels) parses: ``promtool check rules`` on the
  rules file, and on a rules file made of the dashboard's expressions (Grafana's variables
  substituted); ``promtool test rules`` runs the alerts against series (ops/prometheus);
* ``promtool check config`` accepts the Prometheus config with its rule file;
* every metric name those expressions use is exported by a live service (real FFmpeg stream, real
  HTTP requests on both ports), except ``up`` which Prometheus makes itself;
* the Grafana provisioning points the dashboard's datasource uid at the compose Prometheus.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.http_helpers import running_front, stream_body, wait_live_segments

pytestmark = [pytest.mark.integration]

OPS = Path(__file__).resolve().parents[2] / "ops"
DASHBOARD = OPS / "grafana" / "dashboards" / "hlsdash.json"
ALERTS = OPS / "prometheus" / "alerts.yml"
PROMETHEUS_CONFIG = OPS / "prometheus" / "prometheus.yml"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
# Grafana's variables, replaced by what they become at query time
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__interval": "10s", "$stream_id": ".*"}
# made by Prometheus itself (up) and by the blackbox exporter probing /ready (probe_success)
MADE_ELSEWHERE = frozenset({"up", "probe_success"})
_KEYWORDS = frozenset(
    {
        "and",
        "or",
        "unless",
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "offset",
        "bool",
        "inf",
        "nan",
    }
)


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    assert Path(PROMTOOL).exists(), "promtool is missing: run scripts/install-system-deps"
    return subprocess.run([PROMTOOL, *args], capture_output=True, text=True, check=False)


def walk(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk(value)


def dashboard_expressions() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [n["expr"] for n in walk(dashboard["panels"]) if isinstance(n.get("expr"), str)]
    for variable in dashboard["templating"]["list"]:
        found = re.fullmatch(r"label_values\((.+),\s*\w+\)", variable["definition"])
        assert found, variable["definition"]
        exprs.append(found[1])  # the selector label_values() reads is PromQL too
    return exprs


def grafana_free(expr: str) -> str:
    for name, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(name, value)
    assert "$" not in expr, f"a Grafana variable this test does not know: {expr}"
    return expr


def alert_expressions() -> list[str]:
    rules = yaml.safe_load(ALERTS.read_text())
    return [rule["expr"] for group in rules["groups"] for rule in group["rules"]]


def metric_names(expr: str) -> set[str]:
    """Metric names in a PromQL expression: identifiers that are not functions, keywords,
    label names (inside ``{}`` or a ``by``/``on``/... list), durations or strings."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)
    text = re.sub(r"\{[^}]*\}|\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set()
    for found in re.finditer(r"(?<![\w.])([a-zA-Z_:][a-zA-Z0-9_:]*)\b(\s*\()?", text):
        if found[2] is None and found[1].lower() not in _KEYWORDS:
            names.add(found[1])
    return names


def test_metric_names_parser() -> None:
    expr = (
        'histogram_quantile(0.99, sum by (le, route) (rate(x_bucket{listener="o",route=~"/{id}"}'
        '[5m]))) > on(stream_id) (3 * y) and z{state="live"} == 1 or vector(1e3)'
    )
    assert metric_names(expr) == {"x_bucket", "y", "z"}


def test_alert_rules_pass_promtool_and_their_unit_tests() -> None:
    checked = promtool("check", "rules", str(ALERTS))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = promtool("test", "rules", str(OPS / "prometheus" / "alerts_test.yml"))
    assert tested.returncode == 0, tested.stdout + tested.stderr
    names = {rule["alert"] for rule in yaml.safe_load(ALERTS.read_text())["groups"][0]["rules"]}
    # the four: encoder speed < 1, segment age > 3 x TD, restart storms, /ready down
    assert {"HlsdashEncoderSlow", "HlsdashSegmentLate", "HlsdashRestartStorm"} <= names
    assert "HlsdashNotReady" in names


def test_every_dashboard_expression_parses(tmp_path: Path) -> None:
    exprs = dashboard_expressions()
    assert len(exprs) >= 16
    rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [
                    {"record": f"dashboard:expr_{n}", "expr": grafana_free(e)}
                    for n, e in enumerate(exprs)
                ],
            }
        ]
    }
    path = tmp_path / "dashboard-rules.yml"
    path.write_text(yaml.safe_dump(rules))
    checked = promtool("check", "rules", str(path))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    # and the check has teeth: a broken expression is refused
    path.write_text(
        yaml.safe_dump(
            {
                "groups": [
                    {"name": "x", "rules": [{"record": "x:y", "expr": "sum by (le (rate(x[1m]))"}]}
                ]
            }
        )
    )
    assert promtool("check", "rules", str(path)).returncode != 0


def test_prometheus_config_passes_promtool(tmp_path: Path) -> None:
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    assert config["rule_files"] == ["/etc/prometheus/alerts.yml"]  # as mounted by compose
    config["rule_files"] = [str(ALERTS)]
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    checked = promtool("check", "config", str(path))
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_grafana_provisioning_matches_the_dashboard() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    uids = {
        n["datasource"]["uid"] for n in walk(dashboard) if isinstance(n.get("datasource"), dict)
    }
    provisioned = yaml.safe_load(
        (OPS / "grafana" / "provisioning" / "datasources" / "prometheus.yaml").read_text()
    )["datasources"]
    assert uids == {provisioned[0]["uid"]}
    assert provisioned[0]["url"] == "http://prometheus:9090"
    compose = yaml.safe_load((OPS / "compose.yaml").read_text())
    assert {"hlsdash", "prometheus", "grafana"} <= set(compose["services"])
    mounts = compose["services"]["grafana"]["volumes"]
    assert "./grafana/dashboards:/var/lib/grafana/dashboards:ro" in mounts
    provider = yaml.safe_load(
        (OPS / "grafana" / "provisioning" / "dashboards" / "hlsdash.yaml").read_text()
    )["providers"][0]
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"
    titles = " | ".join(p["title"] for p in dashboard["panels"]).lower()
    for topic in ("state", "speed", "fps", "segment age", "restarts", "origin requests",
                  "latency", "bytes out", "viewers", "cpu", "memory", "ingest bitrate",
                  "publishers connected"):
        assert topic in titles, topic


@pytest.mark.slow
async def test_every_metric_used_is_exported_by_a_live_service(tmp_path: Path) -> None:
    used: dict[str, set[str]] = {}
    for expr in [*dashboard_expressions(), *alert_expressions()]:
        for name in metric_names(grafana_free(expr)):
            used.setdefault(name, set()).add(expr)
    async with running_front(tmp_path) as front:
        created = await front.api.post("/streams", json=stream_body("obs"))
        assert created.status_code == 201, created.text
        # a push stream (waiting) exports the hlsdash_ingest_* series
        push = await front.api.post("/streams", json={"stream_id": "obs-push", "ingest": "rtmp"})
        assert push.status_code == 201, push.text
        await wait_live_segments(front, "obs", 2)
        assert (await front.origin.get("/obs/playlist.m3u8")).status_code == 200
        text = (await front.api.get("/metrics")).text
    exported = {
        sample.name for family in text_string_to_metric_families(text) for sample in family.samples
    }
    missing = {name: exprs for name, exprs in used.items() if name not in exported}
    assert set(missing) <= MADE_ELSEWHERE, missing
