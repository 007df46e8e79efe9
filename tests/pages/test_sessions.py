"""My sessions in real headless Chromium, against a live HTTP server: a learner finds a paid session, downloads
its calendar file, cancels one after seeing the refund (which the Stripe stand-in then holds), moves one to
another free time (after losing a time to someone quicker), and reviews a completed one. Then every page of
it, in its plain and its error states, is checked with axe-core and photographed at desktop and phone width.

The bookings are made the way the API makes them (a hold, paid at the stand-in, confirmed by the signed
webhook): the checkout pages are tested on their own. SQLite only, one server and one browser for the
module, like tests/pages/test_account_journey.py; the page checks are tests/pages/browsing.py's.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import requests
from flask import Flask
from flask_migrate import upgrade
from icalendar import Calendar
from playwright.sync_api import Browser, Page, expect
from werkzeug.serving import make_server

from marketplace.accounts.models import Role
from marketplace.bookings.state_changes import complete_finished
from marketplace.extensions import db
from marketplace.mentors.models import MentorProfile
from marketplace.mentors.schemas import MAX_NOTICE_HOURS
from tests.careers.support import make_mentor
from tests.factories import PASSWORD, AvailabilityScheduleFactory, UserFactory
from tests.fixtures.bookable import hold, pay_and_confirm
from tests.helpers import STRIPE_SETTINGS, ApiUser, temporary_app
from tests.pages.browsing import (
    DESKTOP,
    PHONE,
    Watched,
    check_page,
    photograph,
    scrolls_sideways,
    serious_violations,
    sign_in,
    watched_context,
)
from tests.support.servers import HOST
from tests.support.stripe_client import StripeTestClient

pytestmark = pytest.mark.slow

LEARNER_ZONE = "America/New_York"  # the learner's profile; the browser itself is in Berlin
PRICE = "$80.00"
TOO_LATE_HOURS = 24 * 90  # the strict mentor's notice: longer than their horizon, so always too late


@dataclass
class World:
    """The live site, a learner with an API token, two mentors (one asks for more notice than any booking
    has) and free hours of the first mentor, two hours apart, for the tests to book."""

    base_url: str
    app: Flask
    mentor_id: int
    strict_mentor_id: int
    learner: ApiUser
    learner_email: str
    other_learner: ApiUser
    mentor: ApiUser
    stripe: StripeTestClient
    free_starts: list[datetime]

    def book(self, mentor_id: int | None = None, api: ApiUser | None = None) -> dict[str, Any]:
        """A paid, confirmed booking of the next free hour (of `mentor_id`, by `api`)."""
        booking = self.hold(self.free_starts.pop(0), mentor_id, api)
        pay_and_confirm(self.learner.client, self.stripe, booking["payment"]["payment_intent_id"])
        return booking

    def hold(
        self, start: datetime, mentor_id: int | None = None, api: ApiUser | None = None
    ) -> dict[str, Any]:
        with self.app.app_context():
            profile = db.session.get(MentorProfile, mentor_id or self.mentor_id)
            assert profile is not None
            return hold(api or self.learner, profile, start.isoformat())

    def complete(self, booking: dict[str, Any]) -> None:
        """Completed as the sweep completes it, once the no-show window after its end has passed (with
        any earlier session still confirmed)."""
        with self.app.app_context():
            ended = datetime.fromisoformat(booking["end"]) + timedelta(hours=24)
            assert booking["id"] in complete_finished(ended)
            db.session.commit()

    def booking(self, booking_id: int) -> dict[str, Any]:
        body: dict[str, Any] = self.learner.get(f"/api/v1/bookings/{booking_id}").get_json()
        return body


def _two_hours_apart(starts: list[datetime]) -> list[datetime]:
    """Starts far enough apart that booking one leaves the others free."""
    spread: list[datetime] = []
    for start in starts:
        if not spread or start >= spread[-1] + timedelta(hours=2):
            spread.append(start)
    return spread


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    database_url = f"sqlite:///{tmp_path_factory.mktemp('sessions') / 'site.db'}"
    # Each test books a session or more: more holds an hour than a learner may make by default.
    with temporary_app(database_url, HOLD_RATE_LIMIT="100 per hour") as app:
        with app.app_context():
            upgrade()
            maria = make_mentor("Maria Alvarez", headline="Staff backend engineer")
            strict = make_mentor(
                "Sam Strict", cancel_notice_hours=TOO_LATE_HOURS, reschedule_notice_hours=TOO_LATE_HOURS
            )
            for profile in (maria, strict):
                AvailabilityScheduleFactory(profile=profile)
            learner = UserFactory(roles=(Role.LEARNER,), name="Lin Learner", timezone=LEARNER_ZONE)
            other = UserFactory(roles=(Role.LEARNER,), name="Quick Quinn")
            db.session.commit()
            client = app.test_client()
            apis = [ApiUser(client, user) for user in (learner, other, maria.user)]
            first = date.today() + timedelta(days=2)  # past the 24 hours' notice of a full refund
            slots = client.get(
                f"/api/v1/mentors/{maria.id}/slots?from={first}&to={first + timedelta(days=9)}&duration=60"
            ).get_json()
            mentor_ids = (maria.id, strict.id)
            learner_email = learner.email
        server = make_server(HOST, 0, app, threaded=True)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield World(
                base_url=f"http://{HOST}:{server.server_port}",
                app=app,
                mentor_id=mentor_ids[0],
                strict_mentor_id=mentor_ids[1],
                learner=apis[0],
                learner_email=learner_email,
                other_learner=apis[1],
                mentor=apis[2],
                stripe=StripeTestClient(
                    STRIPE_SETTINGS["STRIPE_API_BASE"], STRIPE_SETTINGS["STRIPE_SECRET_KEY"]
                ),
                free_starts=_two_hours_apart([datetime.fromisoformat(slot["start"]) for slot in slots]),
            )
        finally:
            server.shutdown()
            thread.join()


@pytest.fixture(scope="module")
def learner(world: World, browser: Browser) -> Iterator[Watched]:
    """The learner signed in, once for the module: each test opens its own tab, at desktop width."""
    watched = watched_context(browser, world.base_url, viewport=DESKTOP)
    page = watched.page()
    page.goto(f"{world.base_url}/login")
    sign_in(page, world.learner_email, PASSWORD)
    expect(page.get_by_role("banner").get_by_role("link", name="Lin Learner")).to_be_visible()
    page.close()
    yield watched
    watched.context.close()


def _when(start: datetime, zone: str = LEARNER_ZONE, minutes: int = 60) -> str:
    """A session's time as the pages write it, in `zone`."""
    local, end = (
        start.astimezone(ZoneInfo(zone)),
        (start + timedelta(minutes=minutes)).astimezone(ZoneInfo(zone)),
    )
    return f"{local:%a} {local.day} {local:%b %Y}, {local:%H:%M} to {end:%H:%M}"


