"""RegistryWriter: positions noted on every commit, written coalesced (≤ 1 per interval), stale
epochs stop the local copy, an unanswering registry loses nothing. Timers on trio's autojump
clock, exact virtual times asserted. The registry here is a recording double that enforces
fencing like the real backends (those run the contract tests in tests/integration)."""

from __future__ import annotations

from collections.abc import Mapping

import pytest
import trio

from actors.packager.timeline import TimelinePosition
from actors.status import StreamSpec
from supervisor.registry.interface import (
    JsonValue,
    Ownership,
    RegistryUnavailable,
    StaleFencingEpoch,
    StreamRecord,
)
from supervisor.registry.writer import RegistryWriter


def position(n: int) -> TimelinePosition:
    return TimelinePosition(1000.0, 1, n, 2.0 * (n + 1), 0)


class RecordingRegistry:
    """Fenced writes with their virtual times; ``down`` makes every call RegistryUnavailable."""

    def __init__(self) -> None:
        self.epochs: dict[str, int] = {}
        self.positions: dict[str, TimelinePosition] = {}
        self.writes: list[tuple[float, str, str, int | None]] = []  # (time, op, id, number)
        self.down = False
        self.broken = False  # raises what no registry error covers (a bug in a client library)

    @property
    def description(self) -> str:
        return "recording"

    def _check(self, stream_id: str, epoch: int) -> None:
        if self.broken:
            raise TypeError("a bug")
        if self.down:
            raise RegistryUnavailable("registry recording: down")
        if self.epochs.get(stream_id) != epoch:
            raise StaleFencingEpoch(
                stream_id, writer_epoch=epoch, current_epoch=self.epochs[stream_id],
                current_owner="other",
            )  # fmt: skip

    async def write_position(
        self, stream_id: str, *, fencing_epoch: int, position: TimelinePosition
    ) -> None:
        self._check(stream_id, fencing_epoch)
        self.positions[stream_id] = position
        self.writes.append((trio.current_time(), "position", stream_id, position.last_number))

    async def remove(self, stream_id: str, *, fencing_epoch: int | None = None) -> bool:
        assert fencing_epoch is not None
        self._check(stream_id, fencing_epoch)
        del self.epochs[stream_id]
        self.writes.append((trio.current_time(), "remove", stream_id, None))
        return True

    # the rest of the Protocol: the writer never calls these
    async def register(
        self, spec: StreamSpec, *, node_id: str, created_unix_s: float, lease_ttl_s: float,
        ingest: Mapping[str, JsonValue] | None = None,
    ) -> Ownership:  # fmt: skip
        raise AssertionError("not used")

    async def claim(
        self, stream_id: str, *, node_id: str, expected_fencing_epoch: int, lease_ttl_s: float
    ) -> Ownership | None:
        raise AssertionError("not used")

    async def renew(
        self, stream_id: str, *, node_id: str, fencing_epoch: int, lease_ttl_s: float
    ) -> Ownership:
        raise AssertionError("not used")

    async def release(self, stream_id: str, *, fencing_epoch: int) -> None:
        raise AssertionError("not used")

    async def write_ingest(
        self, stream_id: str, *, fencing_epoch: int, ingest: Mapping[str, JsonValue]
    ) -> None:
        raise AssertionError("not used")

    async def get(self, stream_id: str) -> StreamRecord | None:
        raise AssertionError("not used")

    async def list_streams(self) -> list[StreamRecord]:
        raise AssertionError("not used")

    async def owned_by(self, node_id: str) -> list[StreamRecord]:
        raise AssertionError("not used")

    async def aclose(self) -> None:
        pass


