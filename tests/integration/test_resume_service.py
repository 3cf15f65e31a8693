"""Resume in-process (real FFmpeg), on Redis and SQLite: a service stopped and started again on the
same registry takes its streams back; records the settings of today refuse, or another node owns,
are not taken."""

from __future__ import annotations

from pathlib import Path

import pytest
from structlog.testing import capture_logs

from actors.status import StreamSpec
from supervisor.registry import open_registry
from tests.integration.http_helpers import running_front, stream_body, wait_live_segments
from tests.integration.live import LAVFI_SOURCE

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(params=["sqlite", "redis"])
def registry_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite://{tmp_path / 'registry.db'}"
    url: str = request.getfixturevalue("redis_url")
    return url


async def test_a_restarted_service_takes_its_streams_back(
    tmp_path: Path, registry_url: str
) -> None:
    async with open_registry(registry_url) as registry:
        async with running_front(tmp_path / "streams", registry=registry) as front:
            assert (await front.api.post("/streams", json=stream_body("cam"))).status_code == 201
            await wait_live_segments(front, "cam", 3)
            first_life = front.service.get("cam").status
        # stopped (as on SIGTERM): the record stays, with the last position
        record = await registry.get("cam")
        assert record is not None
        assert record.position is not None
        assert record.position.last_number + 1 >= first_life.segments_produced - 1
        async with running_front(tmp_path / "streams", registry=registry) as front:
            actor = front.service.get("cam")  # resumed before the listeners opened
            # the resume point is written before anything is published: numbers skip what a
            # position up to a second old may have missed (1 s segments: 3 numbers)
            resumed_at = await registry.get("cam")
            assert resumed_at is not None
            assert resumed_at.position is not None
            assert resumed_at.position.last_number == record.position.last_number + 3
            await wait_live_segments(front, "cam", 1)
            playlist = (await front.origin.get("/cam/240p/playlist.m3u8")).text
            numbers = [int(line[4:-4]) for line in playlist.splitlines() if line.startswith("seg_")]
            assert min(numbers) > record.position.last_number
            assert "#EXT-X-DISCONTINUITY-SEQUENCE:1" in playlist
            assert actor.status.created_unix_s == record.created_unix_s
            claimed = await registry.get("cam")
            assert claimed is not None
            assert claimed.fencing_epoch > record.fencing_epoch  # claimed anew


async def test_a_stream_killed_before_its_first_position_was_written(
    tmp_path: Path, registry_url: str
) -> None:
    # SIGKILL right after the first commit, before the writer wrote it: the record has no
    # position, yet players may have segment 0; the resumed stream must not number it again
    async with open_registry(registry_url) as registry:
        owned = await registry.register(
            StreamSpec("early", LAVFI_SOURCE, ("240p",)),
            node_id="local", created_unix_s=1_700_000_000.0, lease_ttl_s=30,
        )  # fmt: skip
        async with running_front(tmp_path / "streams", registry=registry) as front:
            record = await registry.get("early")
            assert record is not None
            assert record.fencing_epoch > owned.fencing_epoch
            assert record.position is not None
            assert record.position.last_number == 2
            assert record.position.availability_start_unix_s == 1_700_000_000.0
            await wait_live_segments(front, "early", 1)
            playlist = (await front.origin.get("/early/240p/playlist.m3u8")).text
            assert "#EXT-X-MEDIA-SEQUENCE:3" in playlist
            assert "#EXT-X-DISCONTINUITY-SEQUENCE:1" in playlist


async def test_records_refused_today_or_owned_elsewhere_are_not_taken(
    tmp_path: Path, registry_url: str
) -> None:
    async with open_registry(registry_url) as registry:
        # lavfi was allowed when these were created; the service below does not allow it
        await registry.register(
            StreamSpec("lavfi-cam", LAVFI_SOURCE, ("240p",)),
            node_id="local", created_unix_s=1.0, lease_ttl_s=30,
        )  # fmt: skip
        await registry.register(
            StreamSpec("theirs", "rtmp://u:secret@127.0.0.1/live/x", ("240p",)),
            node_id="node-b", created_unix_s=1.0, lease_ttl_s=30,
        )  # fmt: skip
        # a name DNS cannot resolve at this moment is not a reason to forget a stream: it
        # starts, and its encoder retries (a refused *address* would be, as lavfi is above)
        await registry.register(
            StreamSpec("dns-later", "rtmp://u:secret@no-such-host.invalid/live/x", ("240p",)),
            node_id="local", created_unix_s=1.0, lease_ttl_s=30,
        )  # fmt: skip
        with capture_logs() as logs:
            async with running_front(
                tmp_path / "streams", registry=registry, ALLOWED_PROTOCOLS="rtmp,http"
            ) as front:
                assert [a.spec.stream_id for a in front.service.list()] == ["dns-later"]
        refused = [e for e in logs if e["event"] == "stream_not_resumed"]
        unresolved = [e for e in logs if e["event"] == "stream_resumed_unresolved"]
        assert [e["stream_id"] for e in unresolved] == ["dns-later"]
        later = await registry.get("dns-later")
        assert later is not None  # kept: stopped only by the shutdown above
        assert later.fencing_epoch > 0
        assert [e["stream_id"] for e in refused] == ["lavfi-cam"]
        assert "lavfi" in refused[0]["reason"]
        assert await registry.get("lavfi-cam") is None  # it would never start: forgotten
        theirs = await registry.get("theirs")
        assert theirs is not None
        assert theirs.owner_node_id == "node-b"  # not ours to take
        assert all("secret" not in str(e) for e in logs)
