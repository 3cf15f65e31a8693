"""The dependency rules of DESIGN.md, read from the source (ast), so a fifth LL path can't appear.

* The HTTP layer (``supervisor/http/``) reaches a stream only through the live-edge interface
  (``actors.edge``); besides it, only modules of names, layouts and small pure helpers.
* No module under ``supervisor/`` reads a stream's timeline, waits on its gates or touches any
  object's private state (``x._name`` with ``x`` not ``self``/``cls``).
* ``actors/`` never imports the HTTP layer; the packager core imports neither trio nor HTTP.
* The supervision library (``supervisor/otp/``) imports nothing of ours, and it is the only part
  of ``supervisor/`` that ``actors/`` imports.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# what the HTTP layer may import from actors/, and why
HTTP_MAY_IMPORT = {
    "actors.edge": "the live-edge interface: every stream object and live-edge wait",
    "actors.packager.layout": "names and layouts (stream id pattern, file names, paths)",
    "actors.status": "names: stream states and quality names for the API and OpenAPI",
    "actors.ffmpeg.sources": "redact_url / validate_source_url: pure string checks for views",
    "actors.files": "read_or_none: the dashboard's static files",
    "actors.ffmpeg.host_guard": "SourceRefused: the admission error POST /streams maps to 422",
    "actors.packager.hls": "format_iso8601_ms for /time (the same clock format as the playlists)",
}
# internals of a stream that no supervisor module may read or call
STREAM_INTERNALS = {"timeline", "wait_until", "wait_changed", "gates", "publish_settings", "metas"}


def modules(folder: str) -> Iterator[tuple[Path, ast.Module]]:
    for path in sorted((ROOT / folder).rglob("*.py")):
        yield path, ast.parse(path.read_text(), filename=str(path))


def imported(tree: ast.Module) -> Iterator[str]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module
            yield from (f"{node.module}.{alias.name}" for alias in node.names)


def _allowed_for_http(name: str) -> bool:
    return any(name == ok or name.startswith(f"{ok}.") for ok in HTTP_MAY_IMPORT)


def test_the_http_layer_imports_only_the_edge_interface_names_and_layouts() -> None:
    offenders = []
    for path, tree in modules("supervisor/http"):
        for name in imported(tree):
            if name.startswith("actors") and name != "actors" and not _allowed_for_http(name):
                # "from actors.edge import LiveEdge" also yields "actors.edge.LiveEdge": fine
                offenders.append(f"{path.relative_to(ROOT)}: {name}")
    assert offenders == []


def test_no_supervisor_module_reads_stream_internals_or_private_state() -> None:
    offenders = []
    for path, tree in modules("supervisor"):
        for node in ast.walk(tree):
            if not isinstance(node, ast.Attribute):
                continue
            owner = node.value.id if isinstance(node.value, ast.Name) else None
            private = node.attr.startswith("_") and not node.attr.startswith("__")
            if private and owner not in {"self", "cls"}:
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}: .{node.attr}")
            if node.attr in STREAM_INTERNALS:
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}: .{node.attr}")
    assert offenders == []


def test_actors_never_import_the_http_layer_and_the_packager_core_is_pure() -> None:
    offenders = []
    for path, tree in modules("actors"):
        names = set(imported(tree))
        if any(n.startswith("supervisor.http") for n in names):
            offenders.append(f"{path.relative_to(ROOT)}: imports the HTTP layer")
        core = path.parent.name == "packager"
        if core and any(n == "trio" or n.startswith(("trio.", "quart", "hypercorn")) for n in names):
            offenders.append(f"{path.relative_to(ROOT)}: packager core imports trio/HTTP")
    assert offenders == []


def test_the_supervision_library_imports_nothing_of_ours_and_is_all_actors_may_import() -> None:
    offenders = []
    for path, tree in modules("supervisor/otp"):
        ours = [n for n in imported(tree) if n.split(".")[0] in {"supervisor", "actors"}]
        offenders += [f"{path.relative_to(ROOT)}: {n}" for n in ours if not n.startswith("supervisor.otp")]
    for path, tree in modules("actors"):
        theirs = [n for n in imported(tree) if n.split(".")[0] == "supervisor"]
        offenders += [f"{path.relative_to(ROOT)}: {n}" for n in theirs if not n.startswith("supervisor.otp")]
    assert offenders == []


def test_the_edge_rules_are_pure() -> None:
    tree = ast.parse((ROOT / "actors/edge/rules.py").read_text())
    assert not [n for n in imported(tree) if n.split(".")[0] in {"trio", "supervisor"}]
