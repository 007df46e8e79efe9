"""The mentor's pages without a browser: each form's error paths (messages next to the fields, values kept),
and that each action is the API's own (a revision for a submitted profile, the slot preview, a declined or
accepted request, the calendar feed, the payout onboarding link)."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
import time_machine
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from marketplace.accounts.models import Role
from marketplace.bookings.models import Booking, BookingStatus
from marketplace.core.time import utcnow
from marketplace.extensions import db
from marketplace.mentors import service as mentors
from marketplace.mentors.models import MentorProfile
from marketplace.mentors.vetting import VettingAction, VettingStatus
from tests.accounts.sessions import sign_in
from tests.careers.support import load_paths
from tests.factories import BookingFactory, MentorProfileFactory, UserFactory
from tests.helpers import STRIPE_SETTINGS, ApiUser
from tests.pages.forms import field_errors
from tests.pages.html_checks import assert_good_page
from tests.payments.test_approval import request_and_authorize
from tests.support.stripe_client import StripeTestClient

COMPLETE = {
    "headline": "Staff backend engineer",
    "bio": "Ten years of payments systems.",
    "skills": "python, sql",
    "career_paths": "backend-developer",
    "languages": "en, de",
    "years_experience": "10",
    "price": "90",
    "currency": "usd",
    "session_minutes": ["30", "60"],
    "timezone": "Europe/Berlin",
    "cancel_notice_hours": "24",
}
MONDAY_TO_FRIDAY = {
    f"w{day}-0-{part}": value for day in range(5) for part, value in (("start", "09:00"), ("end", "12:00"))
}
SETTINGS = {
    "timezone": "Europe/Berlin",
    "buffer_minutes": "0",
    "min_notice_minutes": "120",
    "horizon_days": "30",
}


def _mentor_signed_in(client: FlaskClient, **profile: object) -> tuple[str, MentorProfile | None]:
    """A mentor account signed in with a cookie (its CSRF token), with a profile when fields are given."""
    user = UserFactory(roles=(Role.MENTOR,), timezone="Europe/Berlin")
    made = MentorProfileFactory(user=user, **profile) if profile else None
    db.session.commit()
    return sign_in(client, user.email), made


def _post(client: FlaskClient, token: str, path: str, data: dict[str, object]) -> TestResponse:
    return client.post(path, data={"csrf_token": token, **data})


def test_only_signed_in_mentors_get_the_pages_and_a_stale_form_is_refused(
    app: Flask, client: FlaskClient
) -> None:
    anonymous = app.test_client().get("/mentor/profile")
    learner = UserFactory(roles=(Role.LEARNER,))
    db.session.commit()
    learner_client = app.test_client()
    sign_in(learner_client, learner.email)

    as_learner = learner_client.get("/mentor/bookings")
    token, _ = _mentor_signed_in(client)
    forged = client.post("/mentor/profile", data={**COMPLETE, "csrf_token": "stale"})

    assert anonymous.status_code == 303
    assert anonymous.headers["Location"] == "/login?next=/mentor/profile"
    assert as_learner.status_code == 403
    assert "These pages are for mentor accounts." in as_learner.get_data(as_text=True)
    assert forged.status_code == 403
    assert "This form has expired" in forged.get_data(as_text=True)
    assert token


def test_profile_errors_sit_next_to_the_fields_and_keep_what_was_typed(client: FlaskClient) -> None:
    load_paths()
    token, _ = _mentor_signed_in(client)

    response = _post(
        client,
        token,
        "/mentor/profile",
        {
            **COMPLETE,
            "price": "ninety",
            "languages": "en, klingon",
            "career_paths": "astronaut",
            "headline": "H" * 161,
        },
    )

    assert response.status_code == 422
    errors = field_errors(response)
    assert "hourly price as a number" in errors["price"]
    assert "Item 2" in errors["languages"]
    assert "Unknown career path: astronaut." in errors["career_paths"]
    assert "160" in errors["headline"]
    html = response.get_data(as_text=True)
    assert 'value="Staff backend engineer"' not in html  # the long headline came back, not a stale one
    assert "Ten years of payments systems." in html
    assert 'value="en, klingon"' in html
    assert 'id="session_minutes-30" name="session_minutes" value="30" checked' in html
    assert client.get("/mentor/profile").get_data(as_text=True).count("Ten years") == 0


def test_a_price_below_the_minimum_is_refused_by_the_service_next_to_the_price(client: FlaskClient) -> None:
    load_paths()
    token, _ = _mentor_signed_in(client)

    response = _post(client, token, "/mentor/profile", {**COMPLETE, "price": "0.10"})

    assert response.status_code == 422
    assert "Stripe's minimum charge" in field_errors(response)["price"]
    assert 'name="price" type="text" required value="0.10"' in response.get_data(as_text=True)


def test_a_draft_is_saved_submitted_when_complete_and_shows_the_reviewers_note(client: FlaskClient) -> None:
    load_paths()
    token, _ = _mentor_signed_in(client)

    draft = _post(client, token, "/mentor/profile", {"headline": "Just started", "timezone": "Europe/Berlin"})
    incomplete = _post(client, token, "/mentor/profile/submit", {})
    saved = _post(client, token, "/mentor/profile", COMPLETE)
    submitted = _post(client, token, "/mentor/profile/submit", {})
    page = client.get("/mentor/profile").get_data(as_text=True)

    assert draft.status_code == 303
    assert incomplete.status_code == 422
    assert field_errors(incomplete)["bio"] == "Error: Required before submission."
    assert field_errors(incomplete)["price"] == "Error: Required before submission."
    assert 'value="Just started"' in incomplete.get_data(as_text=True)
    assert saved.status_code == 303
    assert submitted.status_code == 303
    assert "In review" in page
    assert "Submit for review" not in page
    profile = db.session.query(MentorProfile).one()
    assert profile.vetting_status == VettingStatus.PENDING_REVIEW.value
    assert (profile.price_cents, profile.currency, profile.session_minutes) == (9000, "USD", [30, 60])
    assert profile.cancel_notice_hours == 24

    admin = UserFactory(roles=(Role.ADMIN,))
    mentors.decide(admin, profile.id, VettingAction.REQUEST_CHANGES, "Say which companies you worked for.")
    db.session.commit()
    sent_back = client.get("/mentor/profile").get_data(as_text=True)
    assert "Changes requested" in sent_back
    assert "Say which companies you worked for." in sent_back
    assert "Submit for review" in sent_back


def test_an_approved_profile_s_public_changes_wait_as_a_revision_the_form_keeps_showing(
    client: FlaskClient,
) -> None:
    load_paths()
    token, profile = _mentor_signed_in(client, headline="Old headline")
    assert profile is not None

    response = _post(client, token, "/mentor/profile", {**COMPLETE, "headline": "New headline"})
    page = client.get("/mentor/profile").get_data(as_text=True)

    assert response.status_code == 303
    db.session.refresh(profile)
    assert profile.headline == "Old headline"
    assert profile.pending_revision is not None
    assert profile.pending_revision.changes["headline"] == "New headline"
    assert "Changes waiting for review" in page
    assert 'id="headline" name="headline" type="text" required value="New headline"' in page


def test_weekly_hours_refuse_bad_rows_next_to_them_then_save_and_preview_the_free_slots(
    client: FlaskClient, clock: time_machine.Coordinates
) -> None:
    token, profile = _mentor_signed_in(client, session_minutes=[60])
    assert profile is not None

    bad = _post(
        client,
        token,
        "/mentor/availability",
        {**SETTINGS, "w0-0-start": "09:00", "w0-0-end": "08:00", "w1-0-start": "10:00", "w2-0-end": "11:00"},
    )
    overlap = _post(
        client,
        token,
        "/mentor/availability",
        {**SETTINGS, "w0-0-start": "09:00", "w0-0-end": "12:00", "w0-1-start": "11:00", "w0-1-end": "13:00"},
    )
    saved = _post(client, token, "/mentor/availability", {**SETTINGS, **MONDAY_TO_FRIDAY})
    page = client.get("/mentor/availability").get_data(as_text=True)

    assert bad.status_code == 422
    errors = field_errors(bad)
    assert errors["w0-0-end"] == "Error: End must be after start."
    assert errors["w1-0-end"] == "Error: Fill in both times, or neither."
    assert errors["w2-0-start"] == "Error: Fill in both times, or neither."
    assert '<a href="#w1-0-end">Tuesday 1, to: Fill in both times, or neither.</a>' in bad.get_data(
        as_text=True
    )
    assert 'id="w1-0-start" name="w1-0-start" type="time" value="10:00"' in bad.get_data(as_text=True)
    assert overlap.status_code == 422
    assert "Intervals overlap on Monday" in field_errors(overlap)["weekly"]
    assert saved.status_code == 303
    # Monday 4 January 2027, 07:00 in Berlin with two hours' notice: 09:00 is the first free start.
    assert '<time datetime="2027-01-04T08:00:00Z">09:00</time>' in page
    assert '<time datetime="2027-01-04T10:00:00Z">11:00</time>' in page
    assert "2027-01-04T11:00:00Z" not in page  # a 60-minute session must end by 12:00
    assert "Sun 10 Jan" not in page  # no hours on weekends


def test_a_date_that_differs_is_refused_in_the_past_set_as_a_day_off_and_removed(
    client: FlaskClient, clock: time_machine.Coordinates
) -> None:
    token, _ = _mentor_signed_in(client, session_minutes=[60])
    before = _post(client, token, "/mentor/availability/overrides", {"date": "2027-01-05"})
    _post(client, token, "/mentor/availability", {**SETTINGS, **MONDAY_TO_FRIDAY})

    past = _post(
        client,
        token,
        "/mentor/availability/overrides",
        {"date": "2027-01-01", "o-0-start": "09:00", "o-0-end": "10:00"},
    )
    off = _post(client, token, "/mentor/availability/overrides", {"date": "2027-01-05"})
    with_day_off = client.get("/mentor/availability").get_data(as_text=True)
    removed = _post(client, token, "/mentor/availability/overrides/remove", {"date": "2027-01-05"})
    again = client.get("/mentor/availability").get_data(as_text=True)
    missing = _post(client, token, "/mentor/availability/overrides/remove", {"date": "2027-01-05"})

    assert before.status_code == 404
    assert "Save your weekly hours first" in before.get_data(as_text=True)
    assert past.status_code == 422
    assert field_errors(past)["date"] == "Error: Use 2027-01-04 or later."
    assert 'value="2027-01-01"' in past.get_data(as_text=True)
    assert off.status_code == 303
    assert "day off" in with_day_off
    assert "2027-01-05T08:00:00Z" not in with_day_off  # Tuesday's slots are gone from the preview
    assert removed.status_code == 303
    assert "2027-01-05T08:00:00Z" in again
    assert missing.status_code == 404


def _stripe() -> StripeTestClient:
    return StripeTestClient(STRIPE_SETTINGS["STRIPE_API_BASE"], STRIPE_SETTINGS["STRIPE_SECRET_KEY"])


@pytest.fixture
def awaiting(
    client: FlaskClient,
    mentor: MentorProfile,
    mentor_api: ApiUser,
    learner: ApiUser,
    clock: time_machine.Coordinates,
) -> dict[str, Any]:
    """A request to a mentor who confirms: the learner's card authorized, the mentor signed in by cookie."""
    assert (
        mentor_api.put("/api/v1/me/mentor-profile", json={"requires_confirmation": True}).status_code == 200
    )
    request = request_and_authorize(client, learner, mentor, _stripe())
    return {**request, "csrf_token": sign_in(client, mentor.user.email)}