def _start(booking: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(booking["start"])


def _zulu(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _fact(page: Page, name: str) -> Any:
    return page.locator(".facts div").filter(has_text=name).locator("dd")


def test_a_learner_finds_the_paid_session_and_downloads_its_calendar_file(
    world: World, learner: Watched
) -> None:
    booking = world.book()
    start = _start(booking)
    page = learner.page()
    page.goto(f"{world.base_url}/")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="My sessions").click()
    upcoming = page.locator("section", has=page.get_by_role("heading", name="Upcoming"))
    entry = upcoming.get_by_role("listitem").filter(has_text=_when(start))
    expect(entry).to_contain_text("Maria Alvarez")
    expect(entry).to_contain_text(f"Confirmed. {PRICE} paid.")
    entry.get_by_role("link").click()
    expect(page).to_have_url(f"{world.base_url}/sessions/{booking['id']}")
    expect(_fact(page, "When")).to_have_text(_when(start))
    expect(_fact(page, "Status")).to_have_text("Confirmed")

    with page.expect_download() as download:
        page.get_by_role("link", name="Download the calendar file (.ics)").click()
    calendar = Calendar.from_ical(download.value.path().read_bytes())
    (event,) = calendar.walk("VEVENT")
    assert event.decoded("dtstart") == start
    assert event.decoded("dtend") == start + timedelta(hours=1)
    assert str(event["uid"]) == f"booking-{booking['id']}@mentor-marketplace"
    assert str(event["status"]) == "CONFIRMED"
    assert download.value.suggested_filename == f"session-{booking['id']}.ics"

    # The times in another zone, chosen on the page; an unknown zone is refused next to its field.
    page.get_by_label("Show times in another time zone").fill("Asia/Kolkata")
    page.get_by_role("button", name="Show").click()
    expect(_fact(page, "When")).to_have_text(_when(start, "Asia/Kolkata"))
    page.get_by_label("Show times in another time zone").fill("Mars/Olympus")
    page.get_by_role("button", name="Show").click()
    expect(page.locator("#tz-error")).to_contain_text("Not a known IANA time zone")
    expect(page.get_by_label("Show times in another time zone")).to_have_value("Mars/Olympus")
    expect(_fact(page, "When")).to_have_text(_when(start))
    page.close()


def test_a_learner_sees_the_refund_then_cancels_and_the_stand_in_refunds_it(
    world: World, learner: Watched
) -> None:
    booking = world.book()
    page = learner.page()
    page.goto(f"{world.base_url}/sessions/{booking['id']}")
    page.get_by_role("link", name="Cancel it").click()
    expect(page.locator("#refund")).to_have_text(
        f"You get back {PRICE}. At least 24 hours ahead: a full refund."
    )

    # The mentor asks for a week's notice meanwhile (the session is sooner): refused next to the form, the
    # reason typed kept.
    page.get_by_label("Reason").fill("My plans changed")
    assert (
        world.mentor.put(
            "/api/v1/me/mentor-profile", json={"cancel_notice_hours": MAX_NOTICE_HOURS}
        ).status_code
        == 200
    )
    try:
        page.get_by_role("button", name="Cancel the session").click()
        expect(page.locator("#reason-error")).to_contain_text("it is too late now")
        expect(page.get_by_label("Reason")).to_have_value("My plans changed")
        expect(page.locator("#refund")).to_contain_text("it is too late now")
    finally:
        world.mentor.put("/api/v1/me/mentor-profile", json={"cancel_notice_hours": 0})

    page.goto(f"{world.base_url}/sessions/{booking['id']}/cancel")
    expect(page.get_by_label("Reason")).to_have_value("")
    page.get_by_label("Reason").fill("My plans changed")
    page.get_by_role("button", name="Cancel the session").click()
    expect(page).to_have_url(f"{world.base_url}/sessions/{booking['id']}")
    expect(page.get_by_role("status")).to_contain_text(f"Your session is cancelled. Refund: {PRICE}")
    expect(_fact(page, "Status")).to_have_text("Cancelled")
    expect(_fact(page, "Refund")).to_have_text(f"{PRICE} refunded")

    after = world.booking(booking["id"])
    assert (after["status"], after["refund"]) == ("cancelled", {"amount_cents": 8000, "status": "succeeded"})
    refunds = requests.get(
        f"{world.stripe.api_base}/v1/refunds",
        params={"payment_intent": booking["payment"]["payment_intent_id"]},
        headers={"Authorization": f"Bearer {STRIPE_SETTINGS['STRIPE_SECRET_KEY']}"},
        timeout=10,
    ).json()["data"]
    assert [(refund["amount"], refund["status"]) for refund in refunds] == [(8000, "succeeded")]
    page.close()


def test_a_learner_moves_the_session_after_losing_a_time_to_someone_quicker(
    world: World, learner: Watched
) -> None:
    booking = world.book()
    taken, target = world.free_starts.pop(0), world.free_starts.pop(0)
    page = learner.page()
    page.goto(f"{world.base_url}/sessions/{booking['id']}")
    page.get_by_role("link", name="Move it to another time").click()
    expect(page.get_by_role("group")).to_contain_text(
        "A new time for your 60-minute session (America/New_York)"
    )

    page.get_by_role("button", name="Move the session").click()
    expect(page.locator("#start-error")).to_have_text("Error: Please fill in this field.")

    choice = page.locator(f'input[name="start"][value="{_zulu(taken)}"]')
    choice.check()
    world.hold(taken, api=world.other_learner)  # someone quicker takes it meanwhile
    page.get_by_role("button", name="Move the session").click()
    expect(page.locator("#start-error")).to_contain_text("This slot is no longer free.")
    expect(page.locator(f'input[name="start"][value="{_zulu(taken)}"]')).to_have_count(0)

    page.locator(f'input[name="start"][value="{_zulu(target)}"]').check()
    page.get_by_role("button", name="Move the session").click()
    expect(page.get_by_role("status")).to_contain_text("Your session is moved.")
    expect(_fact(page, "When")).to_have_text(_when(target))
    assert _start(world.booking(booking["id"])) == target
    page.close()


def test_a_learner_reviews_a_completed_session(world: World, learner: Watched) -> None:
    booking = world.book()
    world.complete(booking)
    page = learner.page()
    page.goto(f"{world.base_url}/sessions")
    past = page.locator("section", has=page.get_by_role("heading", name="Past and cancelled"))
    past.get_by_role("link", name=f"Maria Alvarez: {_when(_start(booking))}").click()
    expect(_fact(page, "Status")).to_have_text("Completed")
    page.get_by_role("link", name="Review this session").click()

    page.get_by_label("What was helpful?").fill("Clear advice on system design interviews.")
    page.get_by_role("button", name="Send the review").click()
    expect(page.locator("#rating-error")).to_contain_text("Please fill in this field.")
    expect(page.get_by_label("What was helpful?")).to_have_value("Clear advice on system design interviews.")
    page.get_by_label("5: excellent").check()
    page.get_by_role("button", name="Send the review").click()
    expect(page.get_by_role("status")).to_contain_text("Thank you for your review.")
    expect(page.get_by_text("Rated 5 out of 5")).to_be_attached()
    expect(page.get_by_role("link", name="Review this session")).to_have_count(0)
    page.close()


def test_only_the_learner_reaches_a_sessions_pages(world: World) -> None:
    booking = world.book()
    paths = [
        f"/sessions/{booking['id']}{tail}"
        for tail in ("", "/cancel", "/reschedule", "/review", "/calendar.ics")
    ]
    for path in paths:
        assert world.learner.get(path).status_code == 200, path
        for outsider in (world.mentor, world.other_learner):
            assert outsider.get(path).status_code == 404, path
            if path.endswith(("/cancel", "/reschedule", "/review")):
                assert outsider.post(path, data={"start": _zulu(world.free_starts[0])}).status_code == 404
    anonymous = world.app.test_client().get(paths[0])
    assert (anonymous.status_code, anonymous.headers["Location"]) == (303, f"/login?next={paths[0]}")
    assert world.booking(booking["id"])["status"] == "confirmed"


def test_every_sessions_page_passes_axe_and_is_photographed_at_both_widths(
    world: World, learner: Watched
) -> None:
    """axe-core once per page (at desktop width); a photograph at both widths, and no sideways scrolling on a
    phone. Last in the module: no page of any test here asked another host for anything."""
    completed = world.book()
    world.complete(completed)
    confirmed, strict = world.book(), world.book(world.strict_mentor_id)
    page = learner.page()
    pages = (
        ("sessions", "/sessions"),
        ("sessions-bad-zone", "/sessions?tz=Mars/Olympus"),
        ("session", f"/sessions/{confirmed['id']}"),
        ("session-cancel", f"/sessions/{confirmed['id']}/cancel"),
        ("session-cancel-too-late", f"/sessions/{strict['id']}/cancel"),
        ("session-reschedule", f"/sessions/{confirmed['id']}/reschedule"),
        ("session-reschedule-too-late", f"/sessions/{strict['id']}/reschedule"),
        ("session-review", f"/sessions/{completed['id']}/review"),
    )
    problems: list[str] = []
    for name, path in pages:
        problems += check_page(page, world.base_url + path, name, "desktop")
        problems += _at_phone_width(page, name)
    for name, path, button in (
        ("session-reschedule-errors", f"/sessions/{confirmed['id']}/reschedule", "Move the session"),
        ("session-review-errors", f"/sessions/{completed['id']}/review", "Send the review"),
    ):
        page.goto(world.base_url + path)
        page.get_by_role("button", name=button).click()
        expect(page.locator("#error-summary")).to_be_focused()
        problems += [f"{name}: {problem}" for problem in serious_violations(page)]
        photograph(page, f"{name}-desktop")
        problems += _at_phone_width(page, name)

    assert problems == []
    assert learner.elsewhere == []
    assert [error for error in learner.errors if "status of 4" not in error] == []
    page.close()


def _at_phone_width(page: Page, name: str) -> list[str]:
    """The page as a 390-pixel-wide phone shows it: photographed, and whether it scrolls sideways."""
    page.set_viewport_size(PHONE)
    try:
        photograph(page, f"{name}-phone")
        return scrolls_sideways(page, name)
    finally:
        page.set_viewport_size(DESKTOP)
