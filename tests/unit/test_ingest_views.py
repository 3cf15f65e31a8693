"""The ``ingest`` block of a push stream: complete publish URLs, the key only when issued."""

from __future__ import annotations

from supervisor.http.ingest_views import ingest_view
from supervisor.service import IngestState, PublisherState


def _state(protocol: str, publisher: PublisherState | None = None) -> IngestState:
    return IngestState(
        protocol=protocol,
        srt_port=9001 if protocol == "srt" else None,
        srt_latency_ms=120 if protocol == "srt" else None,
        publisher=publisher,
        publishes=2,
        reconnects=1,
        bytes_total=1234,
    )


def test_rtmp_gives_obs_server_and_key_and_a_complete_url() -> None:
    view = ingest_view(
        _state("rtmp"), stream_id="cam", host="media.example", rtmp_port=1935,
        api_base="http://api", key="cam.SECRET",
    )
    assert view["server"] == "rtmp://media.example:1935/live"
    assert view["stream_key"] == "cam.SECRET"
    assert view["publish_url"] == "rtmp://media.example:1935/live/cam.SECRET"
    assert (view["publishes"], view["reconnects"], view["bytes_in_total"]) == (2, 1, 1234)
    assert view["publisher"] is None


def test_the_key_is_not_shown_again() -> None:
    view = ingest_view(
        _state("rtmp"), stream_id="cam", host="::1", rtmp_port=1935, api_base="http://api"
    )
    assert view["stream_key"] is None
    assert view["publish_url"] == "rtmp://[::1]:1935/live/<stream_key>"


def test_srt_url_carries_the_passphrase() -> None:
    view = ingest_view(
        _state("srt"), stream_id="cam", host="127.0.0.1", rtmp_port=1935,
        api_base="http://api", key="A-b_c" * 6,
    )
    assert view["publish_url"] == f"srt://127.0.0.1:9001?passphrase={'A-b_c' * 6}&pbkeylen=16"
    assert view["port"] == 9001
    assert view["latency_ms"] == 120


def test_whip_points_at_the_stream_endpoint_with_a_bearer_key() -> None:
    publisher = PublisherState("whip", "10.0.0.5:5000", "h264/opus", 4_000_000, 99, 0.0)
    view = ingest_view(
        _state("whip", publisher), stream_id="cam", host="h", rtmp_port=1935,
        api_base="https://api.example/", key="cam.K",
    )
    assert view["publish_url"] == "https://api.example/streams/cam/whip"
    assert view["authorization"] == "Bearer cam.K"
    assert view["publisher"] == {
        "protocol": "whip",
        "address": "10.0.0.5:5000",
        "codec": "h264/opus",
        "bitrate_in_bps": 4_000_000,
        "bytes_in": 99,
        "connected_since": "1970-01-01T00:00:00.000Z",
    }
