"""The account journey in real headless Chromium, through the pages only, against a live HTTP server; then
the refused sign-up form checked with axe-core at desktop and phone width (every page's own check is
tests/pages/test_every_page.py).

A visitor goes from the home page to a career path to a mentor, signs up (the verification mail arrives at
the SMTP sink and its link verifies), signs out and in, trips over a form error, changes the password,
forgets it, and sets a new one from the mailed link. SQLite only, like tests/pages/test_browser.py: one
server and one browser for the module. Screenshots land in test-artifacts/ (git-ignored).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from flask_migrate import upgrade
from playwright.sync_api import Browser, expect
from werkzeug.serving import make_server

from marketplace.extensions import db
from tests.careers.support import load_paths, make_mentor, tomorrow
from tests.factories import AvailabilityScheduleFactory
from tests.fixtures.mail import bodies
from tests.helpers import temporary_app
from tests.pages.browsing import (
    DESKTOP,
    PHONE,
    VISITOR_ZONE,
    photograph,
    serious_violations,
    sign_in,
    watched_context,
)
from tests.support.servers import HOST, SmtpSink

pytestmark = pytest.mark.slow

LEARNER = "lin@example.test"
FIRST_PASSWORD = "first-password-123"
SECOND_PASSWORD = "second-password-456"
THIRD_PASSWORD = "third-password-789"


@dataclass
class Site:
    base_url: str
    mentor_id: int
    sink: SmtpSink


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, smtp_sink: SmtpSink) -> Iterator[Site]:
    """The career paths and one bookable mentor on a migrated SQLite file, served on 127.0.0.1, mailing
    to the SMTP sink; the mailed links point at this server."""
    database_url = f"sqlite:///{tmp_path_factory.mktemp('journey') / 'site.db'}"
    settings = {
        "MAIL_BACKEND": "smtp",
        "MAIL_SERVER": smtp_sink.host,
        "MAIL_PORT": smtp_sink.port,
        # Three sign-ups in a minute; the limit itself is tested in test_account_pages.py.
        "REGISTER_RATE_LIMIT": "100 per minute",
    }
    with temporary_app(database_url, **settings) as app:
        with app.app_context():
            upgrade()
            load_paths()
            maria = make_mentor(
                "Maria Alvarez",
                chose=("backend-developer",),
                skills=("python", "sql"),
                next_free=tomorrow(),
                headline="Staff backend engineer",
            )
            AvailabilityScheduleFactory(profile=maria)
            db.session.commit()
            mentor_id = maria.id
        server = make_server(HOST, 0, app, threaded=True)
        base_url = f"http://{HOST}:{server.server_port}"
        app.config["PUBLIC_BASE_URL"] = base_url
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield Site(base_url, mentor_id, smtp_sink)
        finally:
            server.shutdown()
            thread.join()


def _mail_link(site: Site, subject: str, count: int) -> str:
    """The link in the `count`-th mail with this subject to the learner, once it has arrived."""
    for _ in range(3):
        mails = [
            mail
            for mail in site.sink.messages
            if mail.rcpt_tos == [LEARNER] and str(mail.message["Subject"]).startswith(subject)
        ]
        if len(mails) >= count:
            text, _html = bodies(mails[count - 1].message)
            match = re.search(r"http://\S+", text)
            assert match is not None, text
            return match.group(0)
        site.sink.wait_for(len(site.sink.messages) + 1)
    pytest.fail(f"no mail {subject!r} number {count} to {LEARNER}")


def test_a_visitor_signs_up_verifies_signs_out_and_in_and_resets_the_password(
    site: Site, browser: Browser
) -> None:
    watched = watched_context(browser, site.base_url, viewport=DESKTOP)
    page = watched.page()
    header = page.get_by_role("banner")

    # From the home page to a career path to a mentor.
    page.goto(f"{site.base_url}/")
    expect(page.get_by_role("heading", level=1)).to_contain_text("mentor")
    page.get_by_role("link", name="Backend Developer", exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Backend Developer")
    page.get_by_role("link", name="Maria Alvarez").click()
    expect(page).to_have_url(f"{site.base_url}/mentors/{site.mentor_id}")

    # Sign up from there: a form error keeps the values and says what is wrong next to the field.
    header.get_by_role("link", name="Sign up").click()
    expect(page.get_by_label("Your time zone")).to_have_value(VISITOR_ZONE)  # filled by forms.js
    page.get_by_label("Your name").fill("Lin Learner")
    page.get_by_label("Email address").fill("lin@")
    page.get_by_label("Password").fill(FIRST_PASSWORD)
    page.get_by_role("button", name="Create account").click()
    expect(page.locator("#error-summary")).to_be_focused()
    expect(page.locator("#email-error")).to_contain_text("valid email")
    expect(page.get_by_label("Email address")).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_label("Your name")).to_have_value("Lin Learner")
    expect(page.get_by_label("Password")).to_have_value("")
    page.locator("#error-summary a").first.click()
    expect(page.get_by_label("Email address")).to_be_focused()
    page.get_by_label("Email address").fill(LEARNER)
    page.get_by_label("Password").fill(FIRST_PASSWORD)
    page.get_by_role("button", name="Create account").click()
    expect(page).to_have_url(f"{site.base_url}/account")
    expect(page.get_by_role("status").first).to_contain_text(f"We sent a link to {LEARNER}")
    expect(page.get_by_text("Please verify your email address.")).to_be_visible()
    expect(header.get_by_role("link", name="Lin Learner")).to_be_visible()

    # The welcome mail's link verifies the address, with one press of a button.
    page.goto(_mail_link(site, "Welcome", 1))
    page.get_by_role("button", name="Verify my email address").click()
    expect(page.get_by_text("your email address is verified")).to_be_visible()
    expect(page.get_by_text(f"{LEARNER} (verified)")).to_be_visible()

    # Sign out, then sign in again from a mentor's page and land back on it.
    header.get_by_role("button", name="Sign out").click()
    expect(page.get_by_text("You are signed out.")).to_be_visible()
    expect(header.get_by_role("button", name="Sign out")).to_have_count(0)
    page.goto(f"{site.base_url}/mentors/{site.mentor_id}")
    header.get_by_role("link", name="Sign in").click()
    sign_in(page, LEARNER, "not-my-password")
    expect(page.locator("#error-summary")).to_contain_text("Invalid email or password.")
    expect(page.get_by_label("Email address")).to_have_value(LEARNER)
    sign_in(page, LEARNER, FIRST_PASSWORD)
    expect(page).to_have_url(f"{site.base_url}/mentors/{site.mentor_id}")
    expect(header.get_by_role("link", name="Lin Learner")).to_be_visible()

    # Change the password: the wrong current one is refused next to its field.
    header.get_by_role("link", name="Lin Learner").click()
    page.get_by_role("link", name="Change your password").click()
    page.get_by_label("Current password").fill("not-my-password")
    page.get_by_label("New password").fill(SECOND_PASSWORD)
    page.get_by_role("button", name="Change password").click()
    expect(page.locator("#current_password-error")).to_contain_text("Wrong password.")
    page.get_by_label("Current password").fill(FIRST_PASSWORD)
    page.get_by_label("New password").fill(SECOND_PASSWORD)
    page.get_by_role("button", name="Change password").click()
    expect(page.get_by_text("Your password is changed.")).to_be_visible()
    header.get_by_role("button", name="Sign out").click()

    # Forgot it: the mailed link's page sets a new one, which then signs in.
    page.goto(f"{site.base_url}/login")
    page.get_by_role("link", name="Forgot your password?").click()
    page.get_by_label("Email address").fill(LEARNER)
    page.get_by_role("button", name="Send me a link").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Check your inbox")
    page.goto(_mail_link(site, "Reset your", 1))
    page.get_by_label("New password").fill(THIRD_PASSWORD)
    page.get_by_role("button", name="Set my new password").click()
    expect(page.get_by_text("Your new password is set.")).to_be_visible()
    sign_in(page, LEARNER, THIRD_PASSWORD)
    expect(page).to_have_url(f"{site.base_url}/")
    expect(header.get_by_role("link", name="Lin Learner")).to_be_visible()

    assert watched.elsewhere == []
    assert page.evaluate("window.__cspViolations") == []
    assert [error for error in watched.errors if "status of 4" not in error] == []
    watched.context.close()


@pytest.mark.parametrize("width", ["desktop", "phone"])
def test_a_refused_sign_up_form_passes_axe_at_both_widths_and_loads_nothing_from_another_host(
    site: Site, browser: Browser, width: str
) -> None:
    """The form's error state, which the walk over every page (test_every_page.py) does not reach."""
    options: dict[str, Any] = (
        {"viewport": DESKTOP}
        if width == "desktop"
        else {"viewport": PHONE, "is_mobile": True, "has_touch": True}
    )
    watched = watched_context(browser, site.base_url, **options)
    page = watched.page()

    page.goto(f"{site.base_url}/signup")
    page.get_by_role("button", name="Create account").click()
    expect(page.locator("#error-summary")).to_be_visible()
    problems = [f"sign-up-errors: {problem}" for problem in serious_violations(page)]
    photograph(page, f"sign-up-errors-{width}")

    assert problems == []
    assert watched.elsewhere == []
    watched.context.close()
