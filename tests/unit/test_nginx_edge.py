"""ops/nginx/edge.py: the edge config nginx accepts, with the caching rules the README promises."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from ops.edge.upstream import HostPort
from ops.nginx import edge
from ops.nginx.edge import Unlocked, edge_config

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


def render(tmp_path: Path, *, unlocked: Unlocked = "nothing", lock_timeout_ms: int = 35000) -> str:
    return edge_config(
        origin=HostPort("127.0.0.1", 8084),
        listen_host="127.0.0.1",
        listen_port=8090,
        workdir=tmp_path,
        run_as_root=False,
        unlocked=unlocked,
        cache_lock_timeout_ms=lock_timeout_ms,
    )


@pytest.mark.parametrize("unlocked", edge.UNLOCKED_CHOICES)
def test_nginx_accepts_the_config(tmp_path: Path, unlocked: Unlocked) -> None:
    conf = tmp_path / "nginx.conf"
    conf.write_text(render(tmp_path, unlocked=unlocked))
    check = subprocess.run(
        [NGINX, "-t", "-p", str(tmp_path), "-c", str(conf)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 0, check.stderr


def test_cache_rules(tmp_path: Path) -> None:
    text = render(tmp_path)
    directives = {line.strip().rstrip(";") for line in text.splitlines()}
    # LL-HLS directives (only them) in the key
    assert f'proxy_cache_key "{edge.CACHE_KEY}"' in directives
    for name in ("_HLS_msn", "_HLS_part", "_HLS_skip"):
        assert f"$arg_{name}" in edge.CACHE_KEY
    assert "$args" not in edge.CACHE_KEY
    assert "$request_uri" not in edge.CACHE_KEY
    assert "proxy_cache_lock on" in directives
    assert f"proxy_cache_lock_timeout {edge.CACHE_LOCK_TIMEOUT_S * 1000}ms" in directives
    assert any(d.startswith("proxy_cache_use_stale updating") for d in directives)
    # the origin's Cache-Control decides: no proxy_cache_valid, Cache-Control not ignored
    assert not any(d.startswith("proxy_cache_valid") for d in directives)
    assert not any("proxy_ignore_headers" in d and "Cache-Control" in d for d in directives)
    assert "location ^~ /@blocking/ {" not in directives


def test_unlocked_blocking_reloads_skip_the_lock_and_parts_keep_it(tmp_path: Path) -> None:
    text = render(tmp_path, unlocked="blocking-reloads")
    assert text.count("proxy_cache_lock off;") == 1
    assert 'if ($arg__HLS_msn != "") {' in text
    assert "location ^~ /@blocking/ {" in text
    assert "part_[0-9]+_[0-9]+" not in text


def test_unlocked_live_edge_skips_the_lock_for_blocking_reloads_and_parts(tmp_path: Path) -> None:
    text = render(tmp_path, unlocked="live-edge")
    assert text.count("proxy_cache_lock off;") == 2
    assert 'location ~ "/part_[0-9]+_[0-9]+\\.m4s$" {' in text
    assert 'if ($arg__HLS_msn != "") {' in text


def test_cache_lock_timeout_in_milliseconds(tmp_path: Path) -> None:
    directives = {
        line.strip().rstrip(";") for line in render(tmp_path, lock_timeout_ms=100).splitlines()
    }
    assert "proxy_cache_lock_timeout 100ms" in directives
    assert f"proxy_cache_lock_age {edge.CACHE_LOCK_TIMEOUT_S}s" in directives
