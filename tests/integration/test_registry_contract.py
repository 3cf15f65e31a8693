"""The StreamRegistry contract, run against both backends: SQLite (a real file) and Redis (a real
redis-server on a loopback port, tests/redis_server.py)."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import pytest
import trio

from actors.packager.timeline import TimelinePosition
from actors.status import StreamSpec
from supervisor.registry import open_registry
from supervisor.registry.interface import (
    Ownership,
    RegistryUnavailable,
    StaleFencingEpoch,
    StreamAlreadyRegistered,
    StreamNotRegistered,
    StreamRegistry,
)
from supervisor.registry.sqlite_backend import MIGRATIONS, SqliteRegistry
from tests.integration.tmpfs import fill, small_tmpfs
from tests.redis_server import free_port, redis_command, running_redis

pytestmark = pytest.mark.integration

SECRET_URL = "rtmp://user:hunter2@media.example/live/cam1?token=abc"
TTL_S = 30.0

Opener = Callable[[], AbstractAsyncContextManager[StreamRegistry]]


def spec(stream_id: str = "cam1", source_url: str = SECRET_URL) -> StreamSpec:
    return StreamSpec(stream_id=stream_id, source_url=source_url, qualities=("720p", "240p"))


def position(last_number: int, *, epoch: int = 1) -> TimelinePosition:
    return TimelinePosition(
        availability_start_unix_s=1_700_000_000.0,
        encoder_epoch=epoch,
        last_number=last_number,
        media_end_s=2.0 * (last_number + 1),
        discontinuities=epoch - 1,
    )


@pytest.fixture(params=["sqlite", "redis"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str]:
    if request.param == "sqlite":
        return "sqlite", f"sqlite://{tmp_path / 'registry' / 'registry.db'}"
    return "redis", request.getfixturevalue("redis_url")


@pytest.fixture
def opener(backend: tuple[str, str]) -> Opener:
    return lambda: open_registry(backend[1])


@pytest.fixture
async def registry(opener: Opener) -> AsyncIterator[StreamRegistry]:
    async with opener() as opened:
        yield opened


async def test_register_then_read_back(registry: StreamRegistry) -> None:
    owned = await registry.register(
        spec(), node_id="node-a", created_unix_s=1234.5, lease_ttl_s=TTL_S,
        ingest={"key_hash": "blake2b:00ff", "kind": "rtmp"},
    )  # fmt: skip
    assert owned.node_id == "node-a"
    assert owned.fencing_epoch >= 1
    record = await registry.get("cam1")
    assert record is not None
    assert record.spec == spec()  # credentials kept: a resumed stream must reconnect
    assert record.created_unix_s == 1234.5
    assert record.owner_node_id == "node-a"
    assert record.fencing_epoch == owned.fencing_epoch
    assert record.lease_expires_unix_s == pytest.approx(owned.lease_expires_unix_s)
    assert record.position is None
    assert record.ingest == {"key_hash": "blake2b:00ff", "kind": "rtmp"}
    # …and never shown
    assert "hunter2" not in repr(record)
    assert "abc" not in record.source_redacted
    assert record.source_redacted == "rtmp://***@media.example/live/cam1?token=***"
    assert await registry.get("nope") is None


async def test_register_is_insert_if_absent_with_one_winner(registry: StreamRegistry) -> None:
    outcomes: list[str] = []

    async def register(node: int) -> None:
        try:
            await registry.register(
                spec(), node_id=f"node-{node}", created_unix_s=1.0, lease_ttl_s=TTL_S
            )
            outcomes.append(f"node-{node}")
        except StreamAlreadyRegistered:
            outcomes.append("refused")

    async with trio.open_nursery() as nursery:
        for node in range(12):
            nursery.start_soon(register, node)
    winners = [o for o in outcomes if o != "refused"]
    assert len(winners) == 1
    assert len(outcomes) == 12
    record = await registry.get("cam1")
    assert record is not None
    assert record.owner_node_id == winners[0]


async def test_concurrent_claims_have_exactly_one_winner(
    backend: tuple[str, str], opener: Opener
) -> None:
    # Redis: several clients (as several nodes would be); SQLite is one process per file, so its
    # claimers are concurrent tasks sharing the one registry
    clients = 4 if backend[0] == "redis" else 1
    async with opener() as first:
        owned = await first.register(spec(), node_id="dead", created_unix_s=1.0, lease_ttl_s=1)
        wins: list[Ownership] = []
        losses: list[str] = []

        async def claimer(registry: StreamRegistry, node_id: str) -> None:
            result = await registry.claim(
                "cam1",
                node_id=node_id,
                expected_fencing_epoch=owned.fencing_epoch,
                lease_ttl_s=TTL_S,
            )
            if result is None:
                losses.append(node_id)
            else:
                wins.append(result)

        async def clients_and_claims(index: int) -> None:
            if index == 0:
                registry_cm: AbstractAsyncContextManager[StreamRegistry] | None = None
                registry = first
            else:
                registry_cm = opener()
                registry = await registry_cm.__aenter__()
            try:
                async with trio.open_nursery() as claims:
                    for task in range(8):
                        claims.start_soon(claimer, registry, f"node-{index}-{task}")
            finally:
                if registry_cm is not None:
                    await registry_cm.__aexit__(None, None, None)

        async with trio.open_nursery() as nursery:
            for index in range(clients):
                nursery.start_soon(clients_and_claims, index)
        assert len(wins) == 1, wins
        assert len(losses) == 8 * clients - 1
        record = await first.get("cam1")
        assert record is not None
        assert record.owner_node_id == wins[0].node_id
        assert record.fencing_epoch == wins[0].fencing_epoch > owned.fencing_epoch
        assert [r.stream_id for r in await first.owned_by(wins[0].node_id)] == ["cam1"]
        assert await first.owned_by("dead") == []


async def test_a_stale_epoch_cannot_write(registry: StreamRegistry) -> None:
    old = await registry.register(spec(), node_id="node-a", created_unix_s=1.0, lease_ttl_s=TTL_S)
    await registry.write_position("cam1", fencing_epoch=old.fencing_epoch, position=position(3))
    new = await registry.claim(
        "cam1", node_id="node-b", expected_fencing_epoch=old.fencing_epoch, lease_ttl_s=TTL_S
    )
    assert new is not None
    assert new.fencing_epoch > old.fencing_epoch
    # node-a did not notice it lost the stream: every write it tries is refused, nothing changes
    with pytest.raises(StaleFencingEpoch) as refused:
        await registry.write_position(
            "cam1", fencing_epoch=old.fencing_epoch, position=position(9)
        )
    assert refused.value.current_epoch == new.fencing_epoch
    assert refused.value.current_owner == "node-b"
    with pytest.raises(StaleFencingEpoch):
        await registry.renew(
            "cam1", node_id="node-a", fencing_epoch=old.fencing_epoch, lease_ttl_s=TTL_S
        )
    with pytest.raises(StaleFencingEpoch):
        await registry.release("cam1", fencing_epoch=old.fencing_epoch)
    with pytest.raises(StaleFencingEpoch):
        await registry.remove("cam1", fencing_epoch=old.fencing_epoch)
    # a claim on the epoch it once saw loses too
    assert (
        await registry.claim(
            "cam1", node_id="node-a", expected_fencing_epoch=old.fencing_epoch, lease_ttl_s=TTL_S
        )
        is None
    )
    record = await registry.get("cam1")
    assert record is not None
    assert record.owner_node_id == "node-b"
    assert record.position == position(3)
    # the new owner writes fine
    await registry.write_position("cam1", fencing_epoch=new.fencing_epoch, position=position(5))
    renewed = await registry.renew(
        "cam1", node_id="node-b", fencing_epoch=new.fencing_epoch, lease_ttl_s=60.0
    )
    assert renewed.lease_expires_unix_s > new.lease_expires_unix_s - 1
    record = await registry.get("cam1")
    assert record is not None
    assert record.position == position(5)


async def test_ingest_is_replaced_by_its_owner_only(registry: StreamRegistry) -> None:
    push_spec = StreamSpec("cam1", "", ingest="srt", srt_latency_ms=200)
    old = await registry.register(
        push_spec, node_id="node-a", created_unix_s=1.0, lease_ttl_s=TTL_S,
        ingest={"protocol": "srt", "srt_passphrase": "first-passphrase"},
    )  # fmt: skip
    await registry.write_ingest(
        "cam1", fencing_epoch=old.fencing_epoch,
        ingest={"protocol": "srt", "srt_passphrase": "rotated-passphrase", "srt_port": 9001},
    )  # fmt: skip
    record = await registry.get("cam1")
    assert record is not None
    assert record.spec == push_spec  # a push stream's protocol and latency are kept
    assert record.ingest == {
        "protocol": "srt", "srt_passphrase": "rotated-passphrase", "srt_port": 9001,
    }  # fmt: skip
    assert "rotated-passphrase" not in repr(record)  # stored, never shown
    new = await registry.claim(
        "cam1", node_id="node-b", expected_fencing_epoch=old.fencing_epoch, lease_ttl_s=TTL_S
    )
    assert new is not None
    with pytest.raises(StaleFencingEpoch):
        await registry.write_ingest("cam1", fencing_epoch=old.fencing_epoch, ingest={})
    with pytest.raises(StreamNotRegistered):
        await registry.write_ingest("gone", fencing_epoch=new.fencing_epoch, ingest={})
    record = await registry.get("cam1")
    assert record is not None
    assert record.ingest is not None
    assert record.ingest["srt_passphrase"] == "rotated-passphrase"


async def test_renew_by_another_node_with_the_current_epoch_is_refused(
    registry: StreamRegistry,
) -> None:
    owned = await registry.register(spec(), node_id="node-a", created_unix_s=1, lease_ttl_s=TTL_S)
    with pytest.raises(StaleFencingEpoch):
        await registry.renew(
            "cam1", node_id="node-b", fencing_epoch=owned.fencing_epoch, lease_ttl_s=TTL_S
        )


async def test_renew_many_renews_what_the_node_holds_and_reports_the_rest(
    registry: StreamRegistry,
) -> None:
    held = await registry.register(spec("cam1"), node_id="a", created_unix_s=1, lease_ttl_s=TTL_S)
    lost = await registry.register(spec("cam2"), node_id="a", created_unix_s=1, lease_ttl_s=TTL_S)
    taken = await registry.claim(
        "cam2", node_id="b", expected_fencing_epoch=lost.fencing_epoch, lease_ttl_s=TTL_S
    )
    assert taken is not None
    answers = await registry.renew_many(
        "a",
        {"cam1": held.fencing_epoch, "cam2": lost.fencing_epoch, "gone": 99},
        lease_ttl_s=TTL_S * 2,
    )
    renewed = answers["cam1"]
    assert isinstance(renewed, Ownership)
    assert renewed.fencing_epoch == held.fencing_epoch
    assert renewed.lease_expires_unix_s > held.lease_expires_unix_s
    stale = answers["cam2"]
    assert isinstance(stale, StaleFencingEpoch)
    assert stale.current_owner == "b"
    assert isinstance(answers["gone"], StreamNotRegistered)
    # the refused ones were not touched
    record = await registry.get("cam2")
    assert record is not None
    assert record.owner_node_id == "b"
    assert record.lease_expires_unix_s == taken.lease_expires_unix_s
    assert await registry.renew_many("a", {}, lease_ttl_s=TTL_S) == {}


async def test_position_never_moves_back(registry: StreamRegistry) -> None:
    owned = await registry.register(spec(), node_id="n", created_unix_s=1.0, lease_ttl_s=TTL_S)
    epoch = owned.fencing_epoch
    await registry.write_position("cam1", fencing_epoch=epoch, position=position(10))
    await registry.write_position("cam1", fencing_epoch=epoch, position=position(7))
    record = await registry.get("cam1")
    assert record is not None
    assert record.position == position(10)
    await registry.write_position("cam1", fencing_epoch=epoch, position=position(11, epoch=2))
    record = await registry.get("cam1")
    assert record is not None
    assert record.position == position(11, epoch=2)


async def test_release_then_another_node_claims(registry: StreamRegistry) -> None:
    owned = await registry.register(spec(), node_id="node-a", created_unix_s=1, lease_ttl_s=TTL_S)
    await registry.release("cam1", fencing_epoch=owned.fencing_epoch)
    record = await registry.get("cam1")
    assert record is not None
    assert record.owner_node_id is None
    assert record.lease_expires_unix_s is None
    assert record.fencing_epoch == owned.fencing_epoch
    assert await registry.owned_by("node-a") == []
    claimed = await registry.claim(
        "cam1", node_id="node-b", expected_fencing_epoch=owned.fencing_epoch, lease_ttl_s=TTL_S
    )
    assert claimed is not None
    assert [r.stream_id for r in await registry.owned_by("node-b")] == ["cam1"]


async def test_remove_and_listing(registry: StreamRegistry) -> None:
    epochs = []
    for stream_id, node in [("b", "node-1"), ("a", "node-1"), ("c", "node-2")]:
        owned = await registry.register(
            spec(stream_id), node_id=node, created_unix_s=1, lease_ttl_s=TTL_S
        )
        epochs.append(owned.fencing_epoch)
    assert len(set(epochs)) == 3
    assert [r.stream_id for r in await registry.list_streams()] == ["a", "b", "c"]
    assert [r.stream_id for r in await registry.owned_by("node-1")] == ["a", "b"]
    assert await registry.remove("a") is True
    assert await registry.remove("a") is False
    assert await registry.get("a") is None
    assert [r.stream_id for r in await registry.owned_by("node-1")] == ["b"]
    record = await registry.get("c")
    assert record is not None
    assert await registry.remove("c", fencing_epoch=record.fencing_epoch) is True
    assert [r.stream_id for r in await registry.list_streams()] == ["b"]
    with pytest.raises(StreamNotRegistered):
        await registry.claim("a", node_id="x", expected_fencing_epoch=1, lease_ttl_s=TTL_S)
    with pytest.raises(StreamNotRegistered):
        await registry.write_position("a", fencing_epoch=epochs[1], position=position(1))
    # the same id again: a fresh epoch, above every earlier one (a late writer of the removed
    # stream cannot write into the new one)
    again = await registry.register(spec("a"), node_id="node-3", created_unix_s=2, lease_ttl_s=1)
    assert again.fencing_epoch > max(epochs)
    with pytest.raises(StaleFencingEpoch):
        await registry.write_position("a", fencing_epoch=epochs[1], position=position(1))


async def test_survives_close_and_reopen(opener: Opener) -> None:
    async with opener() as registry:
        owned = await registry.register(spec(), node_id="n", created_unix_s=5, lease_ttl_s=TTL_S)
        await registry.write_position(
            "cam1", fencing_epoch=owned.fencing_epoch, position=position(42, epoch=3)
        )
    async with opener() as registry:
        record = await registry.get("cam1")
        assert record is not None
        assert record.position == position(42, epoch=3)
        assert record.owner_node_id == "n"
        assert record.fencing_epoch == owned.fencing_epoch
        assert record.spec.source_url == SECRET_URL


# ---------------------------------------------------------------------- schema versions


async def test_sqlite_migrates_a_version_1_file(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    for statement in MIGRATIONS[1]:
        db.execute(statement)
    db.execute("INSERT INTO registry_meta VALUES ('schema_version', 1)")
    db.execute("UPDATE registry_meta SET value = 7 WHERE key = 'fencing_counter'")
    db.execute(
        "INSERT INTO streams VALUES ('old', ?, 3.0, 7, 'node-a', 99.0, NULL)",
        ('{"stream_id":"old","source_url":"rtmp://h/x","qualities":["240p"],'
         '"enable_hls":true,"enable_dash":false,"low_latency":true}',),
    )  # fmt: skip
    db.commit()
    db.close()
    async with open_registry(f"sqlite://{path}") as registry:
        [record] = await registry.owned_by("node-a")
        assert record.spec == StreamSpec("old", "rtmp://h/x", ("240p",), True, False, True)
        assert record.fencing_epoch == 7
        assert record.ingest is None
        # the fencing counter carried over: new epochs stay above the old ones
        fresh = await registry.register(spec(), node_id="b", created_unix_s=1, lease_ttl_s=1)
        assert fresh.fencing_epoch == 8
    db = sqlite3.connect(path)
    assert db.execute("SELECT value FROM registry_meta WHERE key='schema_version'").fetchone() == (
        2,
    )
    db.close()


async def test_redis_migrates_a_version_1_layout(redis_url: str, redis_port: int) -> None:
    # version 1 had no per-node index: the migration builds it from the stream hashes
    for words in [
        ("SET", "hlsdash:schema_version", "1"),
        ("SET", "hlsdash:fencing_counter", "7"),
        ("SADD", "hlsdash:streams", "old"),
        ("HSET", "hlsdash:stream:old",
         "spec", '{"stream_id":"old","source_url":"rtmp://h/x","qualities":["240p"],'
                 '"enable_hls":true,"enable_dash":false,"low_latency":true}',
         "created_unix_s", "3.0", "fencing_epoch", "7", "owner_node_id", "node-a",
         "lease_expires_unix_s", "99.0"),
    ]:  # fmt: skip
        redis_command(redis_port, *words)
    async with open_registry(redis_url) as registry:
        [record] = await registry.owned_by("node-a")
        assert record.stream_id == "old"
        assert record.fencing_epoch == 7
        fresh = await registry.register(spec(), node_id="b", created_unix_s=1, lease_ttl_s=1)
        assert fresh.fencing_epoch == 8
    assert redis_command(redis_port, "GET", "hlsdash:schema_version") == b"$1\r\n2\r\n"


async def test_a_newer_schema_is_refused(backend: tuple[str, str], redis_port: int) -> None:
    kind, url = backend
    if kind == "sqlite":
        path = Path(url.removeprefix("sqlite://"))
        async with open_registry(url):
            pass
        db = sqlite3.connect(path)
        db.execute("UPDATE registry_meta SET value = 99 WHERE key = 'schema_version'")
        db.commit()
        db.close()
    else:
        redis_command(redis_port, "SET", "hlsdash:schema_version", "99")
    with pytest.raises(RegistryUnavailable, match="schema version 99, newer than this hlsdash"):
        async with open_registry(url):
            pass


# ---------------------------------------------------------------------- clear errors at start


async def test_sqlite_file_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    # the spec keeps source credentials; the default file sits in OUTPUT_DIR/.hlsdash, which a
    # static server running as another user may serve
    path = tmp_path / "streams" / ".hlsdash" / "registry.db"
    async with open_registry(f"sqlite://{path}") as registry:
        await registry.register(spec(), node_id="n", created_unix_s=1, lease_ttl_s=TTL_S)
        files = [path, Path(f"{path}-wal"), Path(f"{path}.lock")]
        assert [oct(f.stat().st_mode & 0o777) for f in files] == ["0o600"] * 3
        assert oct(path.parent.stat().st_mode & 0o777) == "0o700"


async def test_sqlite_corrupt_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "registry.db"
    path.write_bytes(b"this is not a database, it is a shopping list\n" * 200)
    with pytest.raises(RegistryUnavailable, match=r"registry sqlite://.*registry\.db is corrupt"):
        async with open_registry(f"sqlite://{path}"):
            pass


async def test_sqlite_file_of_another_program_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE invoices (id INTEGER)")
    db.commit()
    db.close()
    with pytest.raises(RegistryUnavailable, match="not an hlsdash registry"):
        async with open_registry(f"sqlite://{path}"):
            pass


async def test_sqlite_locked_database_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "registry.db"
    async with open_registry(f"sqlite://{path}"):
        pass
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # another program holds the write lock
    try:
        with pytest.raises(RegistryUnavailable, match="is locked by another process"):
            await SqliteRegistry.open(path, busy_timeout_s=0.2)
    finally:
        holder.execute("ROLLBACK")
        holder.close()


async def test_sqlite_second_service_on_the_same_file_is_refused(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path / 'registry.db'}"
    async with open_registry(url):
        with pytest.raises(RegistryUnavailable, match="in use by another process"):
            async with open_registry(url):
                pass
    async with open_registry(url):  # released when the first closed
        pass


async def test_sqlite_unwritable_location_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(RegistryUnavailable, match="cannot create it"):
        async with open_registry(f"sqlite://{blocker / 'sub' / 'registry.db'}"):
            pass


async def test_redis_unreachable_is_a_clear_error(tmp_path: Path) -> None:
    url = f"redis://:s3cret@127.0.0.1:{free_port()}/0"
    with pytest.raises(RegistryUnavailable) as refused:
        async with open_registry(url):
            pass
    assert "127.0.0.1" in str(refused.value)
    assert "s3cret" not in str(refused.value)


async def test_redis_over_tls(tmp_path: Path) -> None:
    # rediss:// (managed Redis services), trusting the server's CA from the URL's query
    with running_redis(tmp_path / "tls", tls=True) as port:
        ca = tmp_path / "tls" / "redis-cert.pem"
        url = f"rediss://127.0.0.1:{port}/0?ssl_ca_certs={ca}"
        async with open_registry(url) as registry:
            owned = await registry.register(spec(), node_id="n", created_unix_s=1, lease_ttl_s=1)
            record = await registry.get("cam1")
            assert record is not None
            assert record.fencing_epoch == owned.fencing_epoch
        # a certificate it does not trust is refused, clearly
        with pytest.raises(RegistryUnavailable, match="certificate verify failed"):
            async with open_registry(f"rediss://127.0.0.1:{port}/0"):
                pass


async def test_redis_damaged_layout_is_a_clear_error(redis_url: str, redis_port: int) -> None:
    redis_command(redis_port, "SET", "hlsdash:schema_version", "not-a-number")
    with pytest.raises(RegistryUnavailable, match="is damaged: schema_version is not an integer"):
        async with open_registry(redis_url):
            pass
    # a key of ours holding another type (another program's data in the same database)
    redis_command(redis_port, "DEL", "hlsdash:schema_version")
    redis_command(redis_port, "LPUSH", "hlsdash:schema_version", "x")
    with pytest.raises(RegistryUnavailable, match="WrongTypeError"):
        async with open_registry(redis_url):
            pass


async def register_many(registry: StreamRegistry, count: int) -> None:
    for n in range(count):
        await registry.register(
            spec(f"s{n}", "rtmp://h/" + "x" * 2000), node_id="n", created_unix_s=1, lease_ttl_s=1
        )


async def test_sqlite_on_a_full_disk_is_unavailable_then_recovers(tmp_path: Path) -> None:
    with small_tmpfs(tmp_path / "small", size="256k") as mount:
        async with open_registry(f"sqlite://{mount / 'registry.db'}") as registry:
            owned = await registry.register(spec(), node_id="n", created_unix_s=1, lease_ttl_s=1)
            filler = await trio.to_thread.run_sync(fill, mount)
            with pytest.raises(RegistryUnavailable, match="disk is full"):
                await register_many(registry, 2000)  # until the WAL needs a page it cannot have
            # what was committed is intact, and writes work again once there is room
            record = await registry.get("cam1")
            assert record is not None
            assert record.fencing_epoch == owned.fencing_epoch
            filler.unlink()
            await registry.write_position(
                "cam1", fencing_epoch=owned.fencing_epoch, position=position(1)
            )
            record = await registry.get("cam1")
            assert record is not None
            assert record.position == position(1)
