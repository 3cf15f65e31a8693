"""ops/nginx/run-edge (``python -m ops.edge``): the --origin URL, the flags, what it runs."""

from __future__ import annotations

import argparse
import os
import subprocess
from pathlib import Path

import pytest

from ops.edge import __main__ as run_edge
from ops.edge.upstream import BadOriginError, HostPort, parse_origin
from ops.nginx import edge as nginx_edge
from ops.varnish import edge as varnish_edge


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


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--origin", "ftp://x", "--listen", "8090"], "--origin must be an http:// URL"),
        (["--origin", "http://x", "--listen", "0"], "--listen must be a port number"),
        (["--origin", "http://x", "--listen", "8090", "--cache", "squid"], "invalid choice"),
        (
            ["--origin", "http://x", "--listen", "8090", "--nginx-cache-lock-timeout-ms", "0"],
            "must be positive",
        ),
    ],
)
def test_run_edge_refuses_bad_flags_with_a_message(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    with pytest.raises(SystemExit) as exited:
        run_edge.main(argv)
    assert exited.value.code == 2
    assert message in capsys.readouterr().err


def parse(*flags: str) -> argparse.Namespace:
    return run_edge.parser_for_run_edge().parse_args(
        ["--origin", "http://127.0.0.1:8084", "--listen", "8090", *flags]
    )


def test_varnish_is_the_default_cache() -> None:
    args = parse()
    assert args.cache == "varnish"


def test_varnish_parameters_reach_varnishd(tmp_path: Path) -> None:
    args = parse("--varnish-param", "rush_exponent=8", "--varnish-param", "thread_pools=1")
    [varnishd] = run_edge.varnish_commands(args, HostPort("127.0.0.1", 8084), tmp_path)
    assert varnishd[-4:] == ["-p", "rush_exponent=8", "-p", "thread_pools=1"]


def test_varnish_commands_write_the_vcl_and_log_only_when_asked(tmp_path: Path) -> None:
    origin = HostPort("127.0.0.1", 8084)
    commands = run_edge.varnish_commands(parse(), origin, tmp_path)
    assert [argv[0] for argv in commands] == [varnish_edge.VARNISHD]
    assert (tmp_path / "edge.vcl").read_text().startswith("vcl 4.1;")
    assert '.port = "8084";' in (tmp_path / "edge.vcl").read_text()
    logged = run_edge.varnish_commands(
        parse("--access-log", str(tmp_path / "a.log")), origin, tmp_path
    )
    assert [argv[0] for argv in logged] == [varnish_edge.VARNISHD, varnish_edge.VARNISHNCSA]
    # varnishd itself accepts the generated VCL (compiled to C; -C only checks)
    check = subprocess.run(
        # -j none: as root, varnishd would read the file as user varnish (tmp_path is private)
        [
            varnish_edge.VARNISHD,
            "-C",
            "-j",
            "none",
            "-n",
            str(tmp_path / "n"),
            "-f",
            str(tmp_path / "edge.vcl"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 0, check.stderr


def test_nginx_commands_check_the_config_with_nginx(tmp_path: Path) -> None:
    origin = HostPort("127.0.0.1", 8084)
    args = parse("--cache", "nginx", "--nginx-unlocked", "blocking-reloads")
    commands = run_edge.nginx_commands(args, origin, tmp_path)
    assert isinstance(commands, list), commands
    assert commands == [[nginx_edge.NGINX, "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")]]
    assert "proxy_cache_lock off;" in (tmp_path / "nginx.conf").read_text()
    assert ("user root;" in (tmp_path / "nginx.conf").read_text()) == (os.geteuid() == 0)
