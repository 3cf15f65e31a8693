"""Headless-Chromium player harness for the e2e tests.

Drives the real browser players (hls.js, dash.js, Shaka) through
``supervisor/static/player.html`` and reads the page's test hooks
(``window.__player_state()`` / ``window.__set_level(i)``).

Playwright's *sync* API is used on purpose: the suite runs under pytest-trio
(``trio_mode = true``), and the sync API runs its own private event loop in a
greenlet, so it is called from plain ``def`` tests and never touches trio.

We never let Playwright download a browser: it drives Debian's
``/usr/bin/chromium`` (``scripts/install-browser``) via ``executable_path``.
"""

from __future__ import annotations

import json
import mimetypes
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from playwright.sync_api import (
    BrowserContext,
    ConsoleMessage,
    FloatRect,
    Page,
    Response,
    sync_playwright,
)

CHROMIUM_PATH = Path("/usr/bin/chromium")
STATIC_DIR = Path(__file__).resolve().parents[2] / "supervisor" / "static"

CHROMIUM_ARGS: tuple[str, ...] = (
    "--no-sandbox",  # we run as root in CI containers, where the sandbox cannot start
    "--autoplay-policy=no-user-gesture-required",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--mute-audio",
    # a fake camera and microphone, granted without a prompt: the dashboard's "Go live from this
    # browser" (WHIP) publishes them in tests/e2e/test_whip_dashboard.py
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
)

# Engine names understood by player.html (and the dashboard's selector).
ENGINES: tuple[str, ...] = ("hlsjs", "dashjs", "shaka-hls", "shaka-dash")

# Polling period for wait_playing; short enough to see frames advance, long
# enough not to load the 2-core CI machine with evaluate() round trips.
_POLL_INTERVAL_S = 0.25
# Forward progress between two polls counts as playback only up to this many
# times the wall-clock time that passed (catch-up rates are ≤ 1.5×); anything
# larger is a seek (e.g. a jump to the live edge), not playing.
_MAX_PLAYBACK_RATE = 2.0
_MAX_CONSOLE_LINES = 200


@dataclass(frozen=True, slots=True)
class Level:
    height: int
    bitrate_bps: int
    # the player's ABR has set this rendition aside for a while (Shaka: too many dropped frames)
    banned: bool = False


