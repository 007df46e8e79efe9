"""Booking and paying through the pages in real headless Chromium: a live HTTP server, a real Celery worker,
and the Stripe stand-in serving its Stripe.js copy (STRIPE_JS_URL) and sending its signed webhooks.

A visitor goes from the home page to a career path to a mentor, picks a time, signs up on the way, pays with
4242 4242 4242 4242 in the Stripe.js card form and sees the booking confirmed once the worker has handled the
webhook, finds it under "My sessions" and downloads its calendar file; then a card the bank declines
(4000 0000 0000 0341), and a good one. Every booking page is checked
with axe-core, photographed at desktop and phone width (test-artifacts/), and watched for requests to any
host but the site and STRIPE_JS_URL's origin, which only the checkout page may reach.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from flask_migrate import upgrade
from icalendar import Calendar
from playwright.sync_api import Browser, Page, Route, expect
from werkzeug.serving import make_server

from marketplace.extensions import db
from tests.careers.support import load_paths, make_mentor, tomorrow
from tests.factories import AvailabilityScheduleFactory
from tests.helpers import STRIPE_TEST_SETTINGS, WEBHOOK_SECRET, temporary_app
from tests.pages.browsing import (
    DESKTOP,
    MAX_PAGE_BYTES,
    PHONE,
    SIDEWAYS,
    VISITOR_ZONE,
    Watched,
    photograph,
    serious_violations,
    watched_context,
)
from tests.support.servers import HOST, localstripe_server
from tests.support.stripe_client import DECLINED_AFTER_ATTACH, VISA
from tests.support.workers import start_worker

pytestmark = pytest.mark.slow

MENTOR_ZONE = "Asia/Tokyo"  # the profile's zone; the availability is in Berlin
PASSWORD = "booking-password-123"
SETTLED = 30_000  # ms: the webhook, the worker and the page's next look at the booking


@dataclass
class Shop:
    base_url: str
    mentor_id: int
    stripe_js_url: str
    stripe_origin: str
    asking_mentor_id: int  # confirms each request: paying only authorizes the card


@dataclass
class WatchedWithStripe:
    """The shared watched context (only the site may be reached), with Stripe.js's origin let through too:
    each request to it is recorded with the page that made it."""

    watched: Watched
    to_stripe: list[tuple[str, str]] = field(default_factory=list)


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shop]:
    """A bookable mentor on a migrated SQLite file served on 127.0.0.1, with the embedded broker, a worker of
    every queue and the stand-in (whose webhook points at this server) as the whole payment system."""
    directory: Path = tmp_path_factory.mktemp("checkout")
    database_url = f"sqlite:///{directory / 'site.db'}"
    broker_url = f"sqla+sqlite:///{directory / 'broker.db'}"
    with localstripe_server() as stand_in:
        stripe = {
            **STRIPE_TEST_SETTINGS,
            "STRIPE_API_BASE": stand_in.api_base,
            "STRIPE_JS_URL": f"{stand_in.api_base}/js.stripe.com/v3/",
        }
        settings = {**stripe, "CELERY_BROKER_URL": broker_url, "CELERY_TASK_ALWAYS_EAGER": False}
        with temporary_app(database_url, REGISTER_RATE_LIMIT="100 per minute", **settings) as app:
            with app.app_context():
                upgrade()
                load_paths()
                maria = make_mentor(
                    "Maria Alvarez",
                    chose=("backend-developer",),
                    next_free=tomorrow(),
                    price_cents=9000,
                    headline="Staff backend engineer",
                    cancel_notice_hours=12,
                    timezone=MENTOR_ZONE,
                )
                AvailabilityScheduleFactory(profile=maria)
                asking = make_mentor("Rui Requests", price_cents=5000, requires_confirmation=True)
                AvailabilityScheduleFactory(profile=asking)
                db.session.commit()
                mentor_id, asking_id = maria.id, asking.id
            server = make_server(HOST, 0, app, threaded=True)
            base_url = f"http://{HOST}:{server.server_port}"
            thread = threading.Thread(target=server.serve_forever, daemon=True)
            thread.start()
            stand_in.register_webhook("marketplace", f"{base_url}/webhooks/stripe", WEBHOOK_SECRET)
            worker_env = {"DATABASE_URL": database_url, "CELERY_BROKER_URL": broker_url, **stripe}
            worker = start_worker("checkout", directory, worker_env)
            try:
                yield Shop(base_url, mentor_id, stripe["STRIPE_JS_URL"], stand_in.api_base, asking_id)
            finally:
                worker.kill()  # nothing left to finish: its graceful stop would only cost seconds
                server.shutdown()
                thread.join()


def _watched(browser: Browser, shop: Shop, **options: Any) -> WatchedWithStripe:
    result = WatchedWithStripe(watched_context(browser, shop.base_url, **options))

    def _stripe_js_origin(route: Route) -> None:
        result.to_stripe.append((route.request.frame.url, route.request.url))
        route.continue_()

    # Registered last, so it is asked first for the stand-in's URLs; the rest is watched_context's routing.
    result.watched.context.route(f"{shop.stripe_origin}/**", _stripe_js_origin)
    return result


def _sign_up(page: Page, name: str, email: str) -> None:
    expect(page.get_by_label("Your time zone")).to_have_value(VISITOR_ZONE)
    page.get_by_label("Your name").fill(name)
    page.get_by_label("Email address").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Create account").click()


def _hold(page: Page, topic: str) -> None:
    """On the booking page: the topic, then the hold; lands on checkout."""
    page.get_by_label("What would you like to talk about?").fill(topic)
    page.get_by_role("button", name="Hold this time and pay").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Pay for your session")


def _pay(page: Page, card: str) -> None:
    page.get_by_label("Card number").fill(card)
    page.get_by_label("Expiry date (MM / YY)").fill("12 / 34")
    page.get_by_label("Security code (CVC)").fill("123")
    page.get_by_role("button", name="Pay $").click()


def _first_free_time(page: Page, shop: Shop, mentor_id: int | None = None) -> None:
    """From the mentor's page, the first free time, to the booking page (signed in)."""
    page.goto(f"{shop.base_url}/mentors/{mentor_id or shop.mentor_id}")
    page.locator("#slot-days a.slot").first.click()
    expect(page.locator("a.slot[aria-current=true]")).to_have_count(1)
    page.locator("a.slot[aria-current=true]").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("About your session")


