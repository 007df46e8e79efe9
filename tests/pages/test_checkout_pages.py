"""The booking pages without a browser: the hold form refuses what `POST /api/v1/bookings` refuses, with the
message next to the time or the field and the topic kept; strangers are sent to sign in; only checkout may
load Stripe.js (its CSP names STRIPE_JS_URL's origin); the status page says where a booking is."""

from __future__ import annotations

import re
from datetime import timedelta
from html import unescape
from urllib.parse import quote

from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from marketplace.bookings.models import Booking, BookingStatus
from marketplace.core.time import utcnow
from marketplace.extensions import db
from marketplace.mentors.models import MentorProfile
from tests.core.test_hardening import _policy
from tests.factories import BookingFactory
from tests.fixtures.bookable import hold
from tests.helpers import ApiUser
from tests.pages.forms import field_errors, post_form, sign_in_with_form

TAKEN = "2027-01-05T10:00:00+01:00"  # Tuesday 10:00 in Berlin: a slot of the fixture's mentor
TOO_SOON = "2027-01-04T08:30:00+01:00"  # the clock says 07:00 in Berlin; the mentor wants two hours' notice
STRIPE_ORIGIN = "https://js.stripe.com"


def _book(
    client: FlaskClient, mentor: MentorProfile, start: str, topic: str = "Career advice", **more: str
) -> TestResponse:
    form = {"mentor_id": str(mentor.id), "start": start, "duration_minutes": "60", "topic": topic, **more}
    chosen = f"/book?mentor_id={mentor.id}&start={quote(start)}&duration_minutes=60"
    return post_form(client, "/book", form, token_from=chosen)


def _text(response: TestResponse) -> str:
    return unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", response.get_data(as_text=True))))


def test_the_hold_form_refuses_what_the_api_refuses_next_to_the_time_and_keeps_the_topic(
    client: FlaskClient, mentor: MentorProfile, learner: ApiUser, other_learner: ApiUser
) -> None:
    hold(other_learner, mentor, TAKEN)
    sign_in_with_form(client, learner.user.email)

    taken = _book(client, mentor, TAKEN, topic="Kept as typed")
    assert taken.status_code == 409
    assert field_errors(taken) == {"start": "Error: This slot is no longer free."}
    assert ">Kept as typed</textarea>" in taken.get_data(as_text=True)

    too_soon = _book(client, mentor, TOO_SOON)
    assert too_soon.status_code == 422
    assert field_errors(too_soon) == {"start": "Error: This time is sooner than the mentor's minimum notice."}

    no_topic = _book(client, mentor, "2027-01-05T12:00:00+01:00", topic="")
    assert no_topic.status_code == 422
    assert field_errors(no_topic) == {"topic": "Error: Please fill in this field."}
    assert db.session.query(Booking).filter_by(learner_id=learner.user.id).count() == 0

    held = _book(client, mentor, "2027-01-05T12:00:00+01:00")
    assert held.status_code == 303
    booking = db.session.query(Booking).filter_by(learner_id=learner.user.id).one()
    assert held.headers["Location"] == f"/bookings/{booking.id}/checkout"
    assert (booking.status, booking.price_cents, booking.topic) == ("pending_payment", 6000, "Career advice")

    checkout = client.get(held.headers["Location"])
    assert checkout.status_code == 200
    page = checkout.get_data(as_text=True)
    assert f'data-client-secret="{booking.payment_client_secret}"' in page
    assert f'<script src="{STRIPE_ORIGIN}/v3/" defer></script>' in page
    policy = _policy(checkout.headers["Content-Security-Policy"])
    assert policy["script-src"] == ["'self'", STRIPE_ORIGIN]
    assert policy["frame-src"] == [STRIPE_ORIGIN]
    assert policy["connect-src"] == ["'self'", STRIPE_ORIGIN]
    assert "'unsafe-inline'" not in checkout.headers["Content-Security-Policy"]

    for elsewhere in (f"/mentors/{mentor.id}/book", f"/bookings/{booking.id}/status"):
        assert _policy(client.get(elsewhere).headers["Content-Security-Policy"])["script-src"] == ["'self'"]


def test_strangers_are_sent_to_sign_in_and_come_back_to_the_same_choice(
    client: FlaskClient, mentor: MentorProfile, learner: ApiUser
) -> None:
    chosen = f"/book?mentor_id={mentor.id}&start={quote(TAKEN)}&duration_minutes=60"
    response = client.get(chosen)
    assert response.status_code == 303
    assert response.headers["Location"] == "/login?next=" + quote(chosen, safe="/?")

    booking = BookingFactory(mentor=mentor, learner=learner.user, status=BookingStatus.PENDING_PAYMENT.value)
    db.session.commit()
    for page in ("checkout", "status"):
        stranger = client.get(f"/bookings/{booking.id}/{page}")
        assert stranger.status_code == 401
        assert f'href="/login?next=/bookings/{booking.id}/{page}"' in stranger.get_data(as_text=True)


def test_the_status_page_says_where_the_booking_is_in_the_learners_zone(
    client: FlaskClient, mentor: MentorProfile, learner: ApiUser
) -> None:
    start = utcnow() + timedelta(days=3)
    awaiting = BookingFactory(
        mentor=mentor,
        learner=learner.user,
        status=BookingStatus.AWAITING_MENTOR.value,
        start_at=start,
        hold_expires_at=utcnow() + timedelta(hours=48),  # Wednesday 06:00 UTC: 01:00 in New York
    )
    declined_card = BookingFactory(
        mentor=mentor,
        learner=learner.user,
        status=BookingStatus.PENDING_PAYMENT.value,
        start_at=start + timedelta(days=1),
        hold_expires_at=utcnow() + timedelta(minutes=10),
        last_payment_error="Your card was declined.",
    )
    paid = BookingFactory(mentor=mentor, learner=learner.user, start_at=start + timedelta(days=2))
    db.session.commit()
    sign_in_with_form(client, learner.user.email)

    text = _text(client.get(f"/bookings/{awaiting.id}/status"))
    assert "Awaiting the mentor" in text
    assert "has until Wed 6 Jan, 01:00 (America/New_York) to accept" in text

    text = _text(client.get(f"/bookings/{declined_card.id}/status"))
    assert (
        "Your card was declined. Try another card: this time stays held for you until 01:10 (10 minutes left)"
        in text
    )
    assert f'href="/bookings/{declined_card.id}/checkout"' in client.get(
        f"/bookings/{declined_card.id}/status"
    ).get_data(as_text=True)

    settled = client.get(f"/bookings/{paid.id}/checkout")
    assert (settled.status_code, settled.headers["Location"]) == (303, f"/bookings/{paid.id}/status")
    assert "Your session is booked" in _text(client.get(settled.headers["Location"]))
