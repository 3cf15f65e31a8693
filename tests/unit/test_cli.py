"""``hlsdash demo`` settings: lavfi never reaches the client-facing allow-list, loopback by default
(issue 11, defect 2)."""

from __future__ import annotations

from supervisor.cli import build_parser, settings_from_args
from supervisor.config import DEFAULT_ALLOWED_PROTOCOLS


def test_demo_keeps_lavfi_off_the_allow_list_and_listens_on_loopback() -> None:
    args = build_parser().parse_args(["demo"])
    settings = settings_from_args(args, {})
    assert settings.allowed_protocols == DEFAULT_ALLOWED_PROTOCOLS
    assert "lavfi" not in settings.allowed_protocols
    assert settings.api_host == "127.0.0.1"
    assert settings.api_token == ""


def test_demo_listens_elsewhere_only_when_told() -> None:
    for argv, environ in (
        (["demo", "--host", "0.0.0.0"], {}),
        (["demo", "--api-host", "0.0.0.0"], {}),
        (["demo"], {"API_HOST": "0.0.0.0"}),
    ):
        settings = settings_from_args(build_parser().parse_args(argv), environ)
        assert settings.api_host == "0.0.0.0"


def test_serve_keeps_its_defaults() -> None:
    settings = settings_from_args(build_parser().parse_args(["serve"]), {})
    assert settings.api_host == "0.0.0.0"
    assert settings.allowed_protocols == DEFAULT_ALLOWED_PROTOCOLS