@dataclass(frozen=True, slots=True)
class PlayerState:
    """Typed view of ``window.__player_state()``; ``raw`` keeps the whole dict."""

    engine: str | None
    current_time_s: float
    ready_state: int
    paused: bool
    video_width: int
    video_height: int
    dropped_frames: int
    decoded_frames: int
    buffer_ahead_s: float
    latency_s: float | None
    levels: tuple[Level, ...]
    current_level: int
    errors: tuple[str, ...]
    fatal: bool
    raw: Mapping[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> PlayerState:
        latency = raw.get("latencyS")
        return cls(
            engine=raw.get("engine"),
            current_time_s=float(raw.get("currentTime") or 0.0),
            ready_state=int(raw.get("readyState") or 0),
            paused=bool(raw.get("paused", True)),
            video_width=int(raw.get("videoWidth") or 0),
            video_height=int(raw.get("videoHeight") or 0),
            dropped_frames=int(raw.get("droppedFrames") or 0),
            decoded_frames=int(raw.get("decodedFrames") or 0),
            buffer_ahead_s=float(raw.get("bufferAheadS") or 0.0),
            latency_s=None if latency is None else float(latency),
            levels=tuple(
                Level(
                    height=int(lv.get("height") or 0),
                    bitrate_bps=int(lv.get("bitrate") or 0),
                    banned=bool(lv.get("banned", False)),
                )
                for lv in raw.get("levels") or ()
            ),
            current_level=int(raw.get("currentLevel", -1)),
            errors=tuple(str(e) for e in raw.get("errors") or ()),
            fatal=bool(raw.get("fatal", False)),
            raw=dict(raw),
        )

    @property
    def pdt_latency_s(self) -> float | None:
        """Wall clock minus the on-screen frame's wall-clock time (PDT / DASH AST mapping)."""
        value = self.raw.get("pdtLatencyS")
        return None if value is None else float(value)


@dataclass(frozen=True, slots=True)
class Picture:
    """A screenshot of the playing picture; ``taken_at_s`` (wall clock) is mid-capture."""

    png: bytes
    taken_at_s: float
    duration_s: float  # how long the capture took: the uncertainty of taken_at_s is half of it
    video_height: int  # the rendition on screen


# The picture's box inside the <video> element (object-fit: contain centres it), page pixels.
_PICTURE_BOX_JS = """() => {
  const v = document.getElementById("video");
  if (!v || !v.videoWidth || !v.videoHeight) return null;
  const r = v.getBoundingClientRect();
  const scale = Math.min(r.width / v.videoWidth, r.height / v.videoHeight);
  const width = v.videoWidth * scale, height = v.videoHeight * scale;
  return {x: r.left + (r.width - width) / 2, y: r.top + (r.height - height) / 2,
          width, height, videoHeight: v.videoHeight};
}"""


def player_url(
    base_url: str,
    engine: str,
    src: str,
    *,
    low_latency: bool = False,
    extra: Mapping[str, str] | None = None,
) -> str:
    """URL of ``player.html`` on a server that mounts supervisor/static at /static/."""
    if engine not in {*ENGINES, "shaka"}:
        raise ValueError(f"unknown engine {engine!r}; expected one of {ENGINES}")
    query = f"engine={quote(engine)}&src={quote(src, safe='')}"
    if low_latency:
        query += "&ll=1"
    for key, value in (extra or {}).items():
        query += f"&{quote(key)}={quote(value, safe='')}"
    return f"{base_url.rstrip('/')}/static/player.html?{query}"


def only_load_errors_fatal(state: PlayerState) -> bool:
    """Were all of hls.js's fatal errors failed loads (playlist, fragment: the server away)?"""
    return all(
        error.startswith("hls.js networkError/") and "LoadError" in error
        for error in state.errors
        if error.endswith("(fatal)")
    )


class PlayerSession:
    """One browser tab playing one stream. Collects console output for diagnostics."""

    def __init__(self, page: Page, *, engine: str, src: str) -> None:
        self.page = page
        self.engine = engine
        self.src = src
        self.console: list[str] = []
        page.on("console", self._on_console)
        page.on("pageerror", lambda exc: self._log(f"[pageerror] {exc}"))
        page.on(
            "requestfailed",
            lambda req: self._log(f"[requestfailed] {req.url} {req.failure}"),
        )
        page.on("response", self._on_response)

    def _log(self, line: str) -> None:
        if len(self.console) < _MAX_CONSOLE_LINES:
            self.console.append(line)

    def _on_response(self, resp: Response) -> None:
        if resp.status >= 400:
            self._log(f"[http {resp.status}] {resp.url}")

    def _on_console(self, msg: ConsoleMessage) -> None:
        if msg.type in {"error", "warning"}:
            self._log(f"[console.{msg.type}] {msg.text}")

    @property
    def console_errors(self) -> list[str]:
        """Console errors, page exceptions and failed requests seen so far.

        A request the page cancelled itself (``net::ERR_ABORTED``) is not one: dash.js aborts
        its pending segment requests whenever it seeks — at start-up when the live edge it
        computed lies a few ms before the first segment, and when its catch-up decides to jump
        to the live point — and hls.js when it switches level. A failure the server caused
        (a 4xx/5xx, a reset, a truncated body) is still counted. They stay in ``console``.
        """
        return [
            line
            for line in self.console
            if not line.startswith("[console.warning]")
            and not (line.startswith("[requestfailed]") and line.endswith("net::ERR_ABORTED"))
        ]

    def state(self) -> PlayerState:
        raw = self.page.evaluate(
            "() => (typeof window.__player_state === 'function') ? window.__player_state() : null"
        )
        if raw is None:
            # The module has not run yet (or failed to load): report an empty player.
            raw = {"engine": None, "errors": ["__player_state not defined yet"]}
        return PlayerState.from_json(raw)

    def set_level(self, index: int) -> None:
        """Force rendition ``index`` of ``state().levels``; -1 returns to ABR."""
        ok = self.page.evaluate("(i) => window.__set_level(i)", index)
        assert ok, f"__set_level({index}) found no player\n{self.diagnostics()}"

    def wait_playing(
        self,
        min_advance_s: float = 2.0,
        timeout_s: float = 20.0,
        *,
        through_network_outage: bool = False,
    ) -> PlayerState:
        """Wait until the video has *played* ``min_advance_s`` seconds of media.

        Progress is summed only over forward steps no faster than
        ``_MAX_PLAYBACK_RATE`` × wall time, so a seek to the live edge does not
        count as playback. Fails at once on a fatal player error; at the end
        also requires videoWidth > 0 and a growing decoded-frame counter.

        ``through_network_outage``: the server was down meanwhile (a service restart), so
        hls.js's fatal *load* errors (its retries ran out; the page restarts loading, as hls.js
        documents) are expected; any other fatal error still fails at once.
        """
        deadline = time.monotonic() + timeout_s
        first = self.state()
        played_s = 0.0
        last_time_s = first.current_time_s
        last_wall = time.monotonic()
        state = first
        while True:
            state = self.state()
            now = time.monotonic()
            if state.fatal and not (through_network_outage and only_load_errors_fatal(state)):
                raise AssertionError(
                    f"{self.engine}: fatal player error while waiting for playback\n"
                    + self.diagnostics(state)
                )
            step_s = state.current_time_s - last_time_s
            if 0 < step_s <= _MAX_PLAYBACK_RATE * (now - last_wall) + _POLL_INTERVAL_S:
                played_s += step_s
            last_time_s, last_wall = state.current_time_s, now
            if played_s >= min_advance_s and state.decoded_frames > first.decoded_frames:
                break
            if now > deadline:
                raise AssertionError(
                    f"{self.engine}: played {played_s:.2f} s of media in {timeout_s} s, "
                    f"wanted {min_advance_s} s\n" + self.diagnostics(state)
                )
            self.page.wait_for_timeout(_POLL_INTERVAL_S * 1000)
        assert state.video_width > 0, f"{self.engine}: videoWidth is 0\n{self.diagnostics(state)}"
        return state

    def diagnostics(self, state: PlayerState | None = None) -> str:
        """Human-readable dump for assertion messages: state, player errors, console."""
        try:
            snapshot = state if state is not None else self.state()
            state_text = json.dumps(dict(snapshot.raw), indent=1, default=str)
        except Exception as exc:  # the page may be gone; diagnostics must not raise
            state_text = f"<state unavailable: {exc}>"
        console = "\n".join(self.console[-50:]) or "<no console errors>"
        return (
            f"engine={self.engine} src={self.src} page={self.page.url}\n"
            f"state={state_text}\nconsole:\n{console}"
        )

    def print_console(self) -> None:
        """Print collected console output (pytest shows it for failing tests)."""
        print(self.diagnostics())  # shown by pytest on failure

    def screenshot(self, path: Path) -> None:
        self.page.screenshot(path=str(path))

    def picture(self) -> Picture | None:
        """A PNG of the video picture as the viewer sees it, and when it was taken.

        The screenshot is clipped to the picture inside the ``<video>`` box (letterbox bars
        left out), so the image's top-left corner is the picture's. None before the first frame.
        """
        box = self.page.evaluate(_PICTURE_BOX_JS)
        if box is None:
            return None
        started_s = time.time()
        clip = FloatRect(x=box["x"], y=box["y"], width=box["width"], height=box["height"])
        png = self.page.screenshot(clip=clip)
        ended_s = time.time()
        return Picture(
            png=png,
            taken_at_s=(started_s + ended_s) / 2,
            duration_s=ended_s - started_s,
            video_height=int(box["videoHeight"]),
        )

    def close(self) -> None:
        if not self.page.is_closed():
            self.page.close()


class PlayerHarness:
    """A running headless Chromium with a fresh profile; opens PlayerSessions."""

    def __init__(self, context: BrowserContext) -> None:
        self.context = context

    def open_player(
        self,
        base_url: str,
        engine: str,
        src: str,
        low_latency: bool = False,
        extra: Mapping[str, str] | None = None,
    ) -> PlayerSession:
        """Open ``player.html`` for ``src`` (absolute, or relative to ``base_url``).

        ``extra`` adds query parameters understood by player.html (``target``, ``debug``).
        """
        page = self.context.new_page()
        session = PlayerSession(page, engine=engine, src=src)
        page.goto(player_url(base_url, engine, src, low_latency=low_latency, extra=extra))
        return session

    @contextmanager
    def session(self, engine: str, src: str) -> Iterator[PlayerSession]:
        """A new, blank tab as a PlayerSession; prints diagnostics if the body fails, closes it."""
        session = PlayerSession(self.context.new_page(), engine=engine, src=src)
        try:
            yield session
        except BaseException:
            session.print_console()
            raise
        finally:
            session.close()

    @contextmanager
    def player(
        self,
        base_url: str,
        engine: str,
        src: str,
        low_latency: bool = False,
        extra: Mapping[str, str] | None = None,
    ) -> Iterator[PlayerSession]:
        """``open_player`` as a context manager that prints diagnostics if the body fails."""
        with self.session(engine, src) as session:
            url = player_url(base_url, engine, src, low_latency=low_latency, extra=extra)
            session.page.goto(url)
            yield session


def chromium_available(path: Path = CHROMIUM_PATH) -> bool:
    return path.is_file()


@contextmanager
def launch_harness(
    *, executable: Path = CHROMIUM_PATH, headless: bool = True
) -> Iterator[PlayerHarness]:
    """Launch Chromium with a fresh, throw-away user-data dir."""
    user_data_dir = Path(tempfile.mkdtemp(prefix="hlsdash-chromium-"))
    try:
        with sync_playwright() as pw:
            context = pw.chromium.launch_persistent_context(
                str(user_data_dir),
                executable_path=str(executable),
                headless=headless,
                args=list(CHROMIUM_ARGS),
                viewport={"width": 1280, "height": 800},
            )
            try:
                yield PlayerHarness(context)
            finally:
                context.close()
    finally:
        shutil.rmtree(user_data_dir, ignore_errors=True)


# --------------------------------------------------------------- test HTTP server

_EXTRA_TYPES = {
    ".m3u8": "application/vnd.apple.mpegurl",
    ".mpd": "application/dash+xml",
    ".m4s": "video/iso.segment",
    ".mp4": "video/mp4",
    ".m4a": "audio/mp4",
    ".js": "text/javascript",  # ES modules are refused with a non-JS MIME type
    ".mjs": "text/javascript",
    ".css": "text/css",
}

JsonProvider = Callable[[], object]


class StaticServer:
    """Tiny threaded HTTP server for e2e tests.

    ``mounts`` maps URL prefixes ("/static/") to directories; ``json_routes``
    maps exact paths ("/streams") to callables returning JSON-able values, so a
    test can fake the API the dashboard polls. Binds 127.0.0.1 on a free port.
    """

    def __init__(
        self,
        mounts: Mapping[str, Path],
        *,
        json_routes: Mapping[str, JsonProvider] | None = None,
        index: Path | None = None,
    ) -> None:
        # Longest prefix first so "/static/vendor/" could override "/static/".
        self._mounts = sorted(
            ((p if p.endswith("/") else p + "/", d.resolve()) for p, d in mounts.items()),
            key=lambda item: -len(item[0]),
        )
        self.json_routes: dict[str, JsonProvider] = dict(json_routes or {})
        self._index = index
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._make_handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def resolve(self, url_path: str) -> Path | None:
        """Map a URL path to a file inside a mount, refusing path traversal."""
        if url_path == "/" and self._index is not None:
            return self._index
        for prefix, root in self._mounts:
            if url_path.startswith(prefix):
                candidate = (root / url_path[len(prefix) :]).resolve()
                if candidate.is_relative_to(root) and candidate.is_file():
                    return candidate
                return None
        return None

    def _make_handler(self) -> type[SimpleHTTPRequestHandler]:
        server = self

        class Handler(SimpleHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass  # keep pytest output clean; failures print browser-side logs

            def end_headers(self) -> None:
                # Players fetch with CORS semantics; playlists must not be cached.
                self.send_header("Access-Control-Allow-Origin", "*")
                self.send_header("Cache-Control", "no-store")
                super().end_headers()

            def _send(self, status: HTTPStatus, body: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def do_HEAD(self) -> None:
                self.do_GET()

            def do_GET(self) -> None:
                path = unquote(urlsplit(self.path).path)
                if path == "/time":
                    # like the service (DASH UTCTiming, the pages' server clock): ISO 8601, ms, UTC
                    now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
                    self._send(HTTPStatus.OK, now.encode(), "text/plain; charset=utf-8")
                    return
                provider = server.json_routes.get(path)
                if provider is not None:
                    body = json.dumps(provider()).encode()
                    self._send(HTTPStatus.OK, body, "application/json")
                    return
                file = server.resolve(path)
                if file is None:
                    self._send(HTTPStatus.NOT_FOUND, b"not found", "text/plain")
                    return
                ctype = _EXTRA_TYPES.get(file.suffix.lower()) or (
                    mimetypes.guess_type(file.name)[0] or "application/octet-stream"
                )
                self._send(HTTPStatus.OK, file.read_bytes(), ctype)

        return Handler

    def start(self) -> StaticServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> StaticServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
