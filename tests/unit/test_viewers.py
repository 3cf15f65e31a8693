"""Viewer estimate (supervisor/metrics.py ViewerTracker): pure, with an injected clock."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from supervisor.http.origin import is_viewer_poll, session_tag
from supervisor.metrics import VIEWER_WINDOW_S, ViewerTracker, viewer_key


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_client_counts_once_and_leaves_after_the_window() -> None:
    clock = Clock()
    tracker = ViewerTracker(clock=clock)
    for _ in range(5):
        tracker.seen("cam1", "a")
        clock.now += 1
    tracker.seen("cam1", "b")
    tracker.seen("cam2", "a")
    assert tracker.counts() == {"cam1": 2, "cam2": 1}
    clock.now += VIEWER_WINDOW_S  # b was seen exactly one window ago: still watching
    assert tracker.count("cam1") == 1
    clock.now += 0.001
    assert tracker.count("cam1") == 0
    assert tracker.counts() == {}
    assert tracker.count("never") == 0


def test_memory_is_bounded_per_stream() -> None:
    clock = Clock()
    tracker = ViewerTracker(clock=clock, max_clients_per_stream=3)
    for n in range(10):
        clock.now += 1
        tracker.seen("cam1", f"c{n}")
    assert tracker.count("cam1") == 3
    tracker.seen("cam1", "c9")  # the newest three survive
    clock.now += VIEWER_WINDOW_S - 1.5
    assert tracker.count("cam1") == 2  # c8, c9 (c7 was seen 1 s earlier)


@given(st.lists(st.tuples(st.sampled_from("abc"), st.integers(0, 60)), max_size=40))
def test_count_is_the_distinct_clients_seen_within_the_window(
    events: list[tuple[str, int]],
) -> None:
    clock = Clock()
    tracker = ViewerTracker(clock=clock, window_s=10)
    last: dict[str, float] = {}
    for client, step_s in events:
        clock.now += step_s
        tracker.seen("s", client)
        last[client] = clock.now
    expected = sum(1 for t in last.values() if t >= clock.now - 10)
    assert tracker.count("s") == expected


def test_viewer_key_prefers_the_session_then_the_first_forwarded_hop() -> None:
    key = viewer_key(session="tab-1", forwarded_for="9.9.9.9", address="1.2.3.4", user_agent="x")
    assert key == "session:tab-1"
    by_hop = viewer_key(
        session=None, forwarded_for="9.9.9.9, 10.0.0.1", address="1.2.3.4", user_agent="ua"
    )
    assert by_hop == "client:9.9.9.9|ua"
    assert viewer_key(session=None, forwarded_for=None, address="1.2.3.4", user_agent=None) == (
        "client:1.2.3.4|"
    )
    # two players behind one address with different user agents are two viewers
    assert viewer_key(
        session=None, forwarded_for=None, address="1.2.3.4", user_agent="a"
    ) != viewer_key(session=None, forwarded_for=None, address="1.2.3.4", user_agent="b")
    assert len(viewer_key(session="x" * 10_000, forwarded_for=None, address=None, user_agent=None)) < 200


def test_only_answered_playlists_and_manifests_are_polls() -> None:
    assert is_viewer_poll("playlist.m3u8", 200)
    assert is_viewer_poll("720p/playlist.m3u8", 304)
    assert is_viewer_poll("manifest.mpd", 200)
    assert not is_viewer_poll("720p/seg_3.m4s", 200)
    assert not is_viewer_poll("720p/part_3_1.m4s", 200)
    assert not is_viewer_poll("playlist.m3u8", 404)
    assert not is_viewer_poll("../etc/passwd", 200)


def test_session_tag() -> None:
    assert session_tag("") is None
    assert session_tag("_HLS_msn=3&_HLS_part=1") is None
    assert session_tag("_HLS_msn=3&session=tab%2F1") == "tab/1"
    assert session_tag("session=") is None
