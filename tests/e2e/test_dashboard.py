"""The dashboard operates the real service (``hlsdash serve``, real FFmpeg) in headless Chromium.

create from the form → live → the selected stream's charts have points → heartbeats from the
toggle renew the lease → Stop → gone; API errors
(a refused source → 422, a taken id → 409, no token → 401) are shown in the page itself; with
``API_TOKEN`` set the page asks for the token and then works. Figures are never asserted as
timings: only that the charts carry points and that ``bitrate_out_bps`` is a plausible bit rate.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Page

from tests.e2e.harness import PlayerHarness
from tests.e2e.live_service import LIVE_SOURCE, LiveService, run_service

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

QUALITIES = ("360p", "240p")
LIVE_TIMEOUT_MS = 60_000
TOKEN = "dashboard-e2e-token"
# every chart but latency gets a point per poll; latency only once this page's player plays
CHARTS_HAVE_POINTS = """() => {
  const c = window.__dashboard_charts();
  return ['speed', 'bitrate', 'segmentAge', 'viewers'].every((n) => c[n].points >= 3)
    && c.latency.points >= 1;
}"""


@pytest.fixture(scope="module")
def service() -> Iterator[LiveService]:
    with run_service(segment_duration_s=1.0) as svc:
        yield svc


def _fill_create_form(
    page: Page, stream_id: str, source_url: str, qualities: tuple[str, ...] = QUALITIES
) -> None:
    page.fill("#new-id", stream_id)
    page.fill("#new-source", source_url)
    boxes = page.locator("input[name=quality]")
    for i in range(boxes.count()):
        box = boxes.nth(i)
        box.set_checked(box.get_attribute("value") in qualities)
    page.check("#new-ll")
    page.click("#create")


def _shown_errors(page: Page) -> str:
    return page.locator("#api-errors").inner_text()


def test_create_live_charts_stop_gone(player_harness: PlayerHarness, service: LiveService) -> None:
    with player_harness.session("hlsjs", "") as session:
        page = session.page
        page.goto(service.api_url + "/")
        _fill_create_form(page, "ops1", LIVE_SOURCE)
        row = page.locator("#streams-body tr", has_text="ops1")
        row.locator(".state-live").wait_for(timeout=LIVE_TIMEOUT_MS)
        # the created stream is selected: this page plays it and charts it
        assert "ops1" in page.locator("#charts-stream").inner_text()
        page.wait_for_function(CHARTS_HAVE_POINTS, timeout=LIVE_TIMEOUT_MS)
        charts = page.evaluate("() => window.__dashboard_charts()")
        assert set(QUALITIES) <= set(charts["bitrate"]["series"]), charts
        assert charts["latency"]["series"] == ["measured", "player"], charts
        assert page.locator("[data-chart=bitrate] canvas").count() == 1
        assert page.locator("#api-error-box").is_hidden(), _shown_errors(page)

        # the figure the bitrate chart draws, from real FFmpeg output: a plausible video bit rate
        status = service.status("ops1")
        for quality in QUALITIES:
            assert 10_000 < status["bitrate_out_bps"][quality] < 20_000_000, status

        # heartbeats while the page is open: the toggle renews the lease of the running stream
        before = status["last_heartbeat_at"]
        page.check("#heartbeats")
        page.locator("#heartbeat-status", has_text="1/1 kept alive").wait_for(timeout=10_000)
        assert service.status("ops1")["last_heartbeat_at"] > before
        page.uncheck("#heartbeats")
        assert page.locator("#heartbeat-status").inner_text() == "off"

        row.locator("button.stop").click()
        row.wait_for(state="detached", timeout=30_000)
        assert service.client.get("/streams/ops1").status_code == 404
        assert page.locator("#api-error-box").is_hidden(), _shown_errors(page)
        page.wait_for_function("() => window.__dashboard_charts().speed.points === 0")


def test_api_errors_are_shown_in_the_page(
    player_harness: PlayerHarness, service: LiveService
) -> None:
    with player_harness.session("none", "") as session:
        page = session.page
        page.goto(service.api_url + "/")
        page.locator("#api-status.pill-ok").wait_for(timeout=10_000)

        _fill_create_form(page, "bad1", "ftp://127.0.0.1/never")
        page.locator("#api-errors li").first.wait_for(timeout=10_000)
        shown = _shown_errors(page)
        assert "create bad1: 422" in shown, shown
        assert "(source_url)" in shown, shown

        service.create_stream("taken", low_latency=False, qualities=("240p",))
        try:
            _fill_create_form(page, "taken", LIVE_SOURCE, ("240p",))
            page.locator("#api-errors li", has_text="409").wait_for(timeout=10_000)
            assert "create taken: 409 stream_exists" in _shown_errors(page)
        finally:
            service.delete_stream("taken")
        # newest first, both kept
        items = page.locator("#api-errors li").all_inner_texts()
        assert [("409" in t, "422" in t) for t in items] == [(True, False), (False, True)], items

        page.click("#clear-errors")
        assert page.locator("#api-error-box").is_hidden()


def test_the_page_asks_for_the_token_and_then_uses_it(player_harness: PlayerHarness) -> None:
    with (
        run_service(extra_env={"API_TOKEN": TOKEN}) as service,
        player_harness.session("none", "") as session,
    ):
        page = session.page
        page.goto(service.api_url + "/")
        page.locator("#token-form").wait_for(state="visible", timeout=10_000)
        assert "list streams: 401 unauthorized" in _shown_errors(page)

        page.fill("#token", "wrong")
        page.click("#token-form button[type=submit]")
        page.locator("#api-errors li", has_text="401").nth(1).wait_for(timeout=10_000)
        assert page.locator("#token-form").is_visible()

        page.fill("#token", TOKEN)
        page.click("#token-form button[type=submit]")
        page.locator("#api-status.pill-ok").wait_for(timeout=10_000)
        assert page.locator("#token-form").is_hidden()
        # POST carries the token too: the refusal is about the source (422), not auth (401)
        _fill_create_form(page, "tok1", "ftp://127.0.0.1/never")
        page.locator("#api-errors li", has_text="422").wait_for(timeout=10_000)
        assert httpx.get(f"{service.api_url}/streams").status_code == 401  # still protected
