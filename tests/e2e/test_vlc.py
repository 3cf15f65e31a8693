"""VLC plays the service's live output (issue 10: "plain HLS/DASH still plays in VLC").

VLC 3.0 (Debian's ``vlc-bin``, ``cvlc``) is not a browser player, so this looks at what it
decoded: a clocked live source (``ops.bench.clocked_source``: each frame's counter drawn as
black/white blocks) feeds the real service; VLC plays a playlist for ``VLC_RUN_TIME_S`` with its
``scene`` video filter writing every ``SCENE_RATIO``-th displayed picture to a PNG. The counters in
those pictures must advance over at least ``MIN_MEDIA_S`` of media, never backwards, and no faster
than the wall clock between the pictures (a burst of old segments would), in a ladder rung's
picture size.

``--adaptive-logic=highest`` keeps VLC on one rung: its ``scene`` filter cannot follow a resolution
switch ("Failed to create video converter"), a limit of the filter, not of the stream.

VLC refuses to run as root, so under root (CI) it runs as ``nobody``, with a HOME and a picture
folder that user can write. Python switches the user before ``die_with_this_thread`` sets the
parent-death signal (the kernel clears it on a credential change), so VLC still dies with the test.

VLC is stopped by a signal after ``VLC_RUN_TIME_S`` of wall clock, never with ``--run-time``:
that option stops the input once its *time* reaches the run time, and a live DASH input's time
is the media presentation time (hundreds of seconds into a stream), so ``--run-time=12`` ended
every DASH run the moment playback started ("EOF reached" in VLC's log) — which is what made
DASH look broken in VLC before. An HLS input's time starts at 0, which is why HLS was unaffected.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from actors.ffmpeg.process import die_with_this_thread
from ops.bench.clockcode import UnreadablePngError, decode_png_rows, read_counter, strip_height_px
from ops.bench.clocked_source import ClockedSource, clocked_source
from tests.e2e.live_service import LiveService, run_service

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

CVLC = Path("/usr/bin/cvlc")
PLAIN_STREAM = "plain"
LL_STREAM = "ll"
QUALITIES = ("360p", "240p")
SOURCE_WIDTH, SOURCE_HEIGHT, SOURCE_FPS = 640, 360, 30
VLC_RUN_TIME_S = 12
VLC_EXIT_TIMEOUT_S = 15  # after SIGTERM, on a loaded machine; then SIGKILL
SCENE_RATIO = 15  # one picture in 15: two a second at 30 fps
MIN_MEDIA_S = 8.0
# Pictures are timed by their file's mtime, written as VLC displays them: a little jitter, never
# a whole segment's worth. A burst of old segments decodes seconds of media in a fraction of that.
PACE_SLACK_S = 1.0
# The clock strip's rows at the top of a picture as wide as the source (+1: rounding).
STRIP_ROWS = strip_height_px(SOURCE_WIDTH) + 1
# "main video output debug: original format sz 640x368, of (0,0), vsz 640x360, …"
_VISIBLE_SIZE = re.compile(r"video output debug: original format sz \d+x\d+, .*? vsz (\d+)x(\d+),")
_RESOLUTION = re.compile(r"RESOLUTION=(\d+)x(\d+)")


@dataclass(frozen=True, slots=True)
class Picture:
    """One picture VLC displayed: when (file mtime, s), the source frame it shows, its width."""

    shown_at_s: float
    counter: int
    width_px: int


@dataclass(frozen=True, slots=True)
class VlcRun:
    pictures: tuple[Picture, ...]
    visible_sizes: frozenset[tuple[int, int]]  # what VLC's video output said it displayed
    log: str

    def describe(self) -> str:
        start_s = self.pictures[0].shown_at_s if self.pictures else 0.0
        shown = [(round(p.shown_at_s - start_s, 1), p.counter) for p in self.pictures]
        return f"pictures (s, counter): {shown}\nVLC log tail:\n{self.log[-3000:]}"


def vlc_argv(url: str, scene_dir: Path) -> list[str]:
    """cvlc playing ``url`` for VLC_RUN_TIME_S, no audio, no window, pictures to ``scene_dir``."""
    argv = [str(CVLC), "-I", "dummy", "-vv", "--no-audio", "--vout=dummy"]
    argv += ["--video-filter=scene", f"--scene-path={scene_dir}", "--scene-format=png"]
    argv += [f"--scene-ratio={SCENE_RATIO}", "--scene-prefix=picture"]
    argv += ["--adaptive-logic=highest", url]
    return argv


def run_vlc(url: str) -> VlcRun:
    """Play ``url`` in VLC for VLC_RUN_TIME_S of wall clock; the pictures it displayed, oldest
    first."""
    as_root = os.geteuid() == 0
    with tempfile.TemporaryDirectory(prefix="hlsdash-vlc-") as folder:
        scene_dir = Path(folder)
        scene_dir.chmod(0o777)  # VLC runs as nobody; a private temp folder
        # -vv writes a lot: a file, not a pipe nobody reads while VLC runs
        with (scene_dir / "vlc.log").open("w+", errors="replace") as log:
            vlc = subprocess.Popen(
                vlc_argv(url, scene_dir),
                stdout=subprocess.DEVNULL,
                stderr=log,
                env={**os.environ, "HOME": folder},
                # VLC will not run as root; the user switch comes before preexec_fn (pdeathsig).
                user="nobody" if as_root else None,
                group="nogroup" if as_root else None,
                extra_groups=[] if as_root else None,
                preexec_fn=die_with_this_thread(),  # noqa: PLW1509 - prctl only
            )
            try:
                vlc.wait(timeout=VLC_RUN_TIME_S)
            except subprocess.TimeoutExpired:
                vlc.terminate()
                try:
                    vlc.wait(timeout=VLC_EXIT_TIMEOUT_S)
                except subprocess.TimeoutExpired:
                    vlc.kill()
                    vlc.wait()
            log.seek(0)
            stderr = log.read()
        pictures = []
        for path in scene_dir.glob("picture*.png"):
            try:
                image = decode_png_rows(path.read_bytes(), STRIP_ROWS)
            except UnreadablePngError:
                continue  # written as VLC exited
            counter = read_counter(image)
            if counter is not None:
                pictures.append(Picture(path.stat().st_mtime, counter, image.width))
    sizes = frozenset((int(w), int(h)) for w, h in _VISIBLE_SIZE.findall(stderr))
    pictures.sort(key=lambda p: p.shown_at_s)
    return VlcRun(tuple(pictures), sizes, stderr)


def ladder_sizes(service: LiveService, stream: str) -> frozenset[tuple[int, int]]:
    """The rungs' picture sizes, as the master playlist announces them."""
    master = service.client.get(f"/streams/{stream}/playlist.m3u8")
    assert master.status_code == 200, master.text
    sizes = frozenset((int(w), int(h)) for w, h in _RESOLUTION.findall(master.text))
    assert len(sizes) == len(QUALITIES), master.text
    return sizes


