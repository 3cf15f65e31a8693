"""WhipIngest's request checks: bearer tokens and content types (pure helpers)."""

from __future__ import annotations

import pytest

from supervisor.ingest.whip import bearer_token, is_sdp_content_type


@pytest.mark.parametrize(
    ("header", "token"),
    [
        ("Bearer abc.def", "abc.def"),
        ("bearer abc", "abc"),
        ("BEARER  abc ", "abc"),
        ("Basic abc", None),
        ("Bearer", None),
        ("Bearer ", None),
        ("abc", None),
        ("", None),
        (None, None),
    ],
)
def test_bearer_token(header: str | None, token: str | None) -> None:
    assert bearer_token(header) == token


@pytest.mark.parametrize(
    ("content_type", "ok"),
    [
        ("application/sdp", True),
        ("Application/SDP; charset=utf-8", True),
        ("application/sdp ", True),
        ("application/json", False),
        ("text/plain", False),
        ("application/sdpx", False),
        ("", False),
        (None, False),
    ],
)
def test_sdp_content_type(content_type: str | None, ok: bool) -> None:
    assert is_sdp_content_type(content_type) is ok
