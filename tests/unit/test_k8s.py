"""ops/k8s: valid for a pinned Kubernetes (kubernetes-validate, strict: unknown fields refused) and
consistent with the service: probes, ports, resources, grace period, security, the command."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from supervisor.config import load_settings

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "ops" / "k8s"
KUBERNETES_VERSION = "1.31.0"  # pinned: the oldest minor still in wide support when written
# `hlsdash serve` exits within this after SIGTERM in tests/integration/test_service_process.py
# (measured 0.6-1.0 s with two live streams; see the comment in deployment.yaml)
SHUTDOWN_BOUND_S = 15


def documents() -> list[dict[str, Any]]:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    docs: list[dict[str, Any]] = []
    for name in kustomization["resources"]:
        docs += [d for d in yaml.safe_load_all((K8S / name).read_text()) if d]
    listed = {f.name for f in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == set(kustomization["resources"]), "a manifest kustomize would not apply"
    return docs


def one(kind: str, name: str | None = None) -> dict[str, Any]:
    found = [
        d for d in documents() if d["kind"] == kind and name in (None, d["metadata"]["name"])
    ]
    assert len(found) == 1, (kind, name, found)
    return found[0]


@pytest.mark.parametrize(
    "doc", documents(), ids=lambda d: f"{d['kind']}/{d['metadata']['name']}"
)
def test_manifest_is_valid_for_the_pinned_kubernetes(doc: dict[str, Any]) -> None:
    kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_the_validator_refuses_an_unknown_field() -> None:
    broken = one("Deployment")
    broken["spec"]["template"]["spec"]["containers"][0]["livenesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


def container() -> dict[str, Any]:
    (only,) = one("Deployment")["spec"]["template"]["spec"]["containers"]
    return only


def env() -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in container()["env"]}


def port_number(name_or_number: str | int) -> int:
    if isinstance(name_or_number, int):
        return name_or_number
    (port,) = [p["containerPort"] for p in container()["ports"] if p["name"] == name_or_number]
    return int(port)


def test_probes() -> None:
    c = container()
    api_port = int(env()["API_PORT"])
    assert c["livenessProbe"]["httpGet"]["path"] == "/health"
    assert c["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert c["startupProbe"]["httpGet"]["path"] == "/health"
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        assert port_number(c[probe]["httpGet"]["port"]) == api_port


def test_services_expose_the_api_and_the_origin() -> None:
    api = one("Service", "hlsdash-api")["spec"]["ports"]
    origin = one("Service", "hlsdash-origin")["spec"]["ports"]
    assert [(p["port"], port_number(p["targetPort"])) for p in api] == [(8083, 8083)]
    assert [(p["port"], port_number(p["targetPort"])) for p in origin] == [(8084, 8084)]
    assert (int(env()["API_PORT"]), int(env()["ORIGIN_PORT"])) == (8083, 8084)
    pod_labels = one("Deployment")["spec"]["template"]["metadata"]["labels"]
    for doc in documents():
        selector = doc["spec"].get("selector")
        if selector is not None:
            wanted = selector.get("matchLabels", selector)
            assert wanted.items() <= pod_labels.items(), doc["metadata"]["name"]


def test_resources_grace_period_and_disruption_budget() -> None:
    spec = one("Deployment")["spec"]["template"]["spec"]
    resources = container()["resources"]
    # sized per ladder: ~0.85 CPU per 1080p five-rung veryfast ladder, MAX_STREAMS of them
    assert float(resources["requests"]["cpu"]) >= 0.85 * int(env()["MAX_STREAMS"])
    assert resources["requests"]["memory"]
    assert resources["limits"]["memory"]
    assert "cpu" not in resources["limits"]  # CFS throttling would stall encoders
    assert spec["terminationGracePeriodSeconds"] >= SHUTDOWN_BOUND_S
    assert one("PodDisruptionBudget")["spec"]["minAvailable"] == 1


def test_non_root_read_only_root_and_a_writable_output_dir() -> None:
    spec = one("Deployment")["spec"]["template"]["spec"]
    dockerfile = (ROOT / "Dockerfile").read_text()
    uid = re.search(r"useradd .*--uid (\d+)", dockerfile)
    assert uid
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["runAsUser"] == int(uid[1])
    security = container()["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    mounts = {m["mountPath"]: m["name"] for m in container()["volumeMounts"]}
    assert env()["OUTPUT_DIR"] in mounts
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert "emptyDir" in volumes[mounts[env()["OUTPUT_DIR"]]]


def test_prometheus_scrape_annotations() -> None:
    annotations = one("Deployment")["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert int(annotations["prometheus.io/port"]) == int(env()["API_PORT"])
    assert annotations["prometheus.io/path"] == "/metrics"


def test_command_and_env_match_hlsdash_serve_help() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["hlsdash"]' in dockerfile
    assert container()["args"] == ["serve"]
    assert "command" not in container()  # keep the image's entrypoint (PID 1 gets SIGTERM)
    help_text = subprocess.run(
        [sys.executable, "-m", "supervisor.cli", "serve", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    known = set(re.findall(r"\[([A-Z][A-Z0-9_]+)\]", help_text))
    assert "SEGMENT_DURATION" in known
    names = [e["name"] for e in container()["env"]]
    assert set(names) <= known, set(names) - known
    # and the values the service would refuse at start-up are not there: load them for real
    load_settings({k: v for k, v in env().items() if k != "API_TOKEN"})
