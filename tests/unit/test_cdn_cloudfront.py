"""ops/cdn: the CloudFront configs are valid input for the AWS API and route every origin URL right.

Validity is checked by botocore's own service model (the input shapes of ``CreateCachePolicy``
and ``CreateDistribution``: unknown keys, missing required keys, wrong types, out-of-range values,
bad enums), which is what the AWS CLI checks before it sends anything. Routing is checked by
matching every kind of URL the origin serves (names from ``actors/packager/layout.py``, confirmed
by ``origin_core``) against the behaviours in CloudFront's order and with its wildcard rules.
"""

from __future__ import annotations

import json
import re
import uuid
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import botocore.session
import pytest
from botocore.validate import ParamValidator

from actors.packager import layout
from supervisor.http import origin_core
from supervisor.http.origin_core import ObjectKind

CDN_DIR = Path(__file__).resolve().parents[2] / "ops" / "cdn"
PLAYLISTS_ID = str(uuid.UUID(int=1))
MEDIA_ID = str(uuid.UUID(int=2))
# AWS managed policy "Managed-CachingDisabled" (documented id)
CACHING_DISABLED_ID = "4135ea2d-6df8-44a3-9df3-4b5a84be39ad"
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def load(name: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads((CDN_DIR / name).read_text())
    return result


def rendered_distribution() -> dict[str, Any]:
    """The distribution config with its placeholders filled, as the README's sed line does."""
    text = (CDN_DIR / "distribution-config.json").read_text()
    text = (
        text.replace("@ORIGIN_DOMAIN@", "origin.example.com")
        .replace("@CALLER_REFERENCE@", "hlsdash-test")
        .replace("@PLAYLISTS_CACHE_POLICY_ID@", PLAYLISTS_ID)
        .replace("@MEDIA_CACHE_POLICY_ID@", MEDIA_ID)
    )
    assert "@" not in text, "a placeholder the README does not fill"
    result: dict[str, Any] = json.loads(text)
    return result


def validate(operation: str, params: dict[str, Any]) -> None:
    model = botocore.session.get_session().get_service_model("cloudfront")
    report = ParamValidator().validate(params, model.operation_model(operation).input_shape)
    assert not report.has_errors(), report.generate_report()


@pytest.mark.parametrize("name", ["cache-policy-playlists.json", "cache-policy-media.json"])
def test_cache_policies_are_valid_create_cache_policy_input(name: str) -> None:
    validate("CreateCachePolicy", {"CachePolicyConfig": load(name)})


def test_distribution_is_valid_create_distribution_input() -> None:
    validate("CreateDistribution", {"DistributionConfig": rendered_distribution()})


def test_the_validator_catches_what_the_original_example_got_wrong() -> None:
    """The check has teeth: an unknown key and a wrong type are reported (a malformed id is not a
    shape error, so the ids are checked separately below)."""
    broken = load("cache-policy-playlists.json")
    broken["MinTTL"] = "0"
    broken["QueryStringsCacheKeys"] = ["_HLS_msn"]
    with pytest.raises(AssertionError, match="QueryStringsCacheKeys"):
        validate("CreateCachePolicy", {"CachePolicyConfig": broken})


def behaviours(dist: dict[str, Any]) -> list[dict[str, Any]]:
    return [*dist["CacheBehaviors"]["Items"], {**dist["DefaultCacheBehavior"], "PathPattern": "*"}]


def cloudfront_match(dist: dict[str, Any], path: str) -> dict[str, Any]:
    """The behaviour CloudFront picks: the first path pattern that matches, in list order (``*``
    any characters, ``?`` one, case-sensitive), else the default."""
    for behaviour in behaviours(dist):
        pattern = behaviour["PathPattern"].replace("[", "[[]")  # CloudFront has no classes
        if fnmatchcase(path, pattern) or fnmatchcase(path.lstrip("/"), pattern):
            return behaviour
    raise AssertionError("the default behaviour always matches")


ORIGIN_URLS: dict[str, ObjectKind | None] = {
    f"/cam1/{layout.MULTIVARIANT_PLAYLIST}": ObjectKind.MULTIVARIANT_PLAYLIST,
    f"/cam1/{layout.DASH_MANIFEST}": ObjectKind.DASH_MANIFEST,
    f"/cam1/{layout.media_playlist_uri('720p')}": ObjectKind.MEDIA_PLAYLIST,
    f"/cam1/audio/{layout.MEDIA_PLAYLIST}": ObjectKind.MEDIA_PLAYLIST,
    f"/cam1/720p/{layout.init_file_name(3)}": ObjectKind.INIT,
    f"/cam1/audio/{layout.init_file_name(0)}": ObjectKind.INIT,
    f"/cam1/1080p/{layout.segment_file_name(123456)}": ObjectKind.SEGMENT,
    f"/cam1/source/{layout.segment_file_name(7)}": ObjectKind.SEGMENT,
    f"/cam1/240p/{layout.part_file_name(12, 3)}": ObjectKind.PART,
    "/time": None,
    "/health": None,
}


def test_every_url_the_origin_serves_is_listed() -> None:
    for path, kind in ORIGIN_URLS.items():
        split = origin_core.split_stream_path(path)
        if kind is None:
            assert split is None
            continue
        assert split is not None
        assert origin_core.classify_path(split[1]) is kind, path
    listed = {k for k in ORIGIN_URLS.values() if k is not None}
    assert listed == set(ObjectKind), "a kind of object the origin serves has no URL here"


@pytest.mark.parametrize("path", list(ORIGIN_URLS))
def test_each_origin_url_reaches_the_right_cache_policy(path: str) -> None:
    dist = rendered_distribution()
    behaviour = cloudfront_match(dist, path)
    kind = ORIGIN_URLS[path]
    assert set(behaviour["AllowedMethods"]["Items"]) == {"GET", "HEAD", "OPTIONS"}
    if kind is None:  # /time, /health: never cached
        assert behaviour["CachePolicyId"] == CACHING_DISABLED_ID
        assert behaviour["Compress"] is False
    elif origin_core.is_document(kind):
        assert behaviour["CachePolicyId"] == PLAYLISTS_ID
        assert behaviour["Compress"] is True  # compression for playlists and the MPD only
    else:
        assert behaviour["CachePolicyId"] == MEDIA_ID
        assert behaviour["Compress"] is False


def test_blocking_reload_directives_are_in_the_playlist_cache_key() -> None:
    params = load("cache-policy-playlists.json")["ParametersInCacheKeyAndForwardedToOrigin"]
    strings = params["QueryStringsConfig"]
    assert strings["QueryStringBehavior"] == "whitelist"
    assert sorted(strings["QueryStrings"]["Items"]) == ["_HLS_msn", "_HLS_part", "_HLS_skip"]
    assert strings["QueryStrings"]["Quantity"] == 3
    # the gzip/br variants are keyed separately, so CloudFront may compress playlists
    assert params["EnableAcceptEncodingGzip"] is True


@pytest.mark.parametrize("name", ["cache-policy-playlists.json", "cache-policy-media.json"])
def test_policies_honour_origin_cache_control(name: str) -> None:
    policy = load(name)
    # MinTTL 0: a no-cache growing segment and max-age=1 playlists are not held longer than the
    # origin says; MaxTTL reaches the longest max-age the origin sends (a year for media, 6 x TD
    # for blocking reloads)
    assert policy["MinTTL"] == 0
    longest = 31536000 if "media" in name else 60
    assert policy["MaxTTL"] >= longest


def test_media_is_never_keyed_by_query_or_encoding() -> None:
    params = load("cache-policy-media.json")["ParametersInCacheKeyAndForwardedToOrigin"]
    assert params["QueryStringsConfig"]["QueryStringBehavior"] == "none"
    assert params["EnableAcceptEncodingGzip"] is False
    assert params["EnableAcceptEncodingBrotli"] is False


def test_origin_http_versions_and_ids() -> None:
    dist = rendered_distribution()
    origin = dist["Origins"]["Items"][0]
    assert origin["CustomOriginConfig"]["HTTPPort"] == 8084
    # blocking reloads are held up to 3 x target duration at the origin; CloudFront must wait
    assert origin["CustomOriginConfig"]["OriginReadTimeout"] >= 30
    assert dist["HttpVersion"] == "http2and3"
    for behaviour in behaviours(dist):
        assert UUID_RE.fullmatch(behaviour["CachePolicyId"]), behaviour["CachePolicyId"]
        assert behaviour["TargetOriginId"] == origin["Id"]
