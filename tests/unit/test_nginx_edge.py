"""ops/nginx/edge.py: the edge config nginx accepts, with the caching rules the README promises."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from ops.nginx import edge
from ops.nginx.edge import BadOriginError, HostPort, edge_config, parse_origin

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://127.0.0.1:8084", HostPort("127.0.0.1", 8084)),
        ("http://origin.example/", HostPort("origin.example", 80)),
        ("http://[::1]:9000", HostPort("::1", 9000)),
    ],
)
def test_parse_origin(url: str, expected: HostPort) -> None:
    assert parse_origin(url) == expected


@pytest.mark.parametrize(
    "url",
    [
        "https://origin.example",  # the edge speaks plain HTTP to the origin
        "127.0.0.1:8084",
        "http://origin.example/streams",
        "http://origin.example:99999",
        "http://user:pw@origin.example",
        "http://:8084",
        "http://origin.example?x=1",
    ],
)
def test_parse_origin_refuses(url: str) -> None:
    with pytest.raises(BadOriginError):
        parse_origin(url)


def test_bracketed_authority() -> None:
    assert HostPort("::1", 9).authority == "[::1]:9"
    assert HostPort("a.example", 9).authority == "a.example:9"


def render(tmp_path: Path, *, collapse: bool) -> str:
    return edge_config(
        origin=HostPort("127.0.0.1", 8084),
        listen_host="127.0.0.1",
        listen_port=8090,
        workdir=tmp_path,
        run_as_root=False,
        collapse_live_edge=collapse,
    )


@pytest.mark.parametrize("collapse", [True, False])
def test_nginx_accepts_the_config(tmp_path: Path, collapse: bool) -> None:
    conf = tmp_path / "nginx.conf"
    conf.write_text(render(tmp_path, collapse=collapse))
    check = subprocess.run(
        [NGINX, "-t", "-p", str(tmp_path), "-c", str(conf)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 0, check.stderr


def test_cache_rules(tmp_path: Path) -> None:
    text = render(tmp_path, collapse=True)
    directives = {line.strip().rstrip(";") for line in text.splitlines()}
    # LL-HLS directives (only them) in the key
    assert f'proxy_cache_key "{edge.CACHE_KEY}"' in directives
    for name in ("_HLS_msn", "_HLS_part", "_HLS_skip"):
        assert f"$arg_{name}" in edge.CACHE_KEY
    assert "$args" not in edge.CACHE_KEY
    assert "$request_uri" not in edge.CACHE_KEY
    assert "proxy_cache_lock on" in directives
    assert f"proxy_cache_lock_timeout {edge.CACHE_LOCK_TIMEOUT_S}s" in directives
    assert any(d.startswith("proxy_cache_use_stale updating") for d in directives)
    # the origin's Cache-Control decides: no proxy_cache_valid, Cache-Control not ignored
    assert not any(d.startswith("proxy_cache_valid") for d in directives)
    assert not any("proxy_ignore_headers" in d and "Cache-Control" in d for d in directives)
    assert "location ^~ /@blocking/ {" not in directives


def test_uncollapsed_live_edge_skips_the_lock_for_blocking_reloads_and_parts(
    tmp_path: Path,
) -> None:
    text = render(tmp_path, collapse=False)
    assert text.count("proxy_cache_lock off;") == 2
    assert 'location ~ "/part_[0-9]+_[0-9]+\\.m4s$" {' in text
    assert 'if ($arg__HLS_msn != "") {' in text


def test_run_edge_refuses_a_bad_origin_with_a_message(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        edge.main(["--origin", "ftp://x", "--listen", "8090"])
    assert exited.value.code == 2
    assert "--origin must be an http:// URL" in capsys.readouterr().err
