"""A learner's path through the pages in real headless Chromium, against a real HTTP server on loopback.

From a career path to a mentor's free times (shown in the browser's own time zone), then to the full
listing filtered by price. SQLite only: PostgreSQL would add nothing the API tests do not already cover.
A screenshot of every page lands in test-artifacts/. The server is werkzeug's in a thread, serving the
app the data was written through: gunicorn's four workers would triple the time these tests take.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from flask_migrate import upgrade
from playwright.sync_api import Browser, Page, expect
from werkzeug.serving import make_server

from marketplace.extensions import db
from marketplace.mentors.vetting import VettingStatus
from tests.careers.support import load_paths, make_mentor, tomorrow
from tests.factories import AvailabilityScheduleFactory
from tests.helpers import temporary_app
from tests.pages.browsing import ARTIFACTS, DESKTOP, SIDEWAYS, Watched, photograph, watched_context
from tests.support.servers import HOST

pytestmark = pytest.mark.slow

VISITOR_ZONE = "America/New_York"
SEED_BOOKS = (
    "Microservice APIs",
    "High Performance Python",
    "Python Cookbook",
    "Designing Data-Intensive Applications",
)


@dataclass(frozen=True)
class Site:
    base_url: str
    maria_id: int


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """A migrated SQLite file with the career paths and four mentors, served over HTTP on 127.0.0.1."""
    database_url = f"sqlite:///{tmp_path_factory.mktemp('browser') / 'site.db'}"
    with temporary_app(database_url) as app:
        with app.app_context():
            upgrade()
            load_paths()
            maria = make_mentor(
                "Maria Alvarez",
                chose=("backend-developer",),
                skills=("python", "sql"),
                rating=(4.8, 50),
                price_cents=9000,
                next_free=tomorrow(),
                headline="Staff backend engineer, payments and distributed systems",
            )
            AvailabilityScheduleFactory(profile=maria)
            make_mentor("Carl Cheap", chose=("backend-developer",), price_cents=4000, next_free=tomorrow())
            make_mentor("Petra Pricey", chose=("backend-developer",), price_cents=15000)
            make_mentor("Penny Pending", chose=("backend-developer",), status=VettingStatus.PENDING_REVIEW)
            db.session.commit()
            maria_id = maria.id
        server = make_server(HOST, 0, app, threaded=True)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield Site(f"http://{HOST}:{server.server_port}", maria_id)
        finally:
            server.shutdown()
            thread.join()


def _shot(page: Page, name: str) -> None:
    photograph(page, name)
    assert (ARTIFACTS / f"{name}.png").stat().st_size > 0


def _in_visitor_zone(iso_utc: str) -> datetime:
    return datetime.fromisoformat(iso_utc.replace("Z", "+00:00")).astimezone(ZoneInfo(VISITOR_ZONE))


def test_from_a_career_path_to_a_mentor_and_a_filtered_listing(site: Site, browser: Browser) -> None:
    context = browser.new_context(timezone_id=VISITOR_ZONE, locale="en-US", viewport=DESKTOP)
    page = context.new_page()

    # The career path: the seed's books and salary figure, and the top mentors.
    page.goto(f"{site.base_url}/careers/backend-developer")
    expect(page.get_by_role("heading", level=1)).to_have_text("Backend Developer")
    for title in SEED_BOOKS:
        expect(page.get_by_role("heading", name=title, exact=True)).to_be_visible()
    expect(page.get_by_text("$30,000 a year")).to_be_visible()
    expect(page.get_by_text("Penny Pending")).to_have_count(0)
    card_time = page.locator(".mentor-card time").first
    expect(card_time).not_to_contain_text("UTC")
    moment = _in_visitor_zone(card_time.get_attribute("datetime") or "")
    expect(card_time).to_contain_text(f"{moment:%H:%M}")
    _shot(page, "career-backend-developer")

    # A mentor card leads to the profile, whose free times are in the browser's zone.
    page.get_by_role("link", name="Maria Alvarez").click()
    expect(page).to_have_url(f"{site.base_url}/mentors/{site.maria_id}")
    expect(page.get_by_role("heading", level=1)).to_have_text("Maria Alvarez")
    expect(page.locator("#slots ~ p [data-zone-name]")).to_have_text(VISITOR_ZONE)
    first_slot = page.locator("a.slot").first
    start = _in_visitor_zone(first_slot.get_attribute("data-start") or "")
    expect(first_slot).to_have_text(f"{start:%H:%M}")
    first_day = page.locator(".slot-day h3").first
    expect(first_day).to_contain_text(f"{start:%a}")
    expect(first_day).to_contain_text(f" {start.day}")
    assert start > datetime.now(UTC).astimezone(start.tzinfo) - timedelta(minutes=1)
    _shot(page, "mentor-profile")

    # "Browse all" opens the listing for the path; the price filter narrows it.
    page.go_back()
    page.get_by_role("link", name="Browse all 3 Backend Developer mentors").click()
    expect(page).to_have_url(f"{site.base_url}/mentors?career_path=backend-developer")
    expect(page.locator(".mentor-card")).to_have_count(3)
    _shot(page, "mentors-backend-developer")
    page.get_by_label("Max price per hour").fill("50")
    page.get_by_role("button", name="Show mentors").click()
    expect(page).to_have_url(re.compile(r"[?&]max_price=50(&|$)"))
    expect(page.locator(".mentor-card")).to_have_count(1)
    expect(page.locator(".mentor-card h3")).to_have_text("Carl Cheap")
    expect(page.get_by_label("Career path")).to_have_value("backend-developer")
    _shot(page, "mentors-filtered-by-price")
    context.close()


def test_pages_fit_a_phone_and_start_with_a_skip_link(site: Site, browser: Browser) -> None:
    context = browser.new_context(viewport={"width": 375, "height": 740}, is_mobile=True, has_touch=True)
    page = context.new_page()

    for path, name in (("/careers", "careers-phone"), (f"/mentors/{site.maria_id}", "mentor-phone")):
        page.goto(f"{site.base_url}{path}")
        overflow = page.evaluate(SIDEWAYS)
        assert overflow <= 0, f"{path} scrolls sideways by {overflow}px on a phone"
        _shot(page, name)

    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to the content"
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"
    context.close()


def _offline_page(browser: Browser, site: Site) -> tuple[Page, Watched]:
    """A page that may only reach the site itself, in the visitor's zone and the browser's own locale; its
    context records what else it tried and any console error."""
    watched = watched_context(browser, site.base_url, timezone_id=VISITOR_ZONE, locale=None, viewport=DESKTOP)
    return watched.page(), watched


def test_pages_run_under_the_csp_with_nothing_from_another_host(site: Site, browser: Browser) -> None:
    page, watched = _offline_page(browser, site)

    for path in (
        "/careers",
        "/careers/backend-developer",
        "/mentors",
        f"/mentors/{site.maria_id}",
        "/careers/nope",
    ):
        response = page.goto(f"{site.base_url}{path}")
        assert response is not None
        assert "frame-ancestors 'none'" in (response.headers.get("content-security-policy") or "")
        expect(page.get_by_role("heading", level=1)).to_be_visible()
        assert page.evaluate("window.__cspViolations") == [], path
        if path == f"/mentors/{site.maria_id}":
            # local-time.js ran: the zone is the browser's, not the server's UTC fallback.
            expect(page.locator("[data-zone-name]").first).to_have_text(VISITOR_ZONE)
    assert page.locator("script[type='application/ld+json']").count() == 1

    page.goto(f"{site.base_url}/careers/backend-developer")
    bars = page.locator(".pay .bar rect")
    expect(bars).to_have_count(2)
    assert float(bars.nth(0).get_attribute("width") or 0) < float(bars.nth(1).get_attribute("width") or 0)
    assert watched.elsewhere == []
    assert [error for error in watched.errors if "404" not in error] == []
    page.context.close()


def test_api_docs_render_every_operation_offline_under_the_csp(site: Site, browser: Browser) -> None:
    page, watched = _offline_page(browser, site)
    spec = page.request.get(f"{site.base_url}/api/openapi.json").json()
    operations = sum(
        1
        for item in spec["paths"].values()
        for method in item
        if method in {"get", "put", "post", "patch", "delete"}
    )

    page.goto(f"{site.base_url}/api/docs")

    expect(page.locator(".swagger-ui .info .title")).to_contain_text(spec["info"]["title"])
    expect(page.locator(".opblock")).to_have_count(operations)
    expect(
        page.locator(".opblock-summary-path[data-path='/api/v1/bookings/{booking_id}']").first
    ).to_be_visible()
    _shot(page, "api-docs")
    assert page.evaluate("window.__cspViolations") == []
    assert watched.elsewhere == []
    assert watched.errors == []
    page.context.close()