async def test_positions_are_coalesced_to_one_write_per_interval(
    autojump_clock: trio.testing.MockClock,
) -> None:
    registry = RecordingRegistry()
    registry.epochs = {"a": 1, "b": 7}
    writer = RegistryWriter(registry, interval_s=1.0)
    writer.own("a", 1)
    writer.own("b", 7)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(writer.run)
        await trio.sleep(0.5)
        # segments every 0.25 s for both streams (a 4-per-second commit rate), for 2 s
        for n in range(8):
            writer.note_position("a", position(n))
            writer.note_position("b", position(100 + n))
            await trio.sleep(0.25)
        await trio.sleep(3.0)
        nursery.cancel_scope.cancel()
    # the first noted position goes at once; then at most one per stream each second, the newest
    assert registry.writes == [
        (0.5, "position", "a", 0),
        (0.5, "position", "b", 100),
        (1.5, "position", "a", 4),
        (1.5, "position", "b", 104),
        (2.5, "position", "a", 7),
        (2.5, "position", "b", 107),
    ]
    assert writer.writes_total == 6


async def test_a_stale_epoch_stops_the_local_copy_and_leaves_the_record(
    autojump_clock: trio.testing.MockClock,
) -> None:
    registry = RecordingRegistry()
    registry.epochs = {"a": 1}
    lost: list[str] = []
    writer = RegistryWriter(registry, interval_s=1.0, on_lost=lost.append)
    writer.own("a", 1)
    registry.epochs["a"] = 2  # another node claimed it
    writer.note_position("a", position(3))
    await writer.flush()
    assert lost == ["a"]
    assert registry.writes == []
    assert writer.fencing_epoch("a") is None
    # the stream ending afterwards does not remove the new owner's record
    writer.end("a")
    await writer.flush()
    assert registry.epochs == {"a": 2}


@pytest.mark.parametrize(
    "failure",
    [
        "down",  # the registry does not answer: RegistryUnavailable
        "broken",  # an error no registry error covers (a bug in a client library)
    ],
)
async def test_a_failing_registry_loses_nothing_and_is_retried(
    failure: str, autojump_clock: trio.testing.MockClock
) -> None:
    registry = RecordingRegistry()
    registry.epochs = {"a": 1}
    writer = RegistryWriter(registry, interval_s=1.0)
    writer.own("a", 1)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(writer.run)
        setattr(registry, failure, True)
        writer.note_position("a", position(5))
        await trio.sleep(3.5)
        assert registry.writes == []
        assert writer.available is (failure == "broken")  # only "not answering" is shown
        setattr(registry, failure, False)
        await trio.sleep(1.0)
        nursery.cancel_scope.cancel()
    assert registry.writes == [(4.0, "position", "a", 5)]
    assert writer.available


async def test_end_removes_and_leave_keeps_with_the_last_position() -> None:
    registry = RecordingRegistry()
    registry.epochs = {"ended": 1, "stopping": 2, "quiet": 3}
    writer = RegistryWriter(registry)
    for stream_id, epoch in registry.epochs.items():
        writer.own(stream_id, epoch)
    writer.note_position("ended", position(1))
    writer.note_position("stopping", position(9))
    writer.end("ended")
    writer.leave("stopping")  # SIGTERM: kept for resume, its last position written
    writer.leave("quiet")  # nothing noted since the last write: nothing to do
    await writer.flush()
    assert [(op, sid, n) for _, op, sid, n in registry.writes] == [
        ("remove", "ended", None),
        ("position", "stopping", 9),
    ]
    assert set(registry.epochs) == {"stopping", "quiet"}
    assert writer.fencing_epoch("stopping") is None
    assert writer.fencing_epoch("quiet") is None
    writer.note_position("stopping", position(10))  # untracked now: ignored
    await writer.flush()
    assert len(registry.writes) == 2


async def test_remove_now_for_delete() -> None:
    registry = RecordingRegistry()
    registry.epochs = {"a": 1}
    writer = RegistryWriter(registry)
    writer.own("a", 1)
    registry.down = True
    with pytest.raises(RegistryUnavailable):
        await writer.remove_now("a")
    assert writer.fencing_epoch("a") == 1  # still tracked: DELETE answered 503, stream runs
    registry.down = False
    await writer.remove_now("a")
    assert registry.epochs == {}
    assert writer.fencing_epoch("a") is None
    await writer.remove_now("a")  # untracked: nothing to do
