"""The durable stream registry (issue 14): ``interface`` and the backends beside it.

``open_registry(REGISTRY_URL)`` is the one way in: it picks the backend, migrates the schema and
closes everything when the block ends.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from supervisor.otp.supervise import exception_leaves
from supervisor.registry.interface import RegistryUnavailable, StreamRegistry

REGISTRY_FILE = Path(".hlsdash") / "registry.db"


def default_registry_url(output_dir: Path) -> str:
    """``sqlite:///<OUTPUT_DIR>/.hlsdash/registry.db`` (a hidden folder: never a stream id)."""
    return f"sqlite://{(output_dir / REGISTRY_FILE).resolve()}"


def check_registry_url(url: str) -> str:
    """Validate ``REGISTRY_URL`` (for the config): returns it, or raises ValueError saying why."""
    if url.startswith("sqlite:"):
        from supervisor.registry.sqlite_backend import parse_sqlite_url  # noqa: PLC0415

        parse_sqlite_url(url)
        return url
    if url.startswith("redis://"):
        rest = url[len("redis://") :]
        host = rest.rsplit("@", 1)[-1].split("/", 1)[0]
        if not host:
            raise ValueError("must name a host: redis://host:port/db")
        database = rest.split("/", 1)[1] if "/" in rest else "0"
        if not database.isdigit():
            raise ValueError("the database must be a number: redis://host:port/0")
        return url
    raise ValueError("must be sqlite:///path/to/file.db or redis://host:port/db")


@asynccontextmanager
async def open_registry(
    url: str, *, wall_clock: Callable[[], float] = time.time
) -> AsyncIterator[StreamRegistry]:
    """Open (and migrate) the registry ``url`` names; raises RegistryUnavailable saying why not."""
    check_registry_url(url)
    if url.startswith("sqlite:"):
        from supervisor.registry.sqlite_backend import (  # noqa: PLC0415
            SqliteRegistry,
            parse_sqlite_url,
        )

        sqlite_registry = await SqliteRegistry.open(parse_sqlite_url(url), wall_clock=wall_clock)
        try:
            yield sqlite_registry
        finally:
            await sqlite_registry.aclose()
        return
    import coredis  # noqa: PLC0415 - only a cluster needs Redis

    from supervisor.registry.redis_backend import (  # noqa: PLC0415
        DEFAULT_COMMAND_TIMEOUT_S,
        DEFAULT_CONNECT_TIMEOUT_S,
        RedisRegistry,
        redact_redis_url,
    )

    try:
        client: coredis.Redis[str] = coredis.Redis.from_url(
            url,
            decode_responses=True,
            connect_timeout=DEFAULT_CONNECT_TIMEOUT_S,
            stream_timeout=DEFAULT_COMMAND_TIMEOUT_S,
        )
    except ValueError as error:
        raise RegistryUnavailable(f"registry {redact_redis_url(url)}: {error}") from None
    try:
        async with client:
            redis_registry = RedisRegistry(client, url)
            await redis_registry.prepare()
            try:
                yield redis_registry
            finally:
                await redis_registry.aclose()
    except BaseExceptionGroup as group:
        # coredis's pool is an anyio task group: it wraps whatever crosses it (our own
        # RegistryUnavailable, the caller's errors) in a group; a lone error goes on unwrapped
        leaves = exception_leaves(group)
        if len(leaves) == 1:
            raise leaves[0] from None
        raise


__all__ = ["check_registry_url", "default_registry_url", "open_registry"]
