"""Every page of the site, in real headless Chromium, signed in as the role it is for: axe-core finds no
serious or critical violation; nothing is requested from another host (STRIPE_JS_URL's aside); headings go
in order from one h1; every form field has a label; the page weighs under 150 KB before images (Stripe.js
aside); it fits a 390-px phone without scrolling sideways. Each is photographed at desktop and phone width
under test-artifacts/screenshots/. Then the API docs, offline, authorize with a bearer token.

A new page is one line in `PAGES`: the role that opens it and its path, with `{name}` for an id of the
world below (`World.ids`). One server, one browser, one context per role for the whole module.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any
from urllib.parse import urlsplit

import pytest
from flask_migrate import upgrade
from playwright.sync_api import Browser, BrowserContext, Page, Request, expect
from werkzeug.serving import make_server

from marketplace.accounts.models import Role
from marketplace.accounts.service import issue_token
from marketplace.core.outbox import OutboxMessage
from marketplace.core.time import utcnow
from marketplace.extensions import db
from marketplace.mentors.vetting import VettingStatus
from marketplace.notifications.models import EmailStatus, SentEmail
from tests.careers.support import load_paths, make_mentor, tomorrow
from tests.factories import PASSWORD, AvailabilityScheduleFactory, BookingFactory, UserFactory
from tests.helpers import temporary_app
from tests.pages.browsing import (
    ARTIFACTS,
    DESKTOP,
    MAX_PAGE_BYTES,
    PHONE,
    SIDEWAYS,
    VISITOR_ZONE,
    serious_violations,
    sign_in,
)
from tests.support.servers import HOST

pytestmark = pytest.mark.slow(seconds=75)

SCREENSHOTS = ARTIFACTS / "screenshots"
ANONYMOUS, LEARNER, MENTOR, ADMIN = "anonymous", "learner", "mentor", "admin"

# (role, path): every page of the site, as the role it is for opens it. Append new pages here.
PAGES: list[tuple[str, str]] = [
    (ANONYMOUS, "/"),
    (ANONYMOUS, "/careers"),
    (ANONYMOUS, "/careers/backend-developer"),
    (ANONYMOUS, "/mentors"),
    (ANONYMOUS, "/mentors/{mentor_id}"),
    (ANONYMOUS, "/signup"),
    (ANONYMOUS, "/login"),
    (ANONYMOUS, "/forgot-password"),
    (ANONYMOUS, "/reset-password?token=dead"),
    (ANONYMOUS, "/verify-email?token=dead"),
    (ANONYMOUS, "/careers/no-such-path"),
    (LEARNER, "/"),
    (LEARNER, "/account"),
    (LEARNER, "/account/password"),
    (MENTOR, "/account"),
    (ANONYMOUS, "/mentors/{mentor_id}/book"),
    (LEARNER, "/sessions"),
    (LEARNER, "/sessions/{booking_id}"),
    (LEARNER, "/sessions/{booking_id}/cancel"),
    (LEARNER, "/sessions/{booking_id}/reschedule"),
    (LEARNER, "/bookings/{booking_id}/status"),
    (MENTOR, "/mentor/profile"),
    (MENTOR, "/mentor/availability"),
    (MENTOR, "/mentor/bookings"),
    (MENTOR, "/mentor/earnings"),
    (ADMIN, "/admin"),
    (ADMIN, "/admin/vetting"),
    (ADMIN, "/admin/vetting/{pending_mentor_id}"),
    (ADMIN, "/admin/bookings"),
    (ADMIN, "/admin/bookings?disputed=true"),
    (ADMIN, "/admin/bookings/{booking_id}"),
    (ADMIN, "/admin/outbox"),
    (ADMIN, "/admin/emails"),
    (ADMIN, "/admin/payment-events"),
]

HEADINGS = "[...document.querySelectorAll('h1, h2, h3, h4, h5, h6')].map(h => Number(h.tagName[1]))"
UNLABELLED = """[...document.querySelectorAll('input, select, textarea')]
  .filter(el => !['hidden', 'submit', 'button', 'reset'].includes(el.type))
  .filter(el => el.labels.length === 0 && !el.getAttribute('aria-label') && !el.getAttribute('aria-labelledby'))
  .map(el => el.outerHTML.slice(0, 120))"""


@dataclass
class World:
    base_url: str
    allowed_origins: frozenset[str]
    ids: dict[str, int]
    emails: dict[str, str]
    learner_token: str


@dataclass
class Visitor:
    """One role's browser context; what it requested elsewhere and what each page load fetched."""

    context: BrowserContext
    page: Page
    elsewhere: list[str] = field(default_factory=list)
    fetched: list[Request] = field(default_factory=list)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """Career paths, an approved mentor with free times, a mentor waiting for vetting, a learner, an admin,
    a paid booking under dispute, and a parked outbox row and a failed mail, on a migrated SQLite file."""
    database_url = f"sqlite:///{tmp_path_factory.mktemp('every-page') / 'site.db'}"
    with temporary_app(database_url) as app:
        with app.app_context():
            upgrade()
            load_paths()
            maria = make_mentor(
                "Maria Alvarez", chose=("backend-developer",), next_free=tomorrow(), headline="Staff engineer"
            )
            AvailabilityScheduleFactory(profile=maria)
            pending = make_mentor("Pat Pending", status=VettingStatus.PENDING_REVIEW, headline="New here")
            learner = UserFactory(roles=(Role.LEARNER,), name="Lin Learner")
            admin = UserFactory(roles=(Role.ADMIN,), name="Ada Admin")
            booking = BookingFactory(
                mentor=maria,
                learner=learner,
                confirmed_at=utcnow(),
                payment_intent_id="pi_every_page",
                report_dispute_at=utcnow(),
            )
            db.session.add(
                OutboxMessage(
                    task="mentors.refresh_next_available", payload={"profile_id": 1}, parked_at=utcnow()
                )
            )
            db.session.add(
                SentEmail(
                    kind="booking_confirmed",
                    object_id=booking.id,
                    recipient=learner.email,
                    status=EmailStatus.FAILED.value,
                    last_error="550 mailbox unavailable",
                )
            )
            db.session.commit()
            token = issue_token(learner)
            db.session.commit()
            ids = {"mentor_id": maria.id, "pending_mentor_id": pending.id, "booking_id": booking.id}
            emails = {LEARNER: learner.email, MENTOR: maria.user.email, ADMIN: admin.email}
        server = make_server(HOST, 0, app, threaded=True)
        base_url = f"http://{HOST}:{server.server_port}"
        stripe_js = app.config.get("STRIPE_JS_URL")
        allowed = {base_url, *([_origin(stripe_js)] if stripe_js else [])}
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield World(base_url, frozenset(allowed), ids, emails, token)
        finally:
            server.shutdown()
            thread.join()


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


