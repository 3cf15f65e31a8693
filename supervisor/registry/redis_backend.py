"""The cluster backend: Redis (standalone, 6.2 or newer), through ``coredis``.

``coredis`` is built on anyio, so it runs on trio as it is (checked: commands, Lua scripts and
its connection pool's task group under ``trio.run``); redis-py is asyncio-only. Every write is one
Lua script, so each compare-and-set (insert-if-absent, claim on an expected epoch, a fenced
write) is atomic on the server: exactly one of concurrent claimers sees the epoch it expected.
Lease times come from the server's ``TIME`` inside the script, so nodes with skewed clocks agree.

Every key this module touches, and nothing else touches them (``PREFIX`` = ``hlsdash:``):

=====================================  ======  ===============================================
key                                    type    what
=====================================  ======  ===============================================
``hlsdash:schema_version``             string  the layout version (``SCHEMA_VERSION``)
``hlsdash:fencing_counter``            string  INCR'd for every register/claim: fencing epochs
``hlsdash:streams``                    set     every stream id
``hlsdash:stream:{id}``                hash    spec, created_unix_s, fencing_epoch,
                                               owner_node_id (absent: released),
                                               lease_expires_unix_s, position, last_number,
                                               ingest
``hlsdash:node:{node_id}:streams``     set     ids owned by the node (schema 2; resume reads it)
=====================================  ======  ===============================================

No key has a TTL: a lease is a time in the stream's hash, judged by whoever reads it. Keys are
built inside the scripts from the prefix, so this is for a standalone Redis (or a primary with
replicas), not Redis Cluster.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import coredis
import coredis.exceptions
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

PREFIX = "hlsdash:"
SCHEMA_VERSION = 2
DEFAULT_CONNECT_TIMEOUT_S = 5.0
DEFAULT_COMMAND_TIMEOUT_S = 5.0

_FAILURES = (coredis.exceptions.RedisError, OSError, TimeoutError)

# Shared Lua prelude: key names, the server clock, and the fencing check.
_PRELUDE = """
local prefix = ARGV[1]
local function stream_key(id) return prefix .. 'stream:' .. id end
local function node_key(node) return prefix .. 'node:' .. node .. ':streams' end
local function now_s()
  local t = redis.call('TIME')
  return tonumber(t[1]) + tonumber(t[2]) / 1000000
end
local function seconds(x) return string.format('%.6f', x) end
local function fenced(key, epoch)
  local current = redis.call('HGET', key, 'fencing_epoch')
  if not current then return {'missing'} end
  if current ~= epoch then
    return {'stale', current, redis.call('HGET', key, 'owner_node_id') or ''}
  end
  return nil
end
"""

# ARGV: prefix, id, spec, created, node, ttl_s, ingest ('' = none)
_REGISTER = (
    _PRELUDE
    + """
local id, node = ARGV[2], ARGV[5]
local key = stream_key(id)
if redis.call('EXISTS', key) == 1 then return {'exists'} end
local epoch = redis.call('INCR', prefix .. 'fencing_counter')
local expires = seconds(now_s() + tonumber(ARGV[6]))
redis.call('HSET', key, 'spec', ARGV[3], 'created_unix_s', ARGV[4], 'fencing_epoch', epoch,
  'owner_node_id', node, 'lease_expires_unix_s', expires)
if ARGV[7] ~= '' then redis.call('HSET', key, 'ingest', ARGV[7]) end
redis.call('SADD', prefix .. 'streams', id)
redis.call('SADD', node_key(node), id)
return {'ok', tostring(epoch), expires}
"""
)

# ARGV: prefix, id, node, expected epoch, ttl_s
_CLAIM = (
    _PRELUDE
    + """
local id, node = ARGV[2], ARGV[3]
local key = stream_key(id)
local current = redis.call('HGET', key, 'fencing_epoch')
if not current then return {'missing'} end
if current ~= ARGV[4] then return {'lost', current} end
local previous = redis.call('HGET', key, 'owner_node_id')
if previous then redis.call('SREM', node_key(previous), id) end
local epoch = redis.call('INCR', prefix .. 'fencing_counter')
local expires = seconds(now_s() + tonumber(ARGV[5]))
redis.call('HSET', key, 'fencing_epoch', epoch, 'owner_node_id', node,
  'lease_expires_unix_s', expires)
redis.call('SADD', node_key(node), id)
return {'ok', tostring(epoch), expires}
"""
)

# ARGV: prefix, id, node, epoch, ttl_s
_RENEW = (
    _PRELUDE
    + """
