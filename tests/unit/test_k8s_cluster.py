"""ops/k8s/cluster: valid for the pinned Kubernetes, and consistent with the cluster code: stable
NODE_ID from the pod name, peer URLs through the headless Service, the drain in preStop, the
Redis the nodes point at, a budget of one node at a time."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from supervisor.cli import build_parser
from supervisor.cluster.drain_command import drain, own_streams
from supervisor.config import ENV_VARS, load_settings
from tests.unit.test_k8s import KUBERNETES_VERSION, SHUTDOWN_BOUND_S

ROOT = Path(__file__).resolve().parents[2]
CLUSTER = ROOT / "ops" / "k8s" / "cluster"


def documents() -> list[dict[str, Any]]:
    kustomization = yaml.safe_load((CLUSTER / "kustomization.yaml").read_text())
    docs: list[dict[str, Any]] = []
    for name in kustomization["resources"]:
        docs += [d for d in yaml.safe_load_all((CLUSTER / name).read_text()) if d]
    listed = {f.name for f in CLUSTER.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == set(kustomization["resources"]), "a manifest kustomize would not apply"
    return docs


def one(kind: str, name: str) -> dict[str, Any]:
    (found,) = [d for d in documents() if d["kind"] == kind and d["metadata"]["name"] == name]
    return found


def node_container() -> dict[str, Any]:
    (only,) = one("StatefulSet", "hlsdash")["spec"]["template"]["spec"]["containers"]
    return only


def env() -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in node_container()["env"]}


@pytest.mark.parametrize("doc", documents(), ids=lambda d: f"{d['kind']}/{d['metadata']['name']}")
def test_manifest_is_valid_for_the_pinned_kubernetes(doc: dict[str, Any]) -> None:
    kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_node_identity_and_peer_urls_come_from_the_pod_name_and_the_headless_service() -> None:
    headless = one("Service", "hlsdash-nodes")
    assert headless["spec"]["clusterIP"] == "None"
    assert headless["spec"]["publishNotReadyAddresses"] is True
    statefulset = one("StatefulSet", "hlsdash")
    assert statefulset["spec"]["serviceName"] == "hlsdash-nodes"
    pod_name = next(e for e in node_container()["env"] if e["name"] == "POD_NAME")
    assert pod_name["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    values = env()
    assert values["NODE_ID"] == "$(POD_NAME)"
    assert values["NODE_API_URL"] == f"http://$(POD_NAME).hlsdash-nodes:{values['API_PORT']}"
    assert values["NODE_ORIGIN_URL"] == (
        f"http://$(POD_NAME).hlsdash-nodes:{values['ORIGIN_PORT']}"
    )


def test_every_env_var_is_a_setting_and_loads() -> None:
    values = env()
    names = set(values) - {"POD_NAME", "API_TOKEN"}
    assert names <= set(ENV_VARS), names - set(ENV_VARS)
    # as the kubelet expands them for pod hlsdash-0
    expanded = {k: v.replace("$(POD_NAME)", "hlsdash-0") for k, v in values.items()}
    expanded.pop("API_TOKEN")
    expanded.pop("POD_NAME")
    settings = load_settings(expanded)
    assert settings.node_api_url == "http://hlsdash-0.hlsdash-nodes:8083"
    assert settings.node_capacity_cores == float(node_container()["resources"]["requests"]["cpu"])


def test_the_nodes_point_at_the_redis_service() -> None:
    url = env()["REGISTRY_URL"]
    match = re.fullmatch(r"redis://([^:/]+):(\d+)/\d+", url)
    assert match
    redis_service = one("Service", "hlsdash-redis")
    assert match[1] == redis_service["metadata"]["name"]
    assert int(match[2]) == redis_service["spec"]["ports"][0]["port"]


def test_prestop_drains_within_the_grace_period() -> None:
    pre_stop = node_container()["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[:2] == ["hlsdash", "drain"]
    args = build_parser().parse_args(pre_stop[1:])
    assert args.command == "drain"
    grace = one("StatefulSet", "hlsdash")["spec"]["template"]["spec"][
        "terminationGracePeriodSeconds"
    ]
    # the drain, then SIGTERM's own bound
    assert grace >= args.timeout + SHUTDOWN_BOUND_S


def test_one_node_at_a_time() -> None:
    assert one("PodDisruptionBudget", "hlsdash")["spec"]["maxUnavailable"] == 1
    strategy = one("StatefulSet", "hlsdash")["spec"]["updateStrategy"]
    assert strategy["rollingUpdate"]["maxUnavailable"] == 1


def test_services_select_the_node_pods() -> None:
    labels = one("StatefulSet", "hlsdash")["spec"]["template"]["metadata"]["labels"]
    for name in ("hlsdash-nodes", "hlsdash-api", "hlsdash-origin"):
        selector = one("Service", name)["spec"]["selector"]
        assert selector.items() <= labels.items(), name


def test_drain_asks_then_waits_until_the_node_runs_nothing() -> None:
    calls: list[tuple[str, str]] = []
    answers = iter([2, 1, 0])

    def request(url: str, token: str, *, method: str = "GET") -> dict[str, Any]:
        calls.append((method, url))
        if method == "POST":
            return {"node_id": "hlsdash-1", "draining": True}
        return {"nodes": [{"node_id": "hlsdash-1", "alive": True, "streams": next(answers)}]}

    clock = iter(range(100))
    code = drain(
        {"NODE_ID": "hlsdash-1", "API_PORT": "9000"},
        timeout_s=30,
        request=request,
        sleep=lambda _s: None,
        monotonic=lambda: float(next(clock)),
    )
    assert code == 0
    assert calls[0] == ("POST", "http://127.0.0.1:9000/cluster/nodes/hlsdash-1/drain")
    assert [m for m, _ in calls] == ["POST", "GET", "GET", "GET"]


def test_drain_gives_up_at_its_timeout() -> None:
    def request(url: str, token: str, *, method: str = "GET") -> dict[str, Any]:
        return {"nodes": [{"node_id": "n", "alive": True, "streams": 1}]}

    clock = iter(range(100))
    code = drain(
        {"NODE_ID": "n"},
        timeout_s=5,
        request=request,
        sleep=lambda _s: None,
        monotonic=lambda: float(next(clock)),
    )
    assert code == 1


def test_own_streams_reads_only_the_live_node() -> None:
    cluster = {
        "nodes": [{"node_id": "a", "alive": False}, {"node_id": "b", "alive": True, "streams": 3}]
    }
    assert own_streams(cluster, "a") is None
    assert own_streams(cluster, "b") == 3


def _port_range(text: str) -> range:
    first, last = (int(p) for p in text.split("-"))
    return range(first, last + 1)


def test_the_ingest_ports_each_pod_listens_on_are_declared() -> None:
    """Push publish URLs name the pod (INGEST_PUBLIC_HOST or NODE_API_URL's host): the pod's
    RTMP, SRT and WebRTC ports must be the ones it declares, with the right protocol, and
    enough SRT ports for MAX_STREAMS push streams."""
    settings = env()
    declared = {(p["containerPort"], p["protocol"]) for p in node_container()["ports"]}
    assert (int(settings["RTMP_PORT"]), "TCP") in declared
    srt_ports = _port_range(settings["SRT_PORT_RANGE"])
    assert len(srt_ports) >= int(settings["MAX_STREAMS"])
    for port in (*srt_ports, *_port_range(settings["WEBRTC_UDP_PORTS"])):
        assert (port, "UDP") in declared, port
    headless_ports = {p["name"]: p for p in one("Service", "hlsdash-nodes")["spec"]["ports"]}
    assert headless_ports["rtmp"]["port"] == int(settings["RTMP_PORT"])