@pytest.fixture(scope="module")
def visitors(browser: Browser, world: World) -> Iterator[dict[str, Visitor]]:
    """A context per role, each signed in through the sign-in page."""
    made: dict[str, Visitor] = {}
    for role in (ANONYMOUS, LEARNER, MENTOR, ADMIN):
        context = browser.new_context(viewport=DESKTOP, timezone_id=VISITOR_ZONE, locale="en-GB")
        visitor = Visitor(context, context.new_page())

        def _only_allowed(route: Any, visitor: Visitor = visitor) -> None:
            if _origin(route.request.url) in world.allowed_origins:
                route.continue_()
            else:
                visitor.elsewhere.append(route.request.url)
                route.abort()

        context.route("**/*", _only_allowed)
        visitor.page.on("requestfinished", lambda request, v=visitor: v.fetched.append(request))
        if role != ANONYMOUS:
            visitor.page.goto(f"{world.base_url}/login")
            sign_in(visitor.page, world.emails[role], PASSWORD)
            expect(visitor.page.get_by_role("button", name="Sign out")).to_be_visible()
        made[role] = visitor
    yield made
    for visitor in made.values():
        visitor.context.close()


def _weight(fetched: list[Request], allowed_extra: frozenset[str]) -> int:
    """Bytes transferred for the page, its styles and scripts: images and Stripe.js aside."""
    total = 0
    for request in fetched:
        if request.resource_type == "image" or _origin(request.url) in allowed_extra:
            continue
        sizes = request.sizes()
        total += sizes["responseBodySize"] + sizes["responseHeadersSize"]
    return total