def test_a_request_shows_its_deadline_and_is_declined_from_the_page(
    client: FlaskClient, awaiting: dict[str, Any]
) -> None:
    token = awaiting["csrf_token"]
    page = client.get("/mentor/bookings").get_data(as_text=True)
    declined = _post(
        client,
        token,
        "/mentor/bookings/answer",
        {"booking_id": awaiting["id"], "answer": "decline", "reason": "Travelling"},
    )
    again = _post(
        client, token, "/mentor/bookings/answer", {"booking_id": awaiting["id"], "answer": "accept"}
    )

    assert "Requests waiting for your answer" in page
    assert "Career advice" in page
    assert "(48 h 0 min left)" in page
    assert declined.status_code == 303
    booking = db.session.get(Booking, awaiting["id"])
    assert booking is not None
    assert (booking.status, booking.cancel_reason) == (BookingStatus.DECLINED.value, "Travelling")
    assert again.status_code == 409
    assert "not waiting for your answer" in again.get_data(as_text=True)


def test_accepting_from_the_page_charges_and_confirms(client: FlaskClient, awaiting: dict[str, Any]) -> None:
    accepted = _post(
        client,
        awaiting["csrf_token"],
        "/mentor/bookings/answer",
        {"booking_id": awaiting["id"], "answer": "accept"},
    )
    page = client.get("/mentor/bookings").get_data(as_text=True)

    assert accepted.status_code == 303
    booking = db.session.get(Booking, awaiting["id"])
    assert booking is not None
    assert booking.status == BookingStatus.CONFIRMED.value
    assert _stripe().intent(awaiting["payment"]["payment_intent_id"])["status"] == "succeeded"
    assert "Upcoming sessions" in page
    assert "No requests to answer." in page
    earnings = client.get("/mentor/earnings").get_data(as_text=True)
    assert "$48.00" in earnings  # the mentor's share of 60 USD after the platform's 20 %


