"""The embedded backend: one SQLite file (WAL) used by one service process.

Every call runs the blocking ``sqlite3`` work in a worker thread (``trio.to_thread``), one at a
time (a capacity limiter of 1 plus a lock around the one connection), so the event loop never
waits on the disk. Each operation is one ``BEGIN IMMEDIATE`` transaction: compare-and-set claims
and fenced writes read and write under the database's write lock, so exactly one of concurrent
claimers wins.

One process per file: at open the registry takes an exclusive ``flock`` on ``<file>.lock``, so a
second service pointed at the same ``OUTPUT_DIR`` stops with a clear error instead of resuming
the same streams twice. The file itself stays readable meanwhile (``sqlite3 registry.db
".backup copy.db"`` works online: see the README).

Schema: ``registry_meta`` holds ``schema_version`` and the fencing counter; ``MIGRATIONS`` brings
any older file up to ``SCHEMA_VERSION`` at open, in one transaction. A file written by a newer
version, a corrupt file, or one locked by another process is a :class:`RegistryUnavailable`.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any, TypeVar

import trio

from actors.packager.timeline import TimelinePosition
from actors.status import StreamSpec
from supervisor.registry import codec
from supervisor.registry.interface import (
    JsonValue,
    Ownership,
    RegistryUnavailable,
    RenewalAnswer,
    StaleFencingEpoch,
    StreamAlreadyRegistered,
    StreamNotRegistered,
    StreamRecord,
)

_T = TypeVar("_T")

SCHEMA_VERSION = 2
# version → statements that bring a file at version - 1 to it. Never edit a released step: add one.
MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: (
        "CREATE TABLE registry_meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL)",
        "INSERT INTO registry_meta VALUES ('fencing_counter', 0)",
        """CREATE TABLE streams (
            stream_id TEXT PRIMARY KEY,
            spec TEXT NOT NULL,
            created_unix_s REAL NOT NULL,
            fencing_epoch INTEGER NOT NULL,
            owner_node_id TEXT,
            lease_expires_unix_s REAL,
            position TEXT
        )""",
    ),
    # push ingest (issue 12) keeps its key hash per stream; resume looks streams up by owner
    2: (
        "ALTER TABLE streams ADD COLUMN ingest TEXT",
        "CREATE INDEX streams_by_owner ON streams (owner_node_id)",
    ),
}
DEFAULT_BUSY_TIMEOUT_S = 5.0
_SELECT = (
    "SELECT stream_id, spec, created_unix_s, fencing_epoch, owner_node_id, lease_expires_unix_s,"
    " position, ingest FROM streams"
)
_INSERT = (
    "INSERT INTO streams (stream_id, spec, created_unix_s, fencing_epoch, owner_node_id,"
    " lease_expires_unix_s, position, ingest) VALUES (?, ?, ?, ?, ?, ?, NULL, ?)"
)


def parse_sqlite_url(url: str) -> Path:
    """``sqlite:///var/lib/x.db`` (or ``sqlite:////var/lib/x.db``) → ``/var/lib/x.db``."""
    prefix = "sqlite://"
    if not url.startswith(prefix):
        raise ValueError("must start with sqlite://")
    rest = url[len(prefix) :]
    if not rest.startswith("/") or rest.strip("/") == "":
        raise ValueError("must name an absolute file path, e.g. sqlite:///var/lib/hlsdash/r.db")
    if "?" in rest or "#" in rest:
        raise ValueError("takes no query or fragment")
    return Path("/" + rest.lstrip("/"))


