"""The hand-written OpenAPI document matches the Quart app's URL map, both ways."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from supervisor import __version__
from supervisor.config import load_settings
from supervisor.http.api import create_api_app
from supervisor.http.openapi import openapi_document
from supervisor.http.playback import Playback
from supervisor.metrics import Metrics
from supervisor.service import StreamService
from tests.integration.http_helpers import running_front
from tests.integration.live import service_env

pytestmark = [pytest.mark.integration]

IMPLICIT = {"HEAD", "OPTIONS"}
HTTP_METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}


def openapi_path(rule: str) -> str:
    return re.sub(r"<(?:[a-z_]+:)?([A-Za-z_][A-Za-z0-9_]*)>", r"{\1}", rule)


def app_routes(app: object) -> dict[str, set[str]]:
    routes: dict[str, set[str]] = {}
    for rule in app.url_map.iter_rules():  # type: ignore[attr-defined]
        methods = set(rule.methods or ()) - IMPLICIT
        if not methods:
            continue
        routes.setdefault(openapi_path(rule.rule), set()).update(m.lower() for m in methods)
    return routes


def document_routes(document: dict[str, object]) -> dict[str, set[str]]:
    paths = document["paths"]
    assert isinstance(paths, dict)
    return {path: {m for m in ops if m in HTTP_METHODS} for path, ops in paths.items()}


def test_openapi_matches_url_map(tmp_path: Path) -> None:
    service = StreamService(load_settings(service_env(tmp_path)))
    app = create_api_app(service, Metrics(service), Playback(service))
    assert app_routes(app) == document_routes(openapi_document(__version__))


async def test_openapi_served(tmp_path: Path) -> None:
    async with running_front(tmp_path) as front:
        response = await front.api.get("/openapi.json")
        assert response.status_code == 200
        document = response.json()
        assert document["openapi"].startswith("3.")
        app_map = app_routes(create_api_app(front.service, front.metrics, front.playback))
        assert document_routes(document) == app_map
        # every path parameter named in a path is declared
        for path, item in document["paths"].items():
            names = set(re.findall(r"{(\w+)}", path))
            declared = {p["name"] for p in item.get("parameters", [])}
            for method in HTTP_METHODS & set(item):
                declared |= {p["name"] for p in item[method].get("parameters", [])}
            assert names == declared, path
        docs = await front.api.get("/docs")
        assert docs.status_code == 200
        assert "openapi.json" in docs.text


def test_links_and_statuses_the_service_really_answers() -> None:
    document = openapi_document(__version__)
    operations = {
        op["operationId"]: (path, method)
        for path, item in document["paths"].items()
        for method, op in item.items()
        if isinstance(op, dict) and "operationId" in op
    }
    created = document["paths"]["/streams"]["post"]["responses"]["201"]
    # create → read, renew, delete: stateful clients follow the stream id of the 201
    assert {link["operationId"] for link in created["links"].values()} == {
        "getStream",
        "heartbeat",
        "deleteStream",
        "rotateKey",  # 200 for a push stream, 409 (documented) for a pull
    }
    for link in created["links"].values():
        assert link["operationId"] in operations
        assert link["parameters"] == {"stream_id": "$response.body#/stream_id"}
    playback = document["paths"]["/streams/{stream_id}/{relative}"]["get"]["responses"]
    assert {"200", "206", "304", "400", "404", "416", "503"} <= set(playback)
    assert "404" in document["paths"]["/static/{name}"]["get"]["responses"]