def _finished_cleanly(result: WatchedWithStripe, page: Page, shop: Shop) -> None:
    watched = result.watched
    assert watched.elsewhere == []
    assert page.evaluate("window.__cspViolations") == []
    assert [error for error in watched.errors if "status of 4" not in error] == []
    watched.context.close()
    assert result.to_stripe, "Stripe.js was never loaded"
    # Only the checkout page reaches Stripe.js's origin: for the script, and for the card's confirmations.
    assert {frame.split("?")[0].rsplit("/", 1)[-1] for frame, _url in result.to_stripe} == {"checkout"}
    assert {url for _frame, url in result.to_stripe} - {shop.stripe_js_url} == {
        url for _frame, url in result.to_stripe if "/_config/browser/payment_intents/" in url
    }


def test_a_visitor_books_signs_up_pays_and_after_a_declined_card_pays_with_another_every_page_checked(
    shop: Shop, browser: Browser
) -> None:
    watched = _watched(browser, shop, viewport=DESKTOP)
    page = watched.watched.page()
    base = shop.base_url

    # From the home page to a career path to the mentor, and one of the free times.
    page.goto(f"{base}/")
    page.get_by_role("link", name="Backend Developer", exact=True).click()
    page.get_by_role("link", name="Maria Alvarez").click()
    expect(page).to_have_url(f"{base}/mentors/{shop.mentor_id}")
    page.locator("#slot-days a.slot").first.click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Book a session with Maria Alvarez")
    expect(page.locator("#times + p")).to_contain_text(f"Times are shown in {VISITOR_ZONE}")
    problems = _checked_here(page, "book-pick-time")
    chosen = page.locator("a.slot[aria-current=true]")
    when = chosen.get_attribute("data-start")
    chosen.click()

    # Not signed in: to sign in, on to sign up, and back to the same choice.
    expect(page).to_have_url(f"{base}/login?next=" + page.url.split("next=", 1)[1])
    page.get_by_role("link", name="Create an account").click()
    _sign_up(page, "Bo Booker", "bo@example.test")
    expect(page.get_by_role("heading", level=1)).to_have_text("About your session")
    expect(page.locator(f"time[datetime='{when}']")).to_be_visible()
    expect(page.get_by_text(f"your time ({VISITOR_ZONE})")).to_be_visible()
    expect(page.get_by_text(f"({MENTOR_ZONE})")).to_be_visible()
    expect(page.get_by_text("$90.00")).to_be_visible()
    expect(page.get_by_text("This mentor asks for 12 hours' notice")).to_be_visible()
    problems += _checked_here(page, "book-details", axe=False)  # axe: with the errors below

    # The topic is required: said next to the field, and the summary takes the focus.
    page.get_by_role("button", name="Hold this time and pay").click()
    expect(page.locator("#error-summary")).to_be_focused()
    expect(page.locator("#topic-error")).to_contain_text("Please fill in this field.")
    problems += _checked_here(page, "book-details-errors")
    _hold(page, "Moving from PHP to Python services")
    problems += _checked_here(page, "checkout", axe=False)  # axe: after the decline below

    # Pay with the test card in the Stripe.js form; the webhook, through the worker, confirms it.
    expect(page.locator("#card-hint")).to_contain_text("4242 4242 4242 4242")
    _pay(page, VISA)
    expect(page.get_by_role("heading", level=1)).to_have_text("Your session is booked", timeout=SETTLED)
    expect(page.get_by_role("link", name="Add it to your calendar")).to_be_visible()
    problems += _checked_here(page, "booking-status-confirmed")

    # The session is under "My sessions", and its calendar file holds the time that was picked.
    page.get_by_role("banner").get_by_role("link", name="My sessions").click()
    page.get_by_role("link", name="Maria Alvarez:").click()
    expect(page.get_by_text("Moving from PHP to Python services")).to_be_visible()
    with page.expect_download() as download:
        page.get_by_role("link", name="Download the calendar file (.ics)").click()
    (event,) = Calendar.from_ical(download.value.path().read_bytes()).walk("VEVENT")
    assert event.decoded("dtstart") == datetime.fromisoformat(when or "")
    assert str(event["status"]) == "CONFIRMED"

    # The next free time, a declined card, then a good one.
    _first_free_time(page, shop)
    expect(page.locator(f"time[datetime='{when}']")).to_have_count(0)  # the first one is taken now
    _hold(page, "Preparing a system design interview")
    page.goto(page.url.replace("/checkout", "/status"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Confirming your payment")
    problems += _checked_here(page, "booking-status-pending", axe=False)  # axe: when confirmed
    page.get_by_role("link", name="Back to the payment").click()
    _pay(page, DECLINED_AFTER_ATTACH)
    expect(page.locator("#payment-message")).to_have_text("Your card was declined.")
    expect(page.locator("#try-again")).to_contain_text("Try another card: this time stays held for you until")
    problems += _checked_here(page, "checkout-declined")
    _pay(page, VISA)
    expect(page.get_by_role("heading", level=1)).to_have_text("Your session is booked", timeout=SETTLED)

    # A mentor who confirms each request: the card is authorized, and the page says until when they answer.
    _first_free_time(page, shop, shop.asking_mentor_id)
    expect(page.get_by_text("Rui Requests confirms each request")).to_be_visible()
    _hold(page, "A request")
    _pay(page, VISA)
    expect(page.get_by_role("heading", level=1)).to_have_text("Awaiting the mentor", timeout=SETTLED)
    expect(page.get_by_text("Your card is authorized, not charged. Rui Requests has until")).to_be_visible()

    assert problems == []
    _finished_cleanly(watched, page, shop)


WIDTHS = {"desktop": DESKTOP, "phone": PHONE}
# What the page itself weighs, from the browser's own account: the document and this site's CSS and scripts.
SITE_BYTES = """
[performance.getEntriesByType("navigation")[0], ...performance.getEntriesByType("resource")]
  .filter(entry => entry.name.startsWith(location.origin))
  .reduce((sum, entry) => sum + entry.decodedBodySize, 0)
"""


def _checked_here(page: Page, name: str, axe: bool = True) -> list[str]:
    """The page as the journey left it, at desktop and at phone width (without opening it again, which would
    lose its state): axe-core (0 serious or critical), the CSP, the weight, no sideways scrolling on a phone;
    a full-page screenshot of each."""
    problems = [f"{name}: CSP {violation}" for violation in page.evaluate("window.__cspViolations")]
    weight = page.evaluate(SITE_BYTES)
    if weight > MAX_PAGE_BYTES:
        problems.append(f"{name}: {weight} bytes")
    for width, viewport in WIDTHS.items():
        page.set_viewport_size(viewport)
        if axe:
            problems += [f"{name} ({width}): {problem}" for problem in serious_violations(page)]
        overflow = page.evaluate(SIDEWAYS)
        if overflow > 0:
            problems.append(f"{name} ({width}): scrolls sideways by {overflow}px")
        photograph(page, f"{name}-{width}")
    page.set_viewport_size(DESKTOP)
    return problems
