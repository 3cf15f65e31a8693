"""The preload-hinted part is held until it exists — or until it is clear it never will.

A part that cannot come any more (its segment ended with fewer parts: the encoder restarted,
the publisher left, the epoch ended) used to be held the full 3 × target duration before its
404, and LL-HLS players waiting on the hint (Shaka) stood still for that long. Virtual time
(trio's autojump clock) shows exactly when each answer goes out.
"""

from __future__ import annotations

import re
from types import SimpleNamespace
from typing import Any, cast

import trio

from actors.edge import rules
from actors.edge.gates import EdgeGates
from actors.edge.interface import LiveEdge
from actors.packager import publish
from actors.packager.timeline import StreamTimeline
from tests.unit.test_timeline import AST, interleaved, make_timeline, publish_settings, run_epoch

RENDITION = "180p"
FRAGMENTS_FED = 3  # video and audio interleaved: segment 0 has 2 parts, the hint names part_0_2


def _edge() -> tuple[LiveEdge, Any, tuple[int, int]]:
    timeline = make_timeline()
    run_epoch(timeline, AST, end=False, fragments=FRAGMENTS_FED)
    actor = SimpleNamespace(
        timeline=timeline,
        low_latency=True,
        gates=EdgeGates(),
        publish_settings=publish_settings(0.34, low_latency=True),
    )
    playlist = publish.render_media_playlist(timeline, RENDITION, actor.publish_settings)
    assert playlist is not None
    hint = re.search(r'#EXT-X-PRELOAD-HINT:TYPE=PART,URI="part_(\d+)_(\d+)\.m4s"', playlist)
    assert hint is not None, playlist
    hinted = (int(hint[1]), int(hint[2]))
    assert timeline.part_bytes(RENDITION, *hinted) is None  # not there yet: it will be held
    return LiveEdge(cast("Any", actor)), actor, hinted


async def _ask(edge: LiveEdge, hinted: tuple[int, int], answers: list[tuple[float, bool]]) -> None:
    got = await edge.part(RENDITION, *hinted)
    answers.append((trio.current_time(), got is not None))


async def test_a_part_that_can_no_longer_come_is_refused_when_its_segment_ends(
    autojump_clock: trio.abc.Clock,
) -> None:
    edge, actor, hinted = _edge()
    timeline: StreamTimeline = actor.timeline
    answers: list[tuple[float, bool]] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_ask, edge, hinted, answers)
        await trio.sleep(1.0)
        timeline.end_epoch(now_unix_s=AST + 10)  # the encoder is gone: segment 0 is all there is
        actor.gates.changed()
    assert answers == [(1.0, False)]  # at once, not at 3 × TD
    assert timeline.part_bytes(RENDITION, *hinted) is None


async def test_the_hinted_part_goes_out_the_moment_it_exists(
    autojump_clock: trio.abc.Clock,
) -> None:
    edge, actor, hinted = _edge()
    timeline: StreamTimeline = actor.timeline
    answers: list[tuple[float, bool]] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_ask, edge, hinted, answers)
        await trio.sleep(0.25)
        for _at_s, rid, fragment in interleaved()[FRAGMENTS_FED:]:
            timeline.on_fragment(rid, fragment, now_unix_s=AST + 10)
            actor.gates.changed()
            if timeline.part_bytes(RENDITION, *hinted) is not None:
                break
    assert answers == [(0.25, True)]


async def test_a_part_that_may_still_come_is_held_the_full_three_target_durations(
    autojump_clock: trio.abc.Clock,
) -> None:
    edge, actor, hinted = _edge()
    answers: list[tuple[float, bool]] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_ask, edge, hinted, answers)
        await trio.sleep(1.0)
        actor.gates.changed()  # the edge moved elsewhere (another rendition): keep holding
    assert answers == [(rules.hold_timeout_s(edge.target_duration_s), False)]