def test_the_calendar_feed_link_is_shown_once_and_rotating_it_kills_the_old_one(
    client: FlaskClient,
) -> None:
    token, _ = _mentor_signed_in(client, session_minutes=[60])

    first = _post(client, token, "/mentor/calendar-feed", {}).get_data(as_text=True)
    second = _post(client, token, "/mentor/calendar-feed", {}).get_data(as_text=True)
    old_url, new_url = (
        re.search(r'class="feed-url"><a href="([^"]+)"', html).group(1) for html in (first, second)
    )  # type: ignore[union-attr]

    assert old_url != new_url
    assert client.get(old_url).status_code == 404
    assert client.get(new_url).status_code == 200
    assert client.get("/mentor/bookings").get_data(as_text=True).count(new_url) == 0


def test_payouts_start_with_a_fresh_onboarding_link_at_stripe(client: FlaskClient) -> None:
    token, _ = _mentor_signed_in(client, session_minutes=[60])

    page = client.get("/mentor/earnings").get_data(as_text=True)
    started = _post(client, token, "/mentor/earnings/payouts", {})
    after = client.get("/mentor/earnings").get_data(as_text=True)

    assert "Not set up yet" in page
    assert started.status_code == 303
    assert started.headers["Location"].startswith(STRIPE_SETTINGS["STRIPE_API_BASE"])
    assert "Started: finish Stripe" in after
    assert "Continue with Stripe" in after


