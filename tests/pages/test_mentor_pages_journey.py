"""The mentor's journey in real headless Chromium, through the pages only: a mentor signs up, fills the profile
and submits it; an admin approves it in the admin pages (vetting queue, the mentor's page, the decision); the
mentor sets weekly hours and a day off on the availability page, and the first free time of the preview is the
first one learners see on the public page. Then every mentor page (and its error states) is checked with
axe-core, at desktop and phone width, photographed into test-artifacts/, and watched for requests to another
host. SQLite only, one server and one browser for the module, as in test_account_journey.py, with the same
page checks (tests/pages/browsing.py).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask_migrate import upgrade
from playwright.sync_api import Browser, Page, expect
from werkzeug.serving import make_server

from marketplace.accounts.models import Role
from marketplace.bookings.models import BookingStatus
from marketplace.core.time import utcnow
from marketplace.extensions import db
from marketplace.payments.models import EarningEntry
from tests.careers.support import load_paths
from tests.factories import (
    PASSWORD,
    AvailabilityScheduleFactory,
    BookingFactory,
    MentorProfileFactory,
    UserFactory,
)
from tests.helpers import temporary_app
from tests.pages.browsing import (
    DESKTOP,
    PHONE,
    check_page,
    photograph,
    scrolls_sideways,
    serious_violations,
    sign_in,
    watched_context,
)
from tests.support.servers import HOST

pytestmark = pytest.mark.slow

NEW_MENTOR = "nadia@example.test"
SEEDED_MENTOR = "sam@example.test"
ADMIN = "admin@example.test"


@dataclass
class Site:
    base_url: str
    app: Flask
    mentor_id: int  # the seeded mentor's, with a request to answer and an earning


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """The career paths, an admin, and an approved mentor with hours, a request waiting for them and an earning,
    on a migrated SQLite file served on 127.0.0.1."""
    database_url = f"sqlite:///{tmp_path_factory.mktemp('mentor-journey') / 'site.db'}"
    with temporary_app(database_url, REGISTER_RATE_LIMIT="100 per minute") as app:
        with app.app_context():
            upgrade()
            load_paths()
            UserFactory(roles=(Role.ADMIN,), email=ADMIN)
            sam = MentorProfileFactory(
                user=UserFactory(roles=(Role.MENTOR,), email=SEEDED_MENTOR, name="Sam Seeded"),
                requires_confirmation=True,
            )
            AvailabilityScheduleFactory(profile=sam)
            learner = UserFactory(name="Lee Learner")
            BookingFactory(
                mentor=sam,
                learner=learner,
                status=BookingStatus.AWAITING_MENTOR.value,
                topic="Moving from QA to backend",
                hold_expires_at=utcnow() + timedelta(hours=30),
            )
            done = BookingFactory(
                mentor=sam,
                learner=learner,
                status=BookingStatus.COMPLETED.value,
                start_at=(utcnow() - timedelta(days=3)).replace(minute=0, second=0, microsecond=0),
                confirmed_at=utcnow() - timedelta(days=5),
            )
            db.session.add(
                EarningEntry(
                    mentor_id=sam.id, booking_id=done.id, kind="session", amount_cents=6400, currency="USD"
                )
            )
            db.session.commit()
            mentor_id = sam.id
        server = make_server(HOST, 0, app, threaded=True)
        base_url = f"http://{HOST}:{server.server_port}"
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield Site(base_url, app, mentor_id)
        finally:
            server.shutdown()
            thread.join()


def _approve_in_the_admin_pages(site: Site, browser: Browser, mentor_name: str) -> int:
    """An admin signs in, finds the mentor in the vetting queue and approves the profile with a note."""
    watched = watched_context(browser, site.base_url, viewport=DESKTOP)
    page = watched.page()
    page.goto(f"{site.base_url}/login")
    sign_in(page, ADMIN, PASSWORD)
    page.get_by_role("banner").get_by_role("link", name="Admin").click()
    page.get_by_role("link", name="Vetting", exact=True).first.click()
    page.get_by_role("link", name=mentor_name).click()
    mentor_id = int(page.url.rstrip("/").rsplit("/", 1)[1])
    page.get_by_label("Approve: the profile goes live").check()
    page.get_by_label("Note to the mentor").fill("Welcome aboard.")
    page.get_by_role("button", name="Save the decision").click()
    expect(page.get_by_text("profile is approved")).to_be_visible()
    assert watched.elsewhere == []
    watched.context.close()
    return mentor_id


def _fill_profile(page: Page) -> None:
    page.get_by_label("Headline").fill("Engineering manager, hiring and growth")
    page.get_by_label("About you").fill("I have hired and coached engineers for twelve years.")
    page.get_by_label("Skills").fill("leadership, hiring, python")
    page.get_by_label("Career paths").fill("backend-developer")
    page.get_by_label("Languages you speak").fill("en, de")
    page.get_by_label("Years of experience").fill("12")
    page.get_by_label("Currency").fill("EUR")


def test_a_mentor_signs_up_is_approved_sets_hours_and_the_slot_is_public(
    site: Site, browser: Browser
) -> None:
    watched = watched_context(browser, site.base_url, viewport=DESKTOP)  # in Europe/Berlin, the mentor's zone
    page = watched.page()
    header = page.get_by_role("banner")

    page.goto(f"{site.base_url}/signup?role=mentor")
    page.get_by_label("Your name").fill("Nadia Mentor")
    page.get_by_label("Email address").fill(NEW_MENTOR)
    page.get_by_label("Password").fill(PASSWORD)
    expect(page.get_by_label("Your time zone")).to_have_value("Europe/Berlin")
    page.get_by_role("button", name="Create account").click()
    expect(page).to_have_url(f"{site.base_url}/account")

    # The profile: a bad price comes back next to its field with everything typed kept.
    header.get_by_role("link", name="Mentoring").click()
    expect(page.get_by_text("Draft: not sent for review yet.")).to_be_visible()
    _fill_profile(page)
    page.get_by_label("Hourly price").fill("eighty")
    page.get_by_role("button", name="Save profile").click()
    expect(page.locator("#error-summary")).to_be_focused()
    expect(page.locator("#price-error")).to_contain_text("hourly price as a number")
    expect(page.get_by_label("Skills")).to_have_value("leadership, hiring, python")
    page.get_by_label("Hourly price").fill("80")
    page.get_by_role("button", name="Save profile").click()
    expect(page.get_by_text("Your profile is saved.")).to_be_visible()
    page.get_by_role("button", name="Submit for review").click()
    expect(page.get_by_text("Your profile is sent for review.")).to_be_visible()
    expect(page.get_by_text("In review:")).to_be_visible()

    mentor_id = _approve_in_the_admin_pages(site, browser, "Nadia Mentor")
    page.reload()
    expect(page.get_by_text("Approved: your profile is public")).to_be_visible()
    expect(page.get_by_text("Welcome aboard.")).to_be_visible()

    # Availability: every day 09:00-17:00, a half-filled row refused, then a day off the day after tomorrow.
    page.locator("nav.subnav").get_by_role("link", name="Availability").click()
    expect(page.get_by_text("Nothing to show yet")).to_be_visible()
    for day in ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"):
        page.get_by_label(f"{day} 1, from").fill("09:00")
        page.get_by_label(f"{day} 1, to").fill("17:00")
    page.get_by_label("Monday 2, from").fill("18:00")
    page.get_by_role("button", name="Save weekly hours").click()
    expect(page.locator("#w0-1-end-error")).to_contain_text("Fill in both times, or neither.")
    expect(page.get_by_label("Sunday 1, to")).to_have_value("17:00")
    page.get_by_label("Monday 2, from").fill("")
    page.get_by_role("button", name="Save weekly hours").click()
    expect(page.get_by_text("Your weekly hours are saved.")).to_be_visible()
    preview = page.locator("section[aria-labelledby=preview-title] time")
    expect(preview.first).to_be_visible()
    first_free = preview.first.get_attribute("datetime")

    day_off = (utcnow() + timedelta(days=2)).date().isoformat()
    page.get_by_label("Date", exact=True).fill(day_off)
    page.get_by_role("button", name="Save this date").click()
    expect(page.locator("section[aria-labelledby=overrides-title] li")).to_contain_text("day off")
    expect(page.locator(f"section[aria-labelledby=preview-title] time[datetime^='{day_off}']")).to_have_count(
        0
    )

    # The public page lists the same first free time.
    page.goto(f"{site.base_url}/mentors/{mentor_id}")
    expect(page.get_by_role("heading", level=1)).to_have_text("Nadia Mentor")
    expect(page.locator("a.slot").first).to_have_attribute("data-start", first_free or "")
    assert page.locator("a.slot").count() > 5
    assert watched.elsewhere == []
    assert page.evaluate("window.__cspViolations") == []
    watched.context.close()


WIDTHS: dict[str, dict[str, Any]] = {
    "desktop": {"viewport": DESKTOP},
    "phone": {"viewport": PHONE, "is_mobile": True, "has_touch": True},
}
MENTOR_PAGES = (
    ("mentor-profile", "/mentor/profile"),
    ("mentor-availability", "/mentor/availability"),
    ("mentor-bookings", "/mentor/bookings"),
    ("mentor-earnings", "/mentor/earnings"),
)


def _error_states(page: Page, site: Site, width: str) -> list[str]:
    """Each editor refused once: its error state is photographed too, and checked with axe on the desktop."""
    problems: list[str] = []
    for name, path, fill, button in (
        ("mentor-profile-errors", "/mentor/profile", ("Hourly price", "lots"), "Save profile"),
        (
            "mentor-availability-errors",
            "/mentor/availability",
            ("Saturday 1, from", "10:00"),
            "Save weekly hours",
        ),
        ("mentor-override-errors", "/mentor/availability", ("Time 1, from", "10:00"), "Save this date"),
    ):
        page.goto(site.base_url + path)
        page.get_by_label(fill[0]).fill(fill[1])
        page.get_by_role("button", name=button).click()
        expect(page.locator("#error-summary")).to_be_focused()
        if width == "desktop":
            problems += [f"{name}: {problem}" for problem in serious_violations(page)]
        photograph(page, f"{name}-{width}")
    return problems


def _phone_check(page: Page, site: Site, name: str, path: str) -> list[str]:
    """At phone width a page must not scroll sideways (axe and the weight are checked on the desktop)."""
    page.goto(site.base_url + path)
    problems = scrolls_sideways(page, name)
    photograph(page, f"{name}-phone")
    return problems


@pytest.mark.parametrize("width", ["desktop", "phone"])
def test_every_mentor_page_passes_axe_fits_the_width_and_loads_nothing_from_another_host(
    site: Site, browser: Browser, width: str
) -> None:
    watched = watched_context(browser, site.base_url, **WIDTHS[width])
    page = watched.page()
    page.goto(f"{site.base_url}/login")
    sign_in(page, SEEDED_MENTOR, PASSWORD)
    expect(page.get_by_role("banner").get_by_role("link", name="Mentoring")).to_be_visible()

    problems: list[str] = []
    for name, path in MENTOR_PAGES:
        if width == "desktop":
            problems += check_page(page, site.base_url + path, name, width)
        else:
            problems += _phone_check(page, site, name, path)
    expect(page.get_by_role("cell", name="$64.00")).to_be_visible()  # the seeded earning, in the ledger
    page.goto(f"{site.base_url}/mentor/bookings")
    expect(page.get_by_text("Moving from QA to backend")).to_be_visible()
    expect(page.get_by_role("button", name="Accept the request of Lee Learner")).to_be_visible()
    page.get_by_role("button", name="Get a new calendar link").click()
    expect(page.locator(".feed-url")).to_contain_text("/calendar/")
    if width == "desktop":
        problems += [f"mentor-calendar-feed: {problem}" for problem in serious_violations(page)]
    photograph(page, f"mentor-calendar-feed-{width}")
    problems += _error_states(page, site, width)

    assert problems == []
    assert watched.elsewhere == []
    assert page.evaluate("window.__cspViolations") == []
    watched.context.close()