class SqliteRegistry:
    """See the module docstring. Open with :meth:`open` (it migrates), close with ``aclose``."""

    def __init__(
        self,
        connection: sqlite3.Connection,
        lock_file: IO[bytes],
        path: Path,
        *,
        wall_clock: Callable[[], float],
    ) -> None:
        self._connection = connection
        self._lock_file = lock_file
        self._path = path
        self._wall = wall_clock
        self._mutex = threading.Lock()
        self._limiter = trio.CapacityLimiter(1)
        self._closed = False

    @classmethod
    async def open(
        cls,
        path: Path,
        *,
        wall_clock: Callable[[], float] = time.time,
        busy_timeout_s: float = DEFAULT_BUSY_TIMEOUT_S,
    ) -> SqliteRegistry:
        connection, lock_file = await trio.to_thread.run_sync(_open_file, path, busy_timeout_s)
        return cls(connection, lock_file, path, wall_clock=wall_clock)

    @property
    def description(self) -> str:
        return f"sqlite://{self._path}"

    # ------------------------------------------------------------------ the Protocol

    async def register(
        self,
        spec: StreamSpec,
        *,
        node_id: str,
        created_unix_s: float,
        lease_ttl_s: float,
        ingest: Mapping[str, JsonValue] | None = None,
    ) -> Ownership:
        def work(db: sqlite3.Connection) -> Ownership:
            if _row(db, spec.stream_id) is not None:
                raise StreamAlreadyRegistered(spec.stream_id)
            epoch = _next_fencing_epoch(db)
            expires = self._wall() + lease_ttl_s
            db.execute(
                _INSERT,
                (
                    spec.stream_id,
                    codec.encode_spec(spec),
                    created_unix_s,
                    epoch,
                    node_id,
                    expires,
                    codec.encode_ingest(ingest),
                ),
            )
            return Ownership(spec.stream_id, node_id, epoch, expires)

        return await self._run(work)

    async def claim(
        self, stream_id: str, *, node_id: str, expected_fencing_epoch: int, lease_ttl_s: float
    ) -> Ownership | None:
        def work(db: sqlite3.Connection) -> Ownership | None:
            row = _existing(db, stream_id)
            if row["fencing_epoch"] != expected_fencing_epoch:
                return None
            epoch = _next_fencing_epoch(db)
            expires = self._wall() + lease_ttl_s
            db.execute(
                "UPDATE streams SET fencing_epoch = ?, owner_node_id = ?, lease_expires_unix_s = ?"
                " WHERE stream_id = ?",
                (epoch, node_id, expires, stream_id),
            )
            return Ownership(stream_id, node_id, epoch, expires)

        return await self._run(work)

    async def renew(
        self, stream_id: str, *, node_id: str, fencing_epoch: int, lease_ttl_s: float
    ) -> Ownership:
        def work(db: sqlite3.Connection) -> Ownership:
            row = _fenced(db, stream_id, fencing_epoch)
            if row["owner_node_id"] != node_id:
                raise _stale(stream_id, fencing_epoch, row)
            expires = self._wall() + lease_ttl_s
            db.execute(
                "UPDATE streams SET lease_expires_unix_s = ? WHERE stream_id = ?",
                (expires, stream_id),
            )
            return Ownership(stream_id, node_id, fencing_epoch, expires)

        return await self._run(work)

    async def renew_many(
        self, node_id: str, leases: Mapping[str, int], *, lease_ttl_s: float
    ) -> dict[str, RenewalAnswer]:
        def work(db: sqlite3.Connection) -> dict[str, RenewalAnswer]:
            expires = self._wall() + lease_ttl_s
            out: dict[str, RenewalAnswer] = {}
            for stream_id, epoch in leases.items():
                try:
                    row = _fenced(db, stream_id, epoch)
                    if row["owner_node_id"] != node_id:
                        raise _stale(stream_id, epoch, row)
                except (StaleFencingEpoch, StreamNotRegistered) as refused:
                    out[stream_id] = refused
                    continue
                db.execute(
                    "UPDATE streams SET lease_expires_unix_s = ? WHERE stream_id = ?",
                    (expires, stream_id),
                )
                out[stream_id] = Ownership(stream_id, node_id, epoch, expires)
            return out

        return await self._run(work)

    async def release(self, stream_id: str, *, fencing_epoch: int) -> None:
        def work(db: sqlite3.Connection) -> None:
            _fenced(db, stream_id, fencing_epoch)
            db.execute(
                "UPDATE streams SET owner_node_id = NULL, lease_expires_unix_s = NULL"
                " WHERE stream_id = ?",
                (stream_id,),
            )

        await self._run(work)

    async def write_position(
        self, stream_id: str, *, fencing_epoch: int, position: TimelinePosition
    ) -> None:
        def work(db: sqlite3.Connection) -> None:
            row = _fenced(db, stream_id, fencing_epoch)
            stored = row["position"]
            if stored is not None and not position.is_newer_than(codec.decode_position(stored)):
                return
            db.execute(
                "UPDATE streams SET position = ? WHERE stream_id = ?",
                (codec.encode_position(position), stream_id),
            )

        await self._run(work)

    async def write_ingest(
        self, stream_id: str, *, fencing_epoch: int, ingest: Mapping[str, JsonValue]
    ) -> None:
        def work(db: sqlite3.Connection) -> None:
            _fenced(db, stream_id, fencing_epoch)
            db.execute(
                "UPDATE streams SET ingest = ? WHERE stream_id = ?",
                (codec.encode_ingest(ingest), stream_id),
            )

        await self._run(work)

    async def remove(self, stream_id: str, *, fencing_epoch: int | None = None) -> bool:
        def work(db: sqlite3.Connection) -> bool:
            if fencing_epoch is None:
                if _row(db, stream_id) is None:
                    return False
            else:
                _fenced(db, stream_id, fencing_epoch)
            db.execute("DELETE FROM streams WHERE stream_id = ?", (stream_id,))
            return True

        return await self._run(work)

    async def get(self, stream_id: str) -> StreamRecord | None:
        def work(db: sqlite3.Connection) -> StreamRecord | None:
            row = _row(db, stream_id)
            return None if row is None else _record(row)

        return await self._run(work)

    async def list_streams(self) -> list[StreamRecord]:
        return await self._select(_SELECT + " ORDER BY stream_id")

    async def owned_by(self, node_id: str) -> list[StreamRecord]:
        return await self._select(
            _SELECT + " WHERE owner_node_id = ? ORDER BY stream_id",
            (node_id,),
        )

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        async with self._limiter:
            await trio.to_thread.run_sync(self._close_blocking)

    # ------------------------------------------------------------------ internals

    def _close_blocking(self) -> None:
        with self._mutex:
            self._connection.close()
            self._lock_file.close()  # releases the flock

    async def _select(self, sql: str, args: tuple[Any, ...] = ()) -> list[StreamRecord]:
        def work(db: sqlite3.Connection) -> list[StreamRecord]:
            return [_record(row) for row in db.execute(sql, args).fetchall()]

        return await self._run(work)

    async def _run(self, work: Callable[[sqlite3.Connection], _T]) -> _T:
        if self._closed:
            raise RegistryUnavailable(f"registry {self.description} is closed")

        def in_thread() -> _T:
            with self._mutex, _transaction(self._connection, self.description):
                try:
                    return work(self._connection)
                except sqlite3.Error as error:  # disk full, I/O error, locked past the timeout
                    raise _unavailable(error, self.description) from None

        async with self._limiter:
            return await trio.to_thread.run_sync(in_thread)