def _problems(visitor: Visitor, world: World, path: str) -> list[str]:
    page = visitor.page
    visitor.fetched.clear()
    response = page.goto(world.base_url + path)
    assert response is not None
    page.wait_for_load_state("load")
    problems = [f"axe {problem}" for problem in serious_violations(page)]
    levels = page.evaluate(HEADINGS)
    if not levels or levels[0] != 1 or levels.count(1) != 1:
        problems.append(f"headings do not start with one h1: {levels}")
    skipped = [(a, b) for a, b in pairwise(levels) if b > a + 1]
    if skipped:
        problems.append(f"heading levels skipped: {skipped} in {levels}")
    problems += [f"unlabelled field {html}" for html in page.evaluate(UNLABELLED)]
    weight = _weight(visitor.fetched, world.allowed_origins - {world.base_url})
    if weight > MAX_PAGE_BYTES:
        problems.append(f"{weight} bytes before images")
    return problems


def _shot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


@pytest.mark.parametrize(("role", "path"), PAGES, ids=[f"{role} {path}" for role, path in PAGES])
def test_the_page_is_accessible_light_self_contained_and_fits_a_phone(
    visitors: dict[str, Visitor], world: World, role: str, path: str
) -> None:
    visitor = visitors[role]
    concrete = path.format(**world.ids)
    name = f"{role}-{re.sub(r'[^a-z0-9]+', '-', path.lower()).strip('-') or 'home'}"

    problems = _problems(visitor, world, concrete)
    _shot(visitor.page, f"{name}-desktop")
    visitor.page.set_viewport_size(PHONE)
    try:
        sideways = visitor.page.evaluate(SIDEWAYS)
        _shot(visitor.page, f"{name}-phone")
    finally:
        visitor.page.set_viewport_size(DESKTOP)

    assert problems == []
    assert sideways <= 0, f"scrolls sideways by {sideways}px at 390 px"
    assert visitor.elsewhere == []


def test_the_api_docs_work_offline_and_authorize_with_a_bearer_token(
    visitors: dict[str, Visitor], world: World
) -> None:
    """Signed out (no cookie), so the call below can only be authenticated by the token typed in."""
    visitor = visitors[ANONYMOUS]
    page = visitor.page
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{world.base_url}/api/docs")

    page.locator(".auth-wrapper button.authorize").click()
    scheme = page.locator(".auth-container").filter(has=page.locator("h4", has_text="bearerAuth"))
    scheme.locator("input").fill(world.learner_token)
    scheme.locator("button.authorize").click()
    expect(page.get_by_role("heading", name="Authorized", exact=True)).to_be_visible()
    page.locator("button.close-modal").click()
    operation = page.locator(
        "#operations-accounts-get_api_v1_me, .opblock-get:has([data-path='/api/v1/me'])"
    ).first
    operation.locator(".opblock-summary").first.click()
    operation.get_by_role("button", name="Try it out").click()
    operation.get_by_role("button", name="Execute").click()

    expect(operation.locator(".live-responses-table tbody .response-col_status").first).to_have_text("200")
    expect(operation.locator(".live-responses-table .microlight").first).to_contain_text(
        world.emails[LEARNER]
    )
    assert errors == []
    assert visitor.elsewhere == []