local key = stream_key(ARGV[2])
local refused = fenced(key, ARGV[4])
if refused then return refused end
if redis.call('HGET', key, 'owner_node_id') ~= ARGV[3] then
  return {'stale', ARGV[4], redis.call('HGET', key, 'owner_node_id') or ''}
end
local expires = seconds(now_s() + tonumber(ARGV[5]))
redis.call('HSET', key, 'lease_expires_unix_s', expires)
return {'ok', ARGV[4], expires}
"""
)

# ARGV: prefix, id, epoch
# renew_many: ARGV = prefix, node, ttl, then stream id / epoch pairs; one reply per pair
_RENEW_MANY = (
    _PRELUDE
    + """
local node = ARGV[2]
local expires = seconds(now_s() + tonumber(ARGV[3]))
local out = {}
for i = 4, #ARGV, 2 do
  local key = stream_key(ARGV[i])
  local reply = fenced(key, ARGV[i + 1])
  if not reply and redis.call('HGET', key, 'owner_node_id') ~= node then
    reply = {'stale', ARGV[i + 1], redis.call('HGET', key, 'owner_node_id') or ''}
  end
  if not reply then
    redis.call('HSET', key, 'lease_expires_unix_s', expires)
    reply = {'ok', ARGV[i + 1], expires}
  end
  out[#out + 1] = reply
end
return out
"""
)

_RELEASE = (
    _PRELUDE
    + """
local id = ARGV[2]
local key = stream_key(id)
local refused = fenced(key, ARGV[3])
if refused then return refused end
local owner = redis.call('HGET', key, 'owner_node_id')
if owner then redis.call('SREM', node_key(owner), id) end
redis.call('HDEL', key, 'owner_node_id', 'lease_expires_unix_s')
return {'ok'}
"""
)

# ARGV: prefix, id, epoch, position, last_number
_WRITE_POSITION = (
    _PRELUDE
    + """
local key = stream_key(ARGV[2])
local refused = fenced(key, ARGV[3])
if refused then return refused end
local stored = redis.call('HGET', key, 'last_number')
if stored and tonumber(stored) >= tonumber(ARGV[5]) then return {'ok'} end
redis.call('HSET', key, 'position', ARGV[4], 'last_number', ARGV[5])
return {'ok'}
"""
)

# ARGV: prefix, id, epoch, ingest
_WRITE_INGEST = (
    _PRELUDE
    + """
local key = stream_key(ARGV[2])
local refused = fenced(key, ARGV[3])
if refused then return refused end
redis.call('HSET', key, 'ingest', ARGV[4])
return {'ok'}
"""
)

# ARGV: prefix, id, epoch ('' = unconditional)
_REMOVE = (
    _PRELUDE
    + """
local id = ARGV[2]
local key = stream_key(id)
if redis.call('EXISTS', key) == 0 then return {'absent'} end
if ARGV[3] ~= '' then
  local refused = fenced(key, ARGV[3])
  if refused then return refused end
end
local owner = redis.call('HGET', key, 'owner_node_id')
if owner then redis.call('SREM', node_key(owner), id) end
redis.call('DEL', key)
redis.call('SREM', prefix .. 'streams', id)
return {'ok'}
"""
)

# ARGV: prefix, id… → one flat HGETALL list per id ({} when gone meanwhile)
_FETCH = (
    _PRELUDE
    + """
local out = {}
for i = 2, #ARGV do out[#out + 1] = redis.call('HGETALL', stream_key(ARGV[i])) end
return out
"""
)

# version → script bringing the layout from version - 1 to it (ARGV: prefix). Add, never edit.
MIGRATIONS: dict[int, str] = {
    1: "return 1",  # the first layout: streams set, stream hashes, fencing counter
    2: _PRELUDE
    + """
for _, id in ipairs(redis.call('SMEMBERS', prefix .. 'streams')) do
  local owner = redis.call('HGET', stream_key(id), 'owner_node_id')
  if owner then redis.call('SADD', node_key(owner), id) end
end
return 1
""",
}

_PASSWORD = re.compile(r"(//[^/@]*?:)[^/@]*@")


def redact_redis_url(url: str) -> str:
    """``redis://:secret@host:6379/0`` → ``redis://:***@host:6379/0``."""
    return _PASSWORD.sub(r"\1***@", url)


class RedisRegistry:
    """See the module docstring. Use through :func:`supervisor.registry.open_registry`, which
    holds the client's context (its connection pool runs tasks) for the registry's lifetime."""

    def __init__(self, client: coredis.Redis[str], url: str) -> None:
        self._client = client
        self._description = redact_redis_url(url)
        self._register = client.register_script(_REGISTER)
        self._claim = client.register_script(_CLAIM)
        self._renew = client.register_script(_RENEW)
        self._renew_many = client.register_script(_RENEW_MANY)
        self._release = client.register_script(_RELEASE)
        self._write_position = client.register_script(_WRITE_POSITION)
        self._write_ingest = client.register_script(_WRITE_INGEST)
        self._remove = client.register_script(_REMOVE)
        self._fetch = client.register_script(_FETCH)
        self._closed = False

    @property
    def description(self) -> str:
        return self._description

    async def prepare(self, *, timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S) -> None:
        """Check the server answers and bring the key layout to ``SCHEMA_VERSION``."""
        with trio.move_on_after(timeout_s) as scope:
            version = await self._call(self._client.get, PREFIX + "schema_version")
        if scope.cancelled_caught:
            raise RegistryUnavailable(
                f"registry {self._description}: no answer within {timeout_s:g} s"
            )
        try:
            current = 0 if version is None else _int(version, "schema_version")
        except codec.CorruptRecord as error:
            raise RegistryUnavailable(f"registry {self._description} is damaged: {error}") from None
        if current > SCHEMA_VERSION:
            raise RegistryUnavailable(
                f"registry {self._description} has schema version {current}, newer than this "
                f"hlsdash knows ({SCHEMA_VERSION}): upgrade hlsdash or use another database"
            )
        for step in range(current + 1, SCHEMA_VERSION + 1):
            script = self._client.register_script(MIGRATIONS[step])
            await self._call(script, args=[PREFIX])
            await self._call(self._client.set, PREFIX + "schema_version", str(step))

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
        reply = await self._script(
            self._register,
            spec.stream_id,
            codec.encode_spec(spec),
            repr(created_unix_s),
            node_id,
            repr(lease_ttl_s),
            codec.encode_ingest(ingest) or "",
        )
        if reply[0] == "exists":
            raise StreamAlreadyRegistered(spec.stream_id)
        return Ownership(spec.stream_id, node_id, int(reply[1]), float(reply[2]))

    async def claim(
        self, stream_id: str, *, node_id: str, expected_fencing_epoch: int, lease_ttl_s: float
    ) -> Ownership | None:
        reply = await self._script(
            self._claim, stream_id, node_id, str(expected_fencing_epoch), repr(lease_ttl_s)
        )
        if reply[0] == "missing":
            raise StreamNotRegistered(stream_id)
        if reply[0] == "lost":
            return None
        return Ownership(stream_id, node_id, int(reply[1]), float(reply[2]))

    async def renew(
        self, stream_id: str, *, node_id: str, fencing_epoch: int, lease_ttl_s: float
    ) -> Ownership:
        reply = _fenced_reply(
            stream_id,
            fencing_epoch,
            await self._script(
                self._renew, stream_id, node_id, str(fencing_epoch), repr(lease_ttl_s)
            ),
        )
        return Ownership(stream_id, node_id, fencing_epoch, float(reply[2]))

    async def renew_many(
        self, node_id: str, leases: Mapping[str, int], *, lease_ttl_s: float
    ) -> dict[str, RenewalAnswer]:
        if not leases:
            return {}
        ids = list(leases)
        pairs = [word for stream_id in ids for word in (stream_id, str(leases[stream_id]))]
        replies = await self._call(
            self._renew_many, args=[PREFIX, node_id, repr(lease_ttl_s), *pairs]
        )
        out: dict[str, RenewalAnswer] = {}
        for stream_id, raw in zip(ids, replies, strict=True):
            epoch = leases[stream_id]
            try:
                reply = _fenced_reply(stream_id, epoch, [str(item) for item in raw])
            except (StaleFencingEpoch, StreamNotRegistered) as refused:
                out[stream_id] = refused
                continue
            out[stream_id] = Ownership(stream_id, node_id, epoch, float(reply[2]))
        return out

    async def release(self, stream_id: str, *, fencing_epoch: int) -> None:
        _fenced_reply(
            stream_id,
            fencing_epoch,
            await self._script(self._release, stream_id, str(fencing_epoch)),
        )

    async def write_position(
        self, stream_id: str, *, fencing_epoch: int, position: TimelinePosition
    ) -> None:
        _fenced_reply(
            stream_id,
            fencing_epoch,
            await self._script(
                self._write_position,
                stream_id,
                str(fencing_epoch),
                codec.encode_position(position),
                str(position.last_number),
            ),
        )

    async def write_ingest(
        self, stream_id: str, *, fencing_epoch: int, ingest: Mapping[str, JsonValue]
    ) -> None:
        _fenced_reply(
            stream_id,
            fencing_epoch,
            await self._script(
                self._write_ingest,
                stream_id,
                str(fencing_epoch),
                codec.encode_ingest(ingest) or "{}",
            ),
        )

    async def remove(self, stream_id: str, *, fencing_epoch: int | None = None) -> bool:
        epoch = "" if fencing_epoch is None else str(fencing_epoch)
        reply = await self._script(self._remove, stream_id, epoch)
        if reply[0] == "absent":
            return False
        _fenced_reply(stream_id, fencing_epoch or 0, reply)
        return True

    async def get(self, stream_id: str) -> StreamRecord | None:
        records = await self._records([stream_id])
        return records[0] if records else None

    async def list_streams(self) -> list[StreamRecord]:
        ids = await self._call(self._client.smembers, PREFIX + "streams")
        return await self._records(sorted(ids))

    async def owned_by(self, node_id: str) -> list[StreamRecord]:
        ids = await self._call(self._client.smembers, f"{PREFIX}node:{node_id}:streams")
        return await self._records(sorted(ids))

    async def aclose(self) -> None:
        # the connections close with the client's context (open_registry); this only refuses
        # further calls, so a late writer gets a clear error instead of a closed socket
        self._closed = True

    # ------------------------------------------------------------------ internals

    async def _records(self, ids: Sequence[str]) -> list[StreamRecord]:
        if not ids:
            return []
        replies = await self._call(self._fetch, args=[PREFIX, *ids])
        records = []
        for flat in replies:
            if flat:  # removed between SMEMBERS and the fetch
                records.append(_record(_pairs(flat)))
        return records

    async def _script(self, script: Any, *args: str) -> list[str]:
        reply = await self._call(script, args=[PREFIX, *args])
        return [str(item) for item in reply]

    async def _call(self, command: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if self._closed:
            raise RegistryUnavailable(f"registry {self._description} is closed")
        try:
            return await command(*args, **kwargs)
        except _FAILURES as error:
            # coredis says "unable to establish a connection" and chains why (TLS, refused…)
            cause = error.__cause__ or error.__context__
            why = f" ({type(cause).__name__}: {cause})" if cause is not None else ""
            raise RegistryUnavailable(
                f"registry {self._description}: {type(error).__name__}: {error}{why}"
            ) from None


def _fenced_reply(stream_id: str, writer_epoch: int, reply: list[str]) -> list[str]:
    if reply[0] == "missing":
        raise StreamNotRegistered(stream_id)
    if reply[0] == "stale":
        raise StaleFencingEpoch(
            stream_id,
            writer_epoch=writer_epoch,
            current_epoch=int(reply[1]),
            current_owner=reply[2] or None,
        )
    return reply


def _pairs(flat: Sequence[Any]) -> dict[str, str]:
    items = [str(item) for item in flat]
    return dict(zip(items[0::2], items[1::2], strict=True))


def _int(text: Any, what: str) -> int:
    try:
        return int(text)
    except (TypeError, ValueError):
        raise codec.CorruptRecord(f"{what} is not an integer: {text!r}") from None


def _record(fields: Mapping[str, str]) -> StreamRecord:
    spec = fields.get("spec")
    if spec is None:
        raise codec.CorruptRecord("a stream hash has no spec")
    position = fields.get("position")
    lease = fields.get("lease_expires_unix_s")
    try:
        created = float(fields.get("created_unix_s", ""))
        lease_expires = None if lease is None else float(lease)
    except ValueError:
        raise codec.CorruptRecord("a stream hash has a non-numeric time") from None
    return StreamRecord(
        spec=codec.decode_spec(spec),
        created_unix_s=created,
        fencing_epoch=_int(fields.get("fencing_epoch"), "fencing_epoch"),
        owner_node_id=fields.get("owner_node_id"),
        lease_expires_unix_s=lease_expires,
        position=None if position is None else codec.decode_position(position),
        ingest=codec.decode_ingest(fields.get("ingest")),
    )
