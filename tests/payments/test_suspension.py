"""A suspended mentor's unpaid holds end with the suspension; money that still arrives for one goes back."""

from __future__ import annotations

from datetime import timedelta

import time_machine
from flask.testing import FlaskClient
from sqlalchemy import func, select

from marketplace.bookings import state_changes
from marketplace.bookings.service import MENTOR_UNAVAILABLE
from marketplace.extensions import db
from marketplace.mentors.models import MentorProfile
from marketplace.mentors.vetting import VettingStatus
from marketplace.payments.models import EarningEntry, StripeEvent
from tests.factories import MentorProfileFactory, UserFactory
from tests.helpers import ApiUser
from tests.payments.test_webhooks import _booking, _held, _pay, deliver
from tests.support.stripe_client import StripeTestClient


def test_suspending_a_mentor_cancels_their_holds_and_refunds_a_late_payment(
    client: FlaskClient, mentor: MentorProfile, learner: ApiUser, stripe_client: StripeTestClient
) -> None:
    paid_at_stripe = _held(learner, mentor, "2027-01-07T10:00:00+01:00")
    unpaid = _held(learner, mentor, "2027-01-07T14:00:00+01:00")
    paid = _pay(stripe_client, paid_at_stripe)  # its webhook has not arrived yet
    admin = ApiUser(client, UserFactory(roles=("admin",)))

    suspended = admin.post(
        f"/api/v1/admin/mentors/{mentor.id}/vetting", json={"decision": "suspend", "note": "complaints"}
    )

    assert suspended.status_code == 200, suspended.get_data(as_text=True)
    for held in (paid_at_stripe, unpaid):
        booking = _booking(held["id"])
        assert (booking.status, booking.cancel_reason, booking.refund_status) == (
            "cancelled",
            MENTOR_UNAVAILABLE,
            "none",
        )
    assert stripe_client.intent(unpaid["payment"]["payment_intent_id"])["status"] == "canceled"
    assert stripe_client.intent(paid["id"])["status"] == "succeeded"  # too late to cancel: refunded below

    deliver(client, "payment_intent.succeeded", paid, event_id="evt_late")

    booking = _booking(paid_at_stripe["id"])
    assert db.session.get(StripeEvent, "evt_late").outcome == "refunded: slot no longer held"
    assert (booking.status, booking.confirmed_at) == ("cancelled", None)
    assert (booking.refund_amount_cents, booking.refund_status) == (6000, "succeeded")
    refunds = stripe_client.session.get(
        f"{stripe_client.api_base}/v1/refunds", params={"payment_intent": paid["id"]}, timeout=10
    ).json()["data"]
    assert [(r["id"], r["amount"]) for r in refunds] == [(booking.refund_reference, 6000)]
    assert db.session.scalar(select(func.count()).select_from(EarningEntry)) == 0


def test_suspending_one_mentor_leaves_other_mentors_holds_alone(
    client: FlaskClient, mentor: MentorProfile, learner: ApiUser, stripe_client: StripeTestClient
) -> None:
    held = _held(learner, mentor)
    other = MentorProfileFactory()
    admin = ApiUser(client, UserFactory(roles=("admin",)))

    response = admin.post(
        f"/api/v1/admin/mentors/{other.id}/vetting", json={"decision": "suspend", "note": "complaints"}
    )

    assert response.status_code == 200, response.get_data(as_text=True)
    assert _booking(held["id"]).status == "pending_payment"
    assert stripe_client.intent(held["payment"]["payment_intent_id"])["status"] == "requires_payment_method"


def test_a_lapsed_hold_paid_late_is_not_revived_for_a_suspended_mentor(
    client: FlaskClient,
    mentor: MentorProfile,
    learner: ApiUser,
    stripe_client: StripeTestClient,
    clock: time_machine.Coordinates,
) -> None:
    held = _held(learner, mentor)
    paid = _pay(stripe_client, held)
    clock.shift(timedelta(minutes=20))
    assert state_changes.expire_lapsed_holds() == [held["id"]]
    mentor.vetting_status = VettingStatus.SUSPENDED.value
    db.session.commit()

    deliver(client, "payment_intent.succeeded", paid)

    booking = _booking(held["id"])
    assert (booking.status, booking.confirmed_at) == ("expired", None)
    assert (booking.refund_amount_cents, booking.refund_status) == (6000, "succeeded")