def assert_plays_live(run: VlcRun, rung_sizes: frozenset[tuple[int, int]]) -> None:
    """≥ MIN_MEDIA_S of media, in order, at no more than the wall clock's pace, a rung's size."""
    pictures = run.pictures
    assert len(pictures) >= 2, f"VLC displayed no readable picture\n{run.describe()}"
    counters = [p.counter for p in pictures]
    assert counters == sorted(counters), f"pictures went backwards\n{run.describe()}"
    first, last = pictures[0], pictures[-1]
    media_s = (last.counter - first.counter) / SOURCE_FPS
    wall_s = last.shown_at_s - first.shown_at_s
    assert media_s >= MIN_MEDIA_S, f"only {media_s:.1f} s of media\n{run.describe()}"
    assert media_s <= wall_s + PACE_SLACK_S, (
        f"{media_s:.1f} s of media in {wall_s:.1f} s: a burst, not live\n{run.describe()}"
    )
    assert run.visible_sizes, f"VLC named no picture size\n{run.describe()}"
    assert run.visible_sizes <= rung_sizes, (run.visible_sizes, rung_sizes)
    widths = {p.width_px for p in pictures}
    assert widths <= {w for w, _ in run.visible_sizes}, (widths, run.visible_sizes)


@pytest.fixture(scope="module")
def vlc_available() -> None:
    """A missing VLC is an error, never a skip (as for Chromium: a skipped test proves nothing)."""
    if not CVLC.exists():
        pytest.fail(
            f"{CVLC} not found: run scripts/install-system-deps "
            '(apt-get install vlc-bin vlc-plugin-base) or deselect with -m "not e2e"',
            pytrace=False,
        )


@pytest.fixture(scope="module")
def live(vlc_available: None) -> Iterator[LiveService]:
    """One service, one clocked source, a plain stream and a low-latency one, both warm."""
    with (
        clocked_source(width=SOURCE_WIDTH, height=SOURCE_HEIGHT, fps=SOURCE_FPS) as source,
        run_service(segment_duration_s=2.0) as service,
    ):
        _start(service, source, PLAIN_STREAM, low_latency=False)
        _start(service, source, LL_STREAM, low_latency=True)
        for stream in (PLAIN_STREAM, LL_STREAM):
            service.wait_segments(stream, at_least=4, timeout_s=40.0)
        yield service


def _start(service: LiveService, source: ClockedSource, stream: str, *, low_latency: bool) -> None:
    service.create_stream(
        stream, low_latency=low_latency, qualities=QUALITIES, source_url=source.url
    )


def test_vlc_plays_plain_hls(live: LiveService) -> None:
    assert_plays_live(run_vlc(live.hls_url(PLAIN_STREAM)), ladder_sizes(live, PLAIN_STREAM))


def test_vlc_plays_ll_hls_output(live: LiveService) -> None:
    """VLC 3.0 knows no LL-HLS tags (parts, preload hints): it plays the full segments."""
    assert_plays_live(run_vlc(live.hls_url(LL_STREAM)), ladder_sizes(live, LL_STREAM))


def test_vlc_plays_plain_dash(live: LiveService) -> None:
    """The plain MPD (SegmentTimeline): VLC re-reads it every 5 s and plays on."""
    assert_plays_live(run_vlc(live.dash_url(PLAIN_STREAM)), ladder_sizes(live, PLAIN_STREAM))
