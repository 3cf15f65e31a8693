import ipaddress
from pathlib import Path

import pytest

from supervisor.config import Settings, load_settings
from supervisor.errors import ConfigError


def test_defaults_match_the_original_service() -> None:
    settings = load_settings({})
    assert settings.segment_duration_s == 2.0
    assert settings.playlist_size == 10
    assert settings.low_latency_hls is True
    assert settings.cleanup_interval_s == 300.0
    assert settings.stale_threshold_s == 600.0
    assert settings.output_dir == Path("/var/www/streams")
    assert settings.api_port == 8083
    assert settings.origin_port == 8084
    assert settings.hw_encoder == "none"


def test_env_values_are_typed() -> None:
    settings = load_settings(
        {
            "SEGMENT_DURATION": "4",
            "PLAYLIST_SIZE": "6",
            "LOW_LATENCY_HLS": "false",
            "OUTPUT_DIR": "/tmp/x",
            "ALLOWED_PROTOCOLS": "srt, rtmp,file",
        }
    )
    assert settings.segment_duration_s == 4.0
    assert settings.playlist_size == 6
    assert settings.low_latency_hls is False
    assert settings.output_dir == Path("/tmp/x")
    assert settings.allowed_protocols == ("srt", "rtmp", "file")


@pytest.mark.parametrize(
    ("env", "value", "fragment"),
    [
        ("SEGMENT_DURATION", "abc", "SEGMENT_DURATION"),
        ("SEGMENT_DURATION", "0", "between 1 and 10"),
        ("PLAYLIST_SIZE", "2.5", "PLAYLIST_SIZE"),
        ("LOW_LATENCY_HLS", "maybe", "true or false"),
        ("STALE_THRESHOLD", "-1", "STALE_THRESHOLD"),
        ("OUTPUT_DIR", "  ", "must not be empty"),
        ("ENCODER_PRESET", "warp", "one of"),
        ("ALLOWED_PROTOCOLS", "gopher", "unknown protocol"),
        ("API_PORT", "70000", "API_PORT"),
    ],
)
def test_invalid_values_name_the_variable(env: str, value: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({env: value})
    assert caught.value.variable == env
    assert fragment in str(caught.value)
    assert repr(value) in str(caught.value) or env in str(caught.value)


def test_part_target_must_fit_the_segment() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({"SEGMENT_DURATION": "1", "PART_TARGET": "0.8"})
    assert caught.value.variable == "PART_TARGET"


def test_overrides_win_over_env() -> None:
    settings = load_settings({"PLAYLIST_SIZE": "6"}, {"playlist_size": 8})
    assert settings.playlist_size == 8
    assert isinstance(settings, Settings)


def test_source_host_policy_settings() -> None:
    defaults = load_settings({})
    assert (defaults.source_deny_loopback, defaults.source_deny_private) == (False, False)
    assert defaults.source_deny_networks == defaults.source_allow_networks == ()
    settings = load_settings(
        {
            "SOURCE_DENY_LOOPBACK": "true",
            "SOURCE_DENY_PRIVATE": "yes",
            "SOURCE_DENY_NETWORKS": "203.0.113.0/24, 2001:db8::/32",
            "SOURCE_ALLOW_NETWORKS": "169.254.7.0/24",
        }
    )
    assert settings.source_deny_loopback
    assert settings.source_deny_private
    assert settings.source_deny_networks == (
        ipaddress.ip_network("203.0.113.0/24"),
        ipaddress.ip_network("2001:db8::/32"),
    )
    assert settings.source_allow_networks == (ipaddress.ip_network("169.254.7.0/24"),)


def test_a_bad_network_list_names_the_variable_and_the_entry() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({"SOURCE_DENY_NETWORKS": "10.0.0.0/8,10.0.0.0/33"})
    assert caught.value.variable == "SOURCE_DENY_NETWORKS"
    assert "'10.0.0.0/33' is not an IP address or CIDR network" in str(caught.value)


def test_origin_limit_and_readiness_settings() -> None:
    defaults = load_settings({})
    assert defaults.origin_head_timeout_s == 10.0
    assert defaults.origin_idle_timeout_s == 15.0
    assert defaults.origin_send_timeout_s == 10.0
    assert defaults.origin_max_connections == 0  # derived from the fd budget
    assert defaults.ready_min_free_mb == 64.0
    with pytest.raises(ConfigError) as caught:
        load_settings({"ORIGIN_HEAD_TIMEOUT": "0"})
    assert caught.value.variable == "ORIGIN_HEAD_TIMEOUT"
    with pytest.raises(ConfigError) as caught:
        load_settings({"ORIGIN_MAX_CONNECTIONS": "-1"})
    assert caught.value.variable == "ORIGIN_MAX_CONNECTIONS"


def test_part_target_default_is_a_third_of_a_second() -> None:
    # chosen from ops/bench/parts.py: a 1 s PART-HOLD-BACK for no ladder CPU (README, issue 10)
    assert load_settings({}).part_target_s == 0.333


def test_restart_backoff_ceiling_reaches_every_stream() -> None:
    from supervisor.service import stream_settings_from  # noqa: PLC0415

    assert load_settings({}).restart_backoff_max_s == 30.0
    settings = load_settings({"RESTART_BACKOFF_MAX": "2"})
    assert stream_settings_from(settings, "ffmpeg").backoff.max_s == 2.0
    with pytest.raises(ConfigError) as caught:
        load_settings({"RESTART_BACKOFF_MAX": "0.1"})  # below the first pause (0.5 s)
    assert caught.value.variable == "RESTART_BACKOFF_MAX"


def test_registry_url_defaults_to_sqlite_in_the_output_dir() -> None:
    settings = load_settings({"OUTPUT_DIR": "/srv/streams"})
    assert settings.registry_url == ""
    assert settings.effective_registry_url == "sqlite:///srv/streams/.hlsdash/registry.db"
    assert settings.node_id == "local"
    redis = load_settings({"REGISTRY_URL": "redis://10.0.0.5:6379/2", "NODE_ID": "node-a.1"})
    assert redis.effective_registry_url == "redis://10.0.0.5:6379/2"
    assert redis.node_id == "node-a.1"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("mysql://db/x", "must be sqlite:///path/to/file.db or redis://host:port/db"),
        ("sqlite://relative.db", "must name an absolute file path"),
        ("sqlite:///", "must name an absolute file path"),
        ("redis:///0", "must name a host"),
        ("redis://h:6379/zero", "the database must be a number"),
    ],
)
def test_a_bad_registry_url_names_the_variable(raw: str, reason: str) -> None:
    with pytest.raises(ConfigError, match=reason) as caught:
        load_settings({"REGISTRY_URL": raw})
    assert caught.value.variable == "REGISTRY_URL"


def test_a_registry_password_is_never_echoed() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({"REGISTRY_URL": "redis://:hunter2@h:6379/x"})
    assert "hunter2" not in str(caught.value)
    assert "redis://***@h:6379/x" in str(caught.value)


@pytest.mark.parametrize("raw", ["", "-a", "a b", "x" * 65, "node/1"])
def test_a_bad_node_id_is_refused(raw: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({"NODE_ID": raw})
    assert caught.value.variable == "NODE_ID"
