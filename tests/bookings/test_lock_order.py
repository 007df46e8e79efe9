"""Every path that locks rows keeps the one lock order (bookings/models.py), checked statement by statement.

A booking's life runs through the API, the payment work and the sweeps while `recorded_lock_order` watches
every statement on PostgreSQL (SQLite has no row locks: its writers are serialized whole). A path that took a
learner's, a mentor's or a booking's row out of order, or with a plain `FOR UPDATE`, is named in the failure.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from flask.testing import FlaskClient
from sqlalchemy import select, update

from marketplace.bookings import state_changes
from marketplace.bookings import tasks as booking_tasks
from marketplace.bookings.models import Booking
from marketplace.extensions import db
from marketplace.mentors.models import MentorProfile
from marketplace.payments import service as payments
from tests.factories import UserFactory
from tests.fixtures.bookable import hold, pay_and_confirm, set_availability
from tests.helpers import WEBHOOK_SECRET, ApiUser
from tests.support.lock_order import recorded_lock_order
from tests.support.stripe_client import StripeTestClient, signed_event

pytestmark = pytest.mark.postgres_only


def test_a_bookings_life_takes_its_locks_in_one_order(
    backend: str,
    client: FlaskClient,
    mentor: MentorProfile,
    mentor_api: ApiUser,
    learner: ApiUser,
    stripe_client: StripeTestClient,
    clock: time_machine.Coordinates,
) -> None:
    admin = ApiUser(client, UserFactory(roles=("admin",)))
    with recorded_lock_order(db.session.connection()) as order:
        paid = hold(learner, mentor, "2027-01-07T10:00:00+01:00")
        retried = learner.post(f"/api/v1/bookings/{paid['id']}/payment")
        assert retried.status_code == 201, retried.get_data(as_text=True)
        pay_and_confirm(client, stripe_client, retried.get_json()["payment"]["payment_intent_id"])
        moved = learner.post(
            f"/api/v1/bookings/{paid['id']}/reschedule", json={"start": "2027-01-08T10:00:00+01:00"}
        )
        assert moved.status_code == 200, moved.get_data(as_text=True)

        refunded = hold(learner, mentor, "2027-01-11T10:00:00+01:00")
        pay_and_confirm(client, stripe_client, str(refunded["payment"]["payment_intent_id"]))  # type: ignore[index]
        assert learner.post(f"/api/v1/bookings/{refunded['id']}/cancel", json={}).status_code == 200

        dropped = hold(learner, mentor, "2027-01-12T10:00:00+01:00")
        assert learner.post(f"/api/v1/bookings/{dropped['id']}/cancel", json={}).status_code == 200

        lapsed = hold(learner, mentor, "2027-01-13T10:00:00+01:00")
        clock.shift(timedelta(minutes=20))
        assert booking_tasks.expire_lapsed_holds() == 1
        assert payments.reconcile_payments() == {"expired": 1}
        assert db.session.get(Booking, lapsed["id"]).status == "expired"

        clock.move_to(datetime(2027, 1, 9, 14, 0, tzinfo=UTC))  # a day after the session's end
        assert booking_tasks.complete_finished() == 1
        review = learner.post(f"/api/v1/bookings/{paid['id']}/review", json={"rating": 5})
        assert review.status_code == 201, review.get_data(as_text=True)

        absent = hold(learner, mentor, "2027-01-11T14:00:00+01:00")
        pay_and_confirm(client, stripe_client, str(absent["payment"]["payment_intent_id"]))  # type: ignore[index]
        clock.move_to(datetime(2027, 1, 11, 13, 30, tzinfo=UTC))
        reported = learner.post(f"/api/v1/bookings/{absent['id']}/no-show", json={"who": "mentor"})
        assert reported.status_code == 200, reported.get_data(as_text=True)
        assert db.session.get(Booking, absent["id"]).refund_status == "succeeded"

        held = hold(learner, mentor, "2027-01-14T10:00:00+01:00")
        set_availability(mentor_api, buffer_minutes=30)
        suspended = admin.post(
            f"/api/v1/admin/mentors/{mentor.id}/vetting", json={"decision": "suspend", "note": "complaints"}
        )
        assert suspended.status_code == 200, suspended.get_data(as_text=True)
        assert db.session.get(Booking, held["id"]).status == "cancelled"

    assert order.violations == []
    # The recorder saw what it checks: the hold's mentor, then learner, and the payment's mentor, then booking.
    assert ["mentor_profiles", "users"] in [locked[:2] for locked in order.seen]
    assert any(locked[:3] == ["stripe_events", "mentor_profiles", "bookings"] for locked in order.seen)


def test_the_recorder_names_a_path_that_locks_out_of_order(
    backend: str, mentor: MentorProfile, learner: ApiUser
) -> None:
    booking = hold(learner, mentor, "2027-01-07T10:00:00+01:00")
    with recorded_lock_order(db.session.connection()) as order:
        db.session.execute(update(Booking).where(Booking.id == booking["id"]).values(topic="Out of order"))
        state_changes.lock_mentor_calendar(mentor.id)
        db.session.scalar(select(MentorProfile.id).where(MentorProfile.id == mentor.id).with_for_update())
        db.session.commit()

    assert len(order.violations) == 2
    assert order.violations[0].startswith("mentor_profiles locked after ['bookings']")
    assert order.violations[1].startswith("FOR UPDATE on mentor_profiles")


def _authorized(client: FlaskClient, stripe_client: StripeTestClient, held: dict[str, object]) -> None:
    """The learner's card authorized for a mentor who confirms requests, and Stripe's event for it."""
    intent_id = str(held["payment"]["payment_intent_id"])  # type: ignore[index]
    stripe_client.pay(intent_id)
    payload, header = signed_event(
        "payment_intent.amount_capturable_updated", stripe_client.intent(intent_id), WEBHOOK_SECRET
    )
    assert (
        client.post("/webhooks/stripe", data=payload, headers={"Stripe-Signature": header}).status_code == 200
    )


def test_a_requests_life_takes_its_locks_in_one_order(
    backend: str,
    client: FlaskClient,
    mentor: MentorProfile,
    mentor_api: ApiUser,
    learner: ApiUser,
    stripe_client: StripeTestClient,
    clock: time_machine.Coordinates,
) -> None:
    """Mentors who confirm requests: authorization, accept (capture), decline and expiry."""
    assert (
        mentor_api.put("/api/v1/me/mentor-profile", json={"requires_confirmation": True}).status_code == 200
    )
    with recorded_lock_order(db.session.connection()) as order:
        answered = {}
        for start, answer in (
            ("2027-01-07T10:00:00+01:00", "accept"),
            ("2027-01-08T10:00:00+01:00", "decline"),
        ):
            held = hold(learner, mentor, start)
            _authorized(client, stripe_client, held)
            response = mentor_api.post(f"/api/v1/bookings/{held['id']}/{answer}", json={})
            assert response.status_code == 200, response.get_data(as_text=True)
            answered[answer] = response.get_json()["status"]
        lapsed = hold(learner, mentor, "2027-01-11T10:00:00+01:00")
        _authorized(client, stripe_client, lapsed)
        clock.shift(timedelta(hours=49))
        assert booking_tasks.expire_lapsed_holds() == 1

    assert answered == {"accept": "confirmed", "decline": "declined"}
    assert db.session.get(Booking, lapsed["id"]).status == "expired"
    assert order.violations == []
