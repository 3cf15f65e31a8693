"""Self-check of the e2e harness, the vendored players and the static pages.

Generates a short fMP4 HLS and a DASH presentation with the bundled FFmpeg,
serves them next to ``supervisor/static/`` from a throw-away HTTP server and
proves every engine (hls.js, dash.js, Shaka HLS, Shaka DASH) really plays
them in headless Chromium. The dashboard is checked against a faked
``GET /streams``. This does not need the hlsdash service at all.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import imageio_ffmpeg
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.e2e.harness import (
    ENGINES,
    STATIC_DIR,
    Level,
    PlayerHarness,
    PlayerState,
    StaticServer,
    player_url,
)

WIDTH, HEIGHT = 320, 180
DURATION_S = 6
HLS_PATH = "/media/hls/master.m3u8"
DASH_PATH = "/media/dash/manifest.mpd"
# Generous per-engine budget: the first engine also pays for Chromium's and
# the player library's cold start on a loaded 2-core CI machine.
PLAY_TIMEOUT_S = 20.0


def _ffmpeg_common(ffmpeg: str) -> list[str]:
    return [
        ffmpeg, "-hide_banner", "-loglevel", "error", "-y",
        "-f", "lavfi", "-i", f"testsrc2=size={WIDTH}x{HEIGHT}:rate=25",
        "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
        "-t", str(DURATION_S),
        "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p",
        # 1 s closed GOPs so every 1 s segment starts with a keyframe.
        "-g", "25", "-keyint_min", "25", "-sc_threshold", "0", "-b:v", "300k",
        "-c:a", "aac", "-b:a", "64k", "-ac", "2",
    ]  # fmt: skip


@pytest.fixture(scope="module")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """fMP4 HLS (with a master playlist) and a DASH MPD of the same test pattern."""
    root = tmp_path_factory.mktemp("media")
    (root / "hls").mkdir()
    (root / "dash").mkdir()
    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    hls = [
        *_ffmpeg_common(ffmpeg),
        "-f", "hls", "-hls_time", "1", "-hls_segment_type", "fmp4",
        "-hls_playlist_type", "vod", "-hls_fmp4_init_filename", "init.mp4",
        "-hls_segment_filename", str(root / "hls" / "seg_%03d.m4s"),
        "-master_pl_name", "master.m3u8",
        str(root / "hls" / "media.m3u8"),
    ]  # fmt: skip
    dash = [
        *_ffmpeg_common(ffmpeg),
        "-f", "dash", "-seg_duration", "1", "-use_template", "1", "-use_timeline", "1",
        str(root / "dash" / "manifest.mpd"),
    ]  # fmt: skip
    # Both encodes are tiny; run them side by side to keep the suite fast.
    procs = [subprocess.Popen(argv, stderr=subprocess.PIPE) for argv in (hls, dash)]
    for proc in procs:
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err.decode(errors="replace")
    assert (root / "hls" / "master.m3u8").is_file()
    assert (root / "dash" / "manifest.mpd").is_file()
    return root


@pytest.fixture(scope="module")
def server(media_dir: Path) -> Iterator[StaticServer]:
    with StaticServer(
        {"/static/": STATIC_DIR, "/media/": media_dir}, index=STATIC_DIR / "index.html"
    ) as srv:
        yield srv


def _src_for(engine: str) -> str:
    return DASH_PATH if engine in {"dashjs", "shaka-dash"} else HLS_PATH


# ------------------------------------------------------------ pure harness parts


@given(
    engine=st.sampled_from(ENGINES),
    src=st.text(min_size=1, max_size=40).filter(lambda s: "\x00" not in s),
    low_latency=st.booleans(),
)
def test_player_url_round_trips_src(engine: str, src: str, low_latency: bool) -> None:
    url = player_url("http://127.0.0.1:1/", engine, src, low_latency=low_latency)
    parts = urlsplit(url)
    assert parts.path == "/static/player.html"
    query = parse_qs(parts.query, keep_blank_values=True, errors="strict")
    assert query["engine"] == [engine]
    assert query["src"] == [src]
    assert ("ll" in query) is low_latency


def test_player_url_rejects_unknown_engine() -> None:
    with pytest.raises(ValueError, match="unknown engine"):
        player_url("http://x", "vlc", "/a.m3u8")


def test_player_state_parses_hook_dict() -> None:
    state = PlayerState.from_json(
        {
            "engine": "hlsjs",
            "currentTime": 2.5,
            "readyState": 4,
            "paused": False,
            "videoWidth": 320,
            "videoHeight": 180,
            "droppedFrames": 1,
            "decodedFrames": 60,
            "bufferAheadS": 3.25,
            "latencyS": None,
            "levels": [{"height": 180, "bitrate": 364000}],
            "currentLevel": 0,
            "errors": ["x"],
            "fatal": False,
        }
    )
    assert state.levels == (Level(height=180, bitrate_bps=364000),)
    assert (state.current_time_s, state.video_width, state.latency_s) == (2.5, 320, None)
    assert state.errors == ("x",)
    assert not state.fatal


def test_static_server_refuses_traversal() -> None:
    srv = StaticServer({"/static/": STATIC_DIR})
    try:
        assert srv.resolve("/static/player.html") == STATIC_DIR / "player.html"
        assert srv.resolve("/static/../../pyproject.toml") is None
        assert srv.resolve("/elsewhere/player.html") is None
    finally:
        srv._server.server_close()


def test_vendored_players_are_local_files() -> None:
    vendor = STATIC_DIR / "vendor"
    for name in ("hls.min.js", "dash.mediaplayer.min.js", "shaka-player.compiled.js"):
        assert (vendor / name).stat().st_size > 100_000, name
    # Pages must load players from our own origin, never a CDN.
    for page in ("index.html", "player.html", "players.js", "dashboard.js", "player.js"):
        text = (STATIC_DIR / page).read_text()
        assert "://" not in text.replace("http://host:8083", ""), page


# ------------------------------------------------------------ real browsers


@pytest.mark.e2e
@pytest.mark.parametrize("engine", ENGINES)
def test_engine_plays_generated_stream(
    player_harness: PlayerHarness, server: StaticServer, engine: str
) -> None:
    with player_harness.player(server.base_url, engine, _src_for(engine)) as session:
        state = session.wait_playing(min_advance_s=2.0, timeout_s=PLAY_TIMEOUT_S)
        assert state.engine == engine
        assert (state.video_width, state.video_height) == (WIDTH, HEIGHT)
        assert not state.fatal, session.diagnostics(state)
        assert [lv.height for lv in state.levels] == [HEIGHT], session.diagnostics(state)
        assert state.levels[0].bitrate_bps > 0
        assert state.latency_s is None  # VOD: no live edge to be late against
        # Forcing the only rendition and returning to ABR must not break playback.
        session.set_level(0)
        session.set_level(-1)
        after = session.state()
        assert after.raw["autoLevel"] is True
        assert not after.fatal, session.diagnostics(after)


@pytest.mark.e2e
def test_dashboard_lists_streams_and_plays_selected(
    player_harness: PlayerHarness, server: StaticServer
) -> None:
    stream = {
        "stream_id": "cam1",
        "state": "running",
        "qualities": ["180p"],
        "restarts": 2,
        "created_at": "2024-01-01T00:00:00+00:00",
        "low_latency": False,
        "urls": {"hls": HLS_PATH, "dash": DASH_PATH, "cdn_hls": HLS_PATH, "cdn_dash": DASH_PATH},
    }
    server.json_routes["/streams"] = lambda: [stream]
    try:
        with player_harness.session("hlsjs", HLS_PATH) as session:
            page = session.page
            page.goto(server.base_url + "/")
            row = page.locator("#streams-body tr", has_text="cam1")
            row.wait_for(timeout=10_000)
            assert "running" in row.inner_text()
            assert "180p" in row.inner_text()
            row.click()
            state = session.wait_playing(min_advance_s=1.0, timeout_s=PLAY_TIMEOUT_S)
            assert state.engine == "hlsjs"
            assert state.video_width == WIDTH
            # Switching the engine selector replaces the player with dash.js.
            page.select_option("#engine", "dashjs")
            page.wait_for_function("() => window.__player_state().engine === 'dashjs'")
            session.engine = "dashjs"
            state = session.wait_playing(min_advance_s=1.0, timeout_s=PLAY_TIMEOUT_S)
            assert state.video_width == WIDTH
            assert "#stream=cam1" in page.url
            assert session.console_errors == [], session.diagnostics(state)
    finally:
        server.json_routes.pop("/streams", None)


@pytest.mark.e2e
def test_dashboard_degrades_without_streams(
    player_harness: PlayerHarness, server: StaticServer
) -> None:
    server.json_routes["/streams"] = list
    try:
        with player_harness.session("none", "") as session:
            page = session.page
            page.goto(server.base_url + "/")
            page.locator("#no-streams").wait_for(state="visible", timeout=10_000)
            assert page.locator("#streams-table").is_hidden()
            assert "0 stream(s)" in page.locator("#api-status").inner_text()
            state = session.state()
            assert state.engine is None
            assert not state.fatal
            assert state.errors == ()
            assert session.console_errors == [], session.diagnostics(state)
    finally:
        server.json_routes.pop("/streams", None)
