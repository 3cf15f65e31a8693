"""A blocking playlist reload is answered with a playlist that holds the position it asked for,
even while the commit that reached it is still being written to disk.

The origin keeps rendered playlists keyed by the live edge's version (``actors.edge.Document``:
the same version → the same bytes) and a blocking answer is cacheable for 6 × TD under its
unique URL. Issue 10 (Shaka LL-HLS froze for ~10 s, about one run in ten, more under load): the
timeline moved (a segment committed, the next one's part 0 arrived) and only *after* the commit's
disk write was the version bumped. A request for that part arriving meanwhile found its position
reached, but got the playlist cached at the old version, without it — and Chromium kept that
answer for 12 s under the URL Shaka asked for again and again (audio stalled, picture frozen).

Real FFmpeg fragments (tests/fixtures/bmff), the real stream actor and live edge; the disk write
is held open at each commit; exact virtual time (autojump clock).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import trio
import trio.testing

from actors.edge import Document, rules
from actors.ffmpeg.sources import ValidatedSource
from actors.packager import publish
from actors.packager.layout import part_file_name
from actors.packager.timeline import Changes, StreamTimeline
from actors.settings import StreamSettings
from actors.status import StreamSpec
from actors.stream import StreamActor
from tests.unit.test_timeline import AST, AUDIO_INIT, VIDEO_INIT, interleaved

SPEC = StreamSpec("cam", "lavfi:testsrc2", ("180p",), low_latency=True)
SOURCE = ValidatedSource(url="testsrc2", scheme="lavfi", input_args=("-f", "lavfi"))
DISK_WRITE_S = 0.05  # how long each held disk write takes (virtual time)


class SlowDisk:
    """``run_blocking`` for the actor's disk writes: each takes DISK_WRITE_S of virtual time."""

    def __init__(self) -> None:
        self.writing = 0  # writes in progress

    async def __call__(self, write: Callable[..., Any], *args: Any) -> Any:
        self.writing += 1
        try:
            await trio.sleep(DISK_WRITE_S)
            return write(*args)
        finally:
            self.writing -= 1


def make_actor(tmp_path: Path, disk: SlowDisk) -> StreamActor:
    """A low-latency actor on the fixtures' renditions (video 180p + audio)."""

    async def no_spawn(*_: object, **__: object) -> object:
        raise AssertionError("not run")

    settings = StreamSettings(
        output_dir=tmp_path, ffmpeg_path="ffmpeg", segment_duration_s=1.0, part_target_s=0.34
    )
    actor = StreamActor(
        SPEC,
        SOURCE,
        settings,
        spawner=no_spawn,  # type: ignore[arg-type]
        wall_clock=lambda: AST,
        run_blocking=disk,
    )
    actor.timeline = StreamTimeline(
        renditions=[("180p", "video"), ("audio", "audio")],
        segment_duration_s=1.0,
        availability_start_unix_s=AST,
        retained_segments=10,
    )
    actor.metas = (
        publish.RenditionMeta(rendition_id="180p", kind="video", nominal_bandwidth_bps=300_000),
        publish.RenditionMeta(rendition_id="audio", kind="audio", nominal_bandwidth_bps=64_000),
    )
    return actor


_LISTED_PART = re.compile(r'^#EXT-X-PART:.*URI="([^"]+)"', re.MULTILINE)


def holds_position(playlist: str, msn: int, part: int) -> bool:
    """Does ``playlist`` list part ``part`` of segment ``msn`` — or, past that segment's last
    part, part 0 of the next (rfc8216bis §6.2.5.2)? A preload hint does not count."""
    listed = set(_LISTED_PART.findall(playlist))
    return part_file_name(msn, part) in listed or part_file_name(msn + 1, 0) in listed


async def test_a_blocking_reload_reached_during_a_commit_gets_a_playlist_holding_it(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    disk = SlowDisk()
    actor = make_actor(tmp_path, disk)
    timeline = actor.timeline
    assert timeline is not None
    edge = actor.edge
    # the origin's document cache: version → bytes, as supervisor.http.playback keeps it
    cache: dict[tuple[str, int], bytes] = {}

    async def ask(rendition_id: str, msn: int, part: int) -> str:
        answer = await edge.media_playlist(rendition_id, msn=msn, part=part)
        assert isinstance(answer, Document), answer
        key = (rendition_id, answer.version)
        if key not in cache:
            rendered = answer.render()
            assert rendered is not None
            cache[key] = rendered
        return cache[key].decode()

    timeline.begin_epoch()
    changes = Changes()
    changes.merge(timeline.on_init("180p", VIDEO_INIT))
    changes.merge(timeline.on_init("audio", AUDIO_INIT))
    await actor.apply_changes(changes)

    commits = 0
    asked_while_writing = 0
    async with trio.open_nursery() as nursery:
        for at_s, rendition_id, fragment in interleaved():
            # every rendition's player has just been answered at its last part, and asks next
            # for the one after it (the request Shaka repeats until its playlist moves on)
            asked: dict[str, tuple[int, int]] = {}
            for rid in timeline.rendition_ids:
                position = publish.last_part_position(timeline.edge(rid))
                if position is not None:
                    await ask(rid, *position)
                    asked[rid] = (position[0], position[1] + 1)
            committed_before = timeline.segments_committed_total
            # what the encoder run does: move the timeline, then apply (and write) the changes
            changes = timeline.on_fragment(rendition_id, fragment, now_unix_s=AST + at_s + 0.34)
            nursery.start_soon(actor.apply_changes, changes)
            await trio.testing.wait_all_tasks_blocked()
            if timeline.segments_committed_total > committed_before:
                commits += 1
                assert disk.writing == 1  # the commit's files are being written
            for rid, (msn, part) in asked.items():
                if not rules.hls_position_reached(timeline.edge(rid), msn, part):
                    continue
                asked_while_writing += disk.writing
                playlist = await ask(rid, msn, part)
                assert holds_position(playlist, msn, part), (
                    f"{rid}: blocking reload for msn={msn} part={part} answered without it "
                    f"(commit #{commits}, disk write in progress):\n{playlist}"
                )
            await trio.sleep(DISK_WRITE_S)  # let the write finish before the next fragment
    assert commits >= 1, "the fixture commits a segment mid-stream"
    assert asked_while_writing, "no request came while a commit was being written"