def test_every_mentor_page_is_a_good_page_and_asks_for_a_profile_first(
    client: FlaskClient, clock: time_machine.Coordinates
) -> None:
    token, _ = _mentor_signed_in(client)
    before = {path: client.get(path) for path in ("/mentor/availability", "/mentor/earnings")}
    _post(client, token, "/mentor/profile", {"headline": "Draft", "session_minutes": ["60"]})
    _post(client, token, "/mentor/availability", {**SETTINGS, **MONDAY_TO_FRIDAY})

    for path in ("/mentor/profile", "/mentor/availability", "/mentor/bookings", "/mentor/earnings"):
        html = client.get(path).get_data(as_text=True)
        assert_good_page(html, f"http://localhost{path}")
        assert f'<a href="{path}" aria-current="page">' in html  # the mentoring menu marks the page
    for response in before.values():
        assert response.status_code == 404
        assert "Fill in your mentor profile first" in response.get_data(as_text=True)


def test_an_answer_that_is_neither_or_a_too_long_reason_changes_nothing(client: FlaskClient) -> None:
    token, profile = _mentor_signed_in(client, requires_confirmation=True)
    request = BookingFactory(
        mentor=profile,
        status=BookingStatus.AWAITING_MENTOR.value,
        hold_expires_at=utcnow() + timedelta(hours=5),
    )
    db.session.commit()

    neither = _post(client, token, "/mentor/bookings/answer", {"booking_id": request.id, "answer": "maybe"})
    too_long = _post(
        client,
        token,
        "/mentor/bookings/answer",
        {"booking_id": request.id, "answer": "decline", "reason": "x" * 2001},
    )
    unknown = _post(client, token, "/mentor/bookings/answer", {"booking_id": "first", "answer": "decline"})

    assert neither.status_code == 422
    assert "Choose to accept or decline" in neither.get_data(as_text=True)
    assert too_long.status_code == 422
    assert "2000" in field_errors(too_long)["reason"]
    assert f'value="{"x" * 2001}"' in too_long.get_data(as_text=True)  # what was typed comes back
    assert unknown.status_code == 404
    db.session.refresh(request)
    assert request.status == BookingStatus.AWAITING_MENTOR.value
