"""The origin's object cache: bounded by entries and by bytes; an ended stream's objects go."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from supervisor.http.origin_core import ObjectKind, make_object
from supervisor.http.playback import ObjectCache


def _media(size: int) -> object:
    return make_object(b"x" * size, ObjectKind.SEGMENT, immutable=True)


@given(sizes=st.lists(st.integers(1, 400), max_size=60))
def test_never_holds_more_than_its_byte_or_entry_budget(sizes: list[int]) -> None:
    cache = ObjectCache(size=10, max_bytes=1000)
    for index, size in enumerate(sizes):
        cache.put((1, f"seg_{index}.m4s"), _media(size))  # type: ignore[arg-type]
        assert len(cache) <= 10
        assert cache.bytes <= 1000
    # the newest object is always there (unless it alone is over budget: never cached)
    if sizes:
        assert cache.get((1, f"seg_{len(sizes) - 1}.m4s")) is not None


def test_an_object_over_the_byte_budget_is_served_not_cached() -> None:
    cache = ObjectCache(size=10, max_bytes=100)
    cache.put((1, "small"), _media(50))  # type: ignore[arg-type]
    huge = _media(500)
    assert cache.put((1, "huge"), huge) is huge  # type: ignore[arg-type]
    assert cache.get((1, "huge")) is None
    assert cache.get((1, "small")) is not None  # not evicted by the one that did not fit


def test_forgetting_an_ended_stream_drops_its_objects_and_refuses_late_ones() -> None:
    """Defect found by the churn run: LRU alone kept every ended stream's objects until pushed
    out, so the service's RSS grew by a cache's worth over create/delete cycles."""
    cache = ObjectCache(size=100, max_bytes=10_000)
    for incarnation in (7, 8):
        for name in ("init_0.mp4", "seg_1.m4s"):
            cache.put((incarnation, name), _media(100))  # type: ignore[arg-type]
        cache.put((incarnation, "playlist.m3u8", False, 3), _media(10))  # type: ignore[arg-type]
    cache.forget(7)
    assert cache.entries_of(7) == 0
    assert cache.entries_of(8) == 3
    assert cache.bytes == 210
    # a request of the ended stream still in flight does not put its bytes back
    cache.put((7, "seg_2.m4s"), _media(100))  # type: ignore[arg-type]
    assert cache.entries_of(7) == 0


class _CountedIncarnation(int):
    """An incarnation that counts how often it is compared (how many entries a lookup visits)."""

    comparisons = 0

    def __eq__(self, other: object) -> bool:
        type(self).comparisons += 1
        return int(self) == other

    __hash__ = int.__hash__


def test_forgetting_a_stream_visits_its_own_entries_only() -> None:
    """Review finding: ``forget`` scanned every key of the cache (O(n) on the event loop at each
    stream end); the keys are now indexed by incarnation."""
    cache = ObjectCache(size=5000, max_bytes=10**9)
    other = _CountedIncarnation(8)
    for index in range(2000):
        cache.put((other, f"seg_{index}.m4s"), _media(1))  # type: ignore[arg-type]
    cache.put((7, "seg_0.m4s"), _media(1))  # type: ignore[arg-type]
    _CountedIncarnation.comparisons = 0
    cache.forget(7)
    assert _CountedIncarnation.comparisons == 0
    assert cache.entries_of(7) == 0
    assert cache.entries_of(other) == 2000


@given(
    steps=st.lists(
        st.tuples(st.sampled_from(["put", "forget"]), st.integers(1, 4), st.integers(0, 6)),
        max_size=80,
    )
)
def test_the_index_always_agrees_with_the_entries(steps: list[tuple[str, int, int]]) -> None:
    cache = ObjectCache(size=8, max_bytes=400)
    held: dict[tuple[int, str], int] = {}
    forgotten: set[int] = set()
    for action, incarnation, number in steps:
        if action == "put":
            cache.put((incarnation, f"seg_{number}"), _media(10 + number * 20))  # type: ignore[arg-type]
        else:
            cache.forget(incarnation)
            forgotten.add(incarnation)
        held = {
            (i, f"seg_{n}"): 1
            for i in range(1, 5)
            for n in range(7)
            if cache.get((i, f"seg_{n}")) is not None
        }
        for i in range(1, 5):
            assert cache.entries_of(i) == sum(1 for key in held if key[0] == i)
        assert all(cache.entries_of(i) == 0 for i in forgotten)
        assert len(cache) == len(held)
        assert cache.bytes <= 400
