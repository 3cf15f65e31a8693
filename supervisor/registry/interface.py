"""The stream registry: what outlives a process, behind one interface with two backends.

One record per stream: its spec (the source URL with its credentials: kept, because a resumed
stream must reconnect, and never shown: ``repr`` leaves it out and the API/logs redact it), an
opaque ``ingest`` dict (push streams: the ingest key hash and whatever issue 12 needs), its
timeline position (so a resumed stream numbers on above what players have seen), and its owner.

Ownership is fenced. Every successful ``register``/``claim`` gives the stream a new
``fencing_epoch``, drawn from one counter for the whole registry, so it is never reused even by a
later stream with the same id. Every write a stream's owner makes (position, renewal, release,
removal) carries the epoch it holds; if the stream was claimed since, the write is refused with
:class:`StaleFencingEpoch` and changes nothing: a node that lost a stream (SIGSTOPped past its
lease, cut off from Redis) cannot overwrite what the new owner writes. ``claim`` is a
compare-and-set on the epoch the claimer last saw: of many concurrent claimers of one stream,
exactly one wins.

Leases: ``lease_expires_unix_s`` is on the *backend's* clock (Redis: the server's ``TIME``, so
nodes with skewed clocks agree; SQLite: the injected wall clock of the one process using it).
The registry records leases and refuses stale epochs; deciding that an expired lease's stream
should be claimed (a reconciler) is the cluster's job, not the registry's.

Two implementations (``supervisor.registry.sqlite_backend``,
``supervisor.registry.redis_backend``) satisfy this Protocol and run the same contract tests
(``tests/integration/test_registry_contract.py``); ``supervisor.registry.open_registry(url)``
picks one from ``REGISTRY_URL``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol, TypeAlias

from actors.ffmpeg.sources import redact_url
from actors.packager.timeline import TimelinePosition
from actors.status import StreamSpec
from supervisor.errors import HlsdashError

__all__ = [
    "JsonValue",
    "Ownership",
    "RegistryError",
    "RegistryUnavailable",
    "RenewalAnswer",
    "StaleFencingEpoch",
    "StreamAlreadyRegistered",
    "StreamNotRegistered",
    "StreamRecord",
    "StreamRegistry",
    "TimelinePosition",
]

# what an ``ingest`` dict may hold: it is stored as JSON
JsonValue: TypeAlias = "str | int | float | bool | list[JsonValue] | dict[str, JsonValue] | None"


class RegistryError(HlsdashError):
    """Base of every registry error."""


class RegistryUnavailable(RegistryError):  # noqa: N818
    """The registry cannot be used: unreachable, locked by another process, corrupt, or written
    by a newer schema version. Raised at start with a message saying which and where (the URL is
    shown redacted), so the service stops with one clear line instead of a traceback."""


class StreamAlreadyRegistered(RegistryError):  # noqa: N818
    def __init__(self, stream_id: str) -> None:
        super().__init__(f"stream {stream_id!r} is already in the registry")
        self.stream_id = stream_id


class StreamNotRegistered(RegistryError, LookupError):  # noqa: N818
    def __init__(self, stream_id: str) -> None:
        super().__init__(f"stream {stream_id!r} is not in the registry")
        self.stream_id = stream_id


class StaleFencingEpoch(RegistryError):  # noqa: N818
    """A write carried a fencing epoch that is no longer the stream's: someone claimed it since.

    ``current_epoch``/``current_owner`` say who holds it now (``None`` owner: released)."""

    def __init__(
        self, stream_id: str, *, writer_epoch: int, current_epoch: int, current_owner: str | None
    ) -> None:
        super().__init__(
            f"stream {stream_id!r}: fencing epoch {writer_epoch} is stale (now {current_epoch}, "
            f"owner {current_owner!r}); write refused"
        )
        self.stream_id = stream_id
        self.writer_epoch = writer_epoch
        self.current_epoch = current_epoch
        self.current_owner = current_owner


@dataclass(frozen=True, slots=True)
class Ownership:
    """What a successful register/claim/renew hands the owner: its epoch and lease."""

    stream_id: str
    node_id: str
    fencing_epoch: int
    lease_expires_unix_s: float  # on the backend's clock (module docstring)


@dataclass(frozen=True, slots=True)
class StreamRecord:
    """One stream as the registry holds it (an immutable snapshot)."""

    # the spec as the client asked for it; source_url keeps its credentials, so it is not in repr
    spec: StreamSpec = field(repr=False)
    created_unix_s: float
    fencing_epoch: int  # of the latest register/claim; kept when released
    owner_node_id: str | None  # None: released (drained), waiting for a claim
    lease_expires_unix_s: float | None
    position: TimelinePosition | None  # None until its first segment was committed
    # opaque to the registry (push ingest); holds an SRT stream's passphrase, so not in repr
    ingest: Mapping[str, JsonValue] | None = field(default=None, repr=False)

    @property
    def stream_id(self) -> str:
        return self.spec.stream_id

    @property
    def source_redacted(self) -> str:
        """The source URL fit for logs and the API (credentials replaced by ``***``)."""
        return redact_url(self.spec.source_url)


# what renew_many answers for each stream: the renewed lease, or the error renew would raise
RenewalAnswer: TypeAlias = "Ownership | StaleFencingEpoch | StreamNotRegistered"


class StreamRegistry(Protocol):
    """The durable stream registry. Every method may raise :class:`RegistryUnavailable` when the
    backend stops answering; writes by an owner raise :class:`StaleFencingEpoch` as described in
    the module docstring."""

    @property
    def description(self) -> str:
        """Backend and location with credentials redacted (``sqlite:///…``, ``redis://…/0``)."""
        ...

    async def register(
        self,
        spec: StreamSpec,
        *,
        node_id: str,
        created_unix_s: float,
        lease_ttl_s: float,
        ingest: Mapping[str, JsonValue] | None = None,
    ) -> Ownership:
        """Add a new stream owned by ``node_id`` with a fresh fencing epoch.

        Raises :class:`StreamAlreadyRegistered` if the id is taken (insert-if-absent: of two
        nodes registering one id at once, exactly one succeeds)."""
        ...

    async def claim(
        self, stream_id: str, *, node_id: str, expected_fencing_epoch: int, lease_ttl_s: float
    ) -> Ownership | None:
        """Compare-and-set: become the owner iff the stream's epoch is still
        ``expected_fencing_epoch`` (what the claimer read); the epoch then moves on.

        Returns ``None`` when someone else claimed it first (the epoch moved) — exactly one of
        many concurrent claimers with the same expectation wins. Raises
        :class:`StreamNotRegistered` if the stream is gone."""
        ...

    async def renew(
        self, stream_id: str, *, node_id: str, fencing_epoch: int, lease_ttl_s: float
    ) -> Ownership:
        """Extend the owner's lease. Raises :class:`StaleFencingEpoch` (or
        :class:`StreamNotRegistered`) when the caller no longer owns the stream."""
        ...

    async def renew_many(
        self, node_id: str, leases: Mapping[str, int], *, lease_ttl_s: float
    ) -> dict[str, RenewalAnswer]:
        """:meth:`renew` for every ``stream id → fencing epoch`` of ``leases`` in one round trip
        (a cluster node renews all its streams at once: one Redis call per node per round, not
        one per stream). Each stream's answer is its Ownership or the error renew would raise."""
        ...

    async def release(self, stream_id: str, *, fencing_epoch: int) -> None:
        """Give the stream up (drain): owner becomes ``None``, the epoch stays, any node may
        claim it with that epoch. Raises :class:`StaleFencingEpoch`/:class:`StreamNotRegistered`."""
        ...

    async def write_position(
        self, stream_id: str, *, fencing_epoch: int, position: TimelinePosition
    ) -> None:
        """Record where the stream's timeline is. Refused (:class:`StaleFencingEpoch`) when the
        writer's epoch is stale; a position never moves backwards (an older one is ignored)."""
        ...

    async def write_ingest(
        self, stream_id: str, *, fencing_epoch: int, ingest: Mapping[str, JsonValue]
    ) -> None:
        """Replace the stream's ``ingest`` dict (a push stream's key rotated, its SRT port
        moved). Refused (:class:`StaleFencingEpoch`) when the writer's epoch is stale."""
        ...

    async def remove(self, stream_id: str, *, fencing_epoch: int | None = None) -> bool:
        """Forget the stream (DELETE, or it ended for good). ``fencing_epoch=None`` removes
        unconditionally (an operator's DELETE on any node); with an epoch, a stale one is refused.
        Returns whether it was there."""
        ...

    async def get(self, stream_id: str) -> StreamRecord | None: ...

    async def list_streams(self) -> list[StreamRecord]:
        """Every stream, ordered by id."""
        ...

    async def owned_by(self, node_id: str) -> list[StreamRecord]:
        """The streams whose owner is ``node_id``, ordered by id (resume after a restart)."""
        ...

    async def aclose(self) -> None:
        """Close connections; idempotent."""
        ...