# ---------------------------------------------------------------------- blocking helpers


def _open_file(path: Path, busy_timeout_s: float) -> tuple[sqlite3.Connection, IO[bytes]]:
    where = f"sqlite://{path}"
    try:
        # Only this user may read it: the spec keeps source credentials, and the default file
        # sits in OUTPUT_DIR, which a static server (another user, e.g. nginx) may be serving.
        # SQLite gives its -wal and -shm files the database file's permissions.
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
        lock_file = os.fdopen(os.open(f"{path}.lock", os.O_CREAT | os.O_WRONLY, 0o600), "wb")
    except OSError as error:
        raise RegistryUnavailable(f"registry {where}: cannot create it: {error}") from None
    try:
        fcntl.flock(lock_file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        lock_file.close()
        raise RegistryUnavailable(
            f"registry {where} is in use by another process (another hlsdash with the same "
            "OUTPUT_DIR or REGISTRY_URL?)"
        ) from None
    try:
        connection = sqlite3.connect(
            path, timeout=busy_timeout_s, isolation_level=None, check_same_thread=False
        )
    except sqlite3.Error as error:
        lock_file.close()
        raise RegistryUnavailable(f"registry {where}: cannot open it: {error}") from None
    connection.row_factory = sqlite3.Row
    try:
        _prepare(connection, where)
    except BaseException:
        connection.close()
        lock_file.close()
        raise
    return connection, lock_file


def _prepare(connection: sqlite3.Connection, where: str) -> None:
    try:
        check = connection.execute("PRAGMA quick_check").fetchone()[0]
        if check != "ok":
            raise RegistryUnavailable(f"registry {where} is corrupt: {check}")
        mode = connection.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise RegistryUnavailable(f"registry {where}: cannot use WAL journaling (got {mode})")
        # WAL + NORMAL: a committed write survives a crash of the process (SIGKILL); a power
        # cut may lose the last few, never corrupt the file
        connection.execute("PRAGMA synchronous=NORMAL")
    except sqlite3.Error as error:
        raise _unavailable(error, where) from None
    with _transaction(connection, where):
        migrate(connection, where)


def migrate(connection: sqlite3.Connection, where: str) -> None:
    """Bring the schema to ``SCHEMA_VERSION`` (inside the caller's transaction)."""
    version = schema_version(connection)
    if version > SCHEMA_VERSION:
        raise RegistryUnavailable(
            f"registry {where} has schema version {version}, newer than this hlsdash knows "
            f"({SCHEMA_VERSION}): upgrade hlsdash or point REGISTRY_URL elsewhere"
        )
    for step in range(version + 1, SCHEMA_VERSION + 1):
        for statement in MIGRATIONS[step]:
            connection.execute(statement)
        connection.execute(
            "INSERT OR REPLACE INTO registry_meta VALUES ('schema_version', ?)", (step,)
        )


def schema_version(connection: sqlite3.Connection) -> int:
    """0 for an empty file; a file with tables that are not ours is refused."""
    tables = {
        row[0]
        for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
    }
    if not tables:
        return 0
    if "registry_meta" not in tables:
        raise RegistryUnavailable(
            f"this file is not an hlsdash registry (tables: {', '.join(sorted(tables))})"
        )
    row = connection.execute(
        "SELECT value FROM registry_meta WHERE key = 'schema_version'"
    ).fetchone()
    return 1 if row is None else int(row[0])


@contextlib.contextmanager
def _transaction(connection: sqlite3.Connection, where: str) -> Iterator[None]:
    try:
        connection.execute("BEGIN IMMEDIATE")
    except sqlite3.Error as error:
        raise _unavailable(error, where) from None
    try:
        yield
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    try:
        connection.execute("COMMIT")
    except sqlite3.Error as error:
        with contextlib.suppress(sqlite3.Error):
            connection.execute("ROLLBACK")
        raise _unavailable(error, where) from None


def _unavailable(error: sqlite3.Error, where: str) -> RegistryUnavailable:
    text = str(error)
    if "locked" in text or "busy" in text:
        return RegistryUnavailable(f"registry {where} is locked by another process: {text}")
    if "not a database" in text or "malformed" in text or "corrupt" in text:
        return RegistryUnavailable(f"registry {where} is corrupt: {text}")
    if "full" in text:
        return RegistryUnavailable(f"registry {where}: its disk is full: {text}")
    return RegistryUnavailable(f"registry {where}: {text}")


def _next_fencing_epoch(db: sqlite3.Connection) -> int:
    row = db.execute(
        "UPDATE registry_meta SET value = value + 1 WHERE key = 'fencing_counter' RETURNING value"
    ).fetchone()
    return int(row[0])


def _row(db: sqlite3.Connection, stream_id: str) -> sqlite3.Row | None:
    row: sqlite3.Row | None = db.execute(
        _SELECT + " WHERE stream_id = ?", (stream_id,)
    ).fetchone()
    return row


def _existing(db: sqlite3.Connection, stream_id: str) -> sqlite3.Row:
    row = _row(db, stream_id)
    if row is None:
        raise StreamNotRegistered(stream_id)
    return row


def _fenced(db: sqlite3.Connection, stream_id: str, fencing_epoch: int) -> sqlite3.Row:
    row = _existing(db, stream_id)
    if row["fencing_epoch"] != fencing_epoch:
        raise _stale(stream_id, fencing_epoch, row)
    return row


def _stale(stream_id: str, writer_epoch: int, row: sqlite3.Row) -> StaleFencingEpoch:
    return StaleFencingEpoch(
        stream_id,
        writer_epoch=writer_epoch,
        current_epoch=int(row["fencing_epoch"]),
        current_owner=row["owner_node_id"],
    )


def _record(row: sqlite3.Row) -> StreamRecord:
    position = row["position"]
    return StreamRecord(
        spec=codec.decode_spec(row["spec"]),
        created_unix_s=float(row["created_unix_s"]),
        fencing_epoch=int(row["fencing_epoch"]),
        owner_node_id=row["owner_node_id"],
        lease_expires_unix_s=row["lease_expires_unix_s"],
        position=None if position is None else codec.decode_position(position),
        ingest=codec.decode_ingest(row["ingest"]),
    )


__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "SqliteRegistry", "migrate", "parse_sqlite_url"]
