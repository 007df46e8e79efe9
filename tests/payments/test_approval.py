"""Mentors who confirm requests: the card is authorized, not charged, until the mentor accepts; a request
declined, withdrawn or left unanswered is never charged (asserted at the Stripe stand-in), and its slot is
held while it waits and free after."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import time_machine
from flask.testing import FlaskClient
from sqlalchemy import select

from marketplace.bookings import tasks as booking_tasks
from marketplace.extensions import db
from marketplace.mentors.models import MentorProfile
from marketplace.payments.gateway import StripeGateway
from marketplace.payments.models import StripeEvent
from tests.fixtures.bookable import NOW, book
from tests.fixtures.mail import bodies, only_to, run_task, with_subject
from tests.helpers import WEBHOOK_SECRET, ApiUser, assert_error_shape
from tests.support.servers import SmtpSink, free_port
from tests.support.stripe_client import StripeTestClient, signed_event

THURSDAY_10 = "2027-01-07T10:00:00+01:00"  # 75 hours after NOW


def deliver(client: FlaskClient, event_type: str, obj: dict[str, Any]) -> None:
    payload, header = signed_event(event_type, obj, WEBHOOK_SECRET)
    response = client.post("/webhooks/stripe", data=payload, headers={"Stripe-Signature": header})
    assert response.status_code == 200, response.get_data(as_text=True)


def charges(stripe_client: StripeTestClient, intent_id: str) -> list[dict[str, Any]]:
    """The intent's charges as the stand-in reports them (one per confirmation of a card)."""
    data: list[dict[str, Any]] = stripe_client.intent(intent_id)["charges"]["data"]
    return data


def captured_cents(stripe_client: StripeTestClient, intent_id: str) -> int:
    return sum(charge["amount"] for charge in charges(stripe_client, intent_id) if charge["captured"])


def request_and_authorize(
    client: FlaskClient, learner: ApiUser, mentor: MentorProfile, stripe_client: StripeTestClient
) -> dict[str, Any]:
    """Book, pay with a card (authorized only), and deliver Stripe's event for the authorization."""
    held = book(learner, mentor, THURSDAY_10)
    assert held.status_code == 201, held.get_data(as_text=True)
    intent_id = held.get_json()["payment"]["payment_intent_id"]
    assert stripe_client.intent(intent_id)["capture_method"] == "manual"
    assert stripe_client.pay(intent_id)["status"] == "requires_capture"
    deliver(client, "payment_intent.amount_capturable_updated", stripe_client.intent(intent_id))
    body = learner.get(f"/api/v1/bookings/{held.get_json()['id']}").get_json()
    assert body["status"] == "awaiting_mentor"
    return body


def test_the_setting_applies_at_once_without_review(
    confirming_mentor: MentorProfile, mentor_api: ApiUser, client: FlaskClient
) -> None:
    public = client.get(f"/api/v1/mentors/{confirming_mentor.id}").get_json()

    assert public["requires_confirmation"] is True
    assert mentor_api.get("/api/v1/me/mentor-profile").get_json()["revision"] is None


def test_an_accepted_request_is_charged_once(
    client: FlaskClient,
    confirming_mentor: MentorProfile,
    mentor_api: ApiUser,
    learner: ApiUser,
    other_learner: ApiUser,
    stripe_client: StripeTestClient,
) -> None:
    body = request_and_authorize(client, learner, confirming_mentor, stripe_client)
    intent_id = body["payment"]["payment_intent_id"]
    assert body["hold_expires_at"] == (NOW + timedelta(hours=48)).isoformat()
    assert captured_cents(stripe_client, intent_id) == 0
    assert book(other_learner, confirming_mentor, THURSDAY_10).status_code == 409

    accepted = mentor_api.post(f"/api/v1/bookings/{body['id']}/accept")
    again = mentor_api.post(f"/api/v1/bookings/{body['id']}/accept")
    deliver(client, "payment_intent.succeeded", stripe_client.intent(intent_id))

    assert accepted.status_code == 200, accepted.get_data(as_text=True)
    assert accepted.get_json()["status"] == "confirmed"
    assert again.status_code == 200
    assert again.get_json()["status"] == "confirmed"
    assert stripe_client.intent(intent_id)["status"] == "succeeded"
    assert captured_cents(stripe_client, intent_id) == 6000
    assert len(charges(stripe_client, intent_id)) == 1
    final = learner.get(f"/api/v1/bookings/{body['id']}").get_json()
    assert final["status"] == "confirmed"
    assert final["refund"] is None


def test_a_declined_request_is_never_charged_and_frees_the_slot(
    client: FlaskClient,
    confirming_mentor: MentorProfile,
    mentor_api: ApiUser,
    learner: ApiUser,
    other_learner: ApiUser,
    stripe_client: StripeTestClient,
) -> None:
    body = request_and_authorize(client, learner, confirming_mentor, stripe_client)
    intent_id = body["payment"]["payment_intent_id"]

    declined = mentor_api.post(f"/api/v1/bookings/{body['id']}/decline", json={"reason": "Fully booked"})

    assert declined.status_code == 200, declined.get_data(as_text=True)
    assert declined.get_json()["status"] == "declined"
    assert declined.get_json()["cancel_reason"] == "Fully booked"
    assert stripe_client.intent(intent_id)["status"] == "canceled"
    assert captured_cents(stripe_client, intent_id) == 0
    assert_error_shape(mentor_api.post(f"/api/v1/bookings/{body['id']}/accept"), 409)
    assert stripe_client.intent(intent_id)["status"] == "canceled"
    assert book(other_learner, confirming_mentor, THURSDAY_10).status_code == 201


def test_an_unanswered_request_expires_uncharged_and_frees_the_slot(
    client: FlaskClient,
    confirming_mentor: MentorProfile,
    mentor_api: ApiUser,
    learner: ApiUser,
    other_learner: ApiUser,
    stripe_client: StripeTestClient,
    clock: time_machine.Coordinates,
) -> None:
    body = request_and_authorize(client, learner, confirming_mentor, stripe_client)
    intent_id = body["payment"]["payment_intent_id"]
    clock.shift(timedelta(hours=47))
    assert booking_tasks.expire_lapsed_holds.apply().get() == 0
    assert book(other_learner, confirming_mentor, THURSDAY_10).status_code == 409

    clock.shift(timedelta(hours=1, seconds=1))
    assert booking_tasks.expire_lapsed_holds.apply().get() == 1

    assert learner.get(f"/api/v1/bookings/{body['id']}").get_json()["status"] == "expired"
    assert stripe_client.intent(intent_id)["status"] == "canceled"
    assert captured_cents(stripe_client, intent_id) == 0
    assert_error_shape(mentor_api.post(f"/api/v1/bookings/{body['id']}/accept"), 409)
    assert book(other_learner, confirming_mentor, THURSDAY_10).status_code == 201


def test_the_deadline_is_never_past_the_start(
    client: FlaskClient,
    confirming_mentor: MentorProfile,
    learner: ApiUser,
    stripe_client: StripeTestClient,
    clock: time_machine.Coordinates,
) -> None:
    clock.shift(timedelta(hours=60))  # Wednesday 18:00 UTC: the session is 15 hours away

    body = request_and_authorize(client, learner, confirming_mentor, stripe_client)

    assert body["hold_expires_at"] == body["start"]


def test_a_withdrawn_request_is_never_charged(
    client: FlaskClient,
    confirming_mentor: MentorProfile,
    learner: ApiUser,
    stripe_client: StripeTestClient,
) -> None:
    body = request_and_authorize(client, learner, confirming_mentor, stripe_client)

    withdrawn = learner.post(f"/api/v1/bookings/{body['id']}/cancel", json={"reason": "Found another"})

    assert withdrawn.get_json()["status"] == "cancelled"
    assert withdrawn.get_json()["refund"] == {"amount_cents": 0, "status": "none"}
    assert stripe_client.intent(body["payment"]["payment_intent_id"])["status"] == "canceled"
    assert captured_cents(stripe_client, body["payment"]["payment_intent_id"]) == 0


def test_only_the_mentor_answers(
    client: FlaskClient,
    confirming_mentor: MentorProfile,
    learner: ApiUser,
    other_learner: ApiUser,
    stripe_client: StripeTestClient,
) -> None:
    body = request_and_authorize(client, learner, confirming_mentor, stripe_client)
    path = f"/api/v1/bookings/{body['id']}"

    assert_error_shape(learner.post(f"{path}/accept"), 403)
    assert_error_shape(learner.post(f"{path}/decline", json={}), 403)
    assert_error_shape(other_learner.post(f"{path}/accept"), 404)
    assert_error_shape(other_learner.post(f"{path}/decline", json={}), 404)
    assert client.post(f"{path}/accept").status_code == 401
    assert learner.get(path).get_json()["status"] == "awaiting_mentor"
    assert captured_cents(stripe_client, body["payment"]["payment_intent_id"]) == 0


def test_a_booking_of_a_mentor_who_does_not_confirm_cannot_be_answered(
    client: FlaskClient, mentor: MentorProfile, mentor_api: ApiUser, learner: ApiUser
) -> None:
    held = book(learner, mentor, THURSDAY_10).get_json()

    assert_error_shape(mentor_api.post(f"/api/v1/bookings/{held['id']}/accept"), 409)
    assert_error_shape(mentor_api.post(f"/api/v1/bookings/{held['id']}/decline", json={}), 409)


def test_the_mentor_is_asked_and_the_learner_told_of_a_decline(
    mailbox: SmtpSink,
    client: FlaskClient,
    confirming_mentor: MentorProfile,
    mentor_api: ApiUser,
    learner: ApiUser,
    stripe_client: StripeTestClient,
) -> None:
    body = request_and_authorize(client, learner, confirming_mentor, stripe_client)
    mentor_api.post(f"/api/v1/bookings/{body['id']}/decline", json={"reason": "Fully booked"})

    mails = mailbox.wait_for(4)  # pay-by (held), the request to both, the decline
    requests = with_subject(mails, "Request:")
    asked = only_to(requests, confirming_mentor.user.email)
    text, _html = bodies(asked.message)
    assert "accept or decline by Wednesday, 6 January 2027, 7:00 AM CET" in " ".join(text.split())
    assert "not charged" in bodies(only_to(requests, learner.user.email).message)[0]
    declined = only_to(with_subject(mails, f"{confirming_mentor.name} declined"), learner.user.email)
    assert "Reason: Fully booked" in bodies(declined.message)[0]


def test_an_expired_request_tells_the_learner_the_card_was_not_charged(
    mailbox: SmtpSink,
    client: FlaskClient,
    confirming_mentor: MentorProfile,
    learner: ApiUser,
    stripe_client: StripeTestClient,
    clock: time_machine.Coordinates,
) -> None:
    request_and_authorize(client, learner, confirming_mentor, stripe_client)
    clock.shift(timedelta(hours=49))
    assert run_task("bookings.expire_lapsed_holds") == 1  # with this app's mail settings

    (expired,) = with_subject(mailbox.wait_for(4), "Your request was not answered in time")
    assert "Your card was not charged" in bodies(expired.message)[0]


def test_an_accept_stripe_did_not_hear_is_finished_by_the_next_even_past_the_deadline(
    client: FlaskClient,
    confirming_mentor: MentorProfile,
    mentor_api: ApiUser,
    learner: ApiUser,
    stripe_client: StripeTestClient,
    clock: time_machine.Coordinates,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    body = request_and_authorize(client, learner, confirming_mentor, stripe_client)
    unreachable = StripeGateway(
        "sk_test_x", f"http://127.0.0.1:{free_port()}", timeout=2, max_network_retries=0
    )
    with monkeypatch.context() as patch:
        patch.setitem(client.application.extensions, "stripe_request_gateway", unreachable)
        failed = mentor_api.post(f"/api/v1/bookings/{body['id']}/accept")
    assert "nothing was charged" in assert_error_shape(failed, 503)["message"]
    clock.shift(timedelta(hours=49))

    assert booking_tasks.expire_lapsed_holds.apply().get() == 0  # accepted: it no longer expires
    finished = mentor_api.post(f"/api/v1/bookings/{body['id']}/accept")

    assert finished.status_code == 200, finished.get_data(as_text=True)
    assert finished.get_json()["status"] == "confirmed"
    assert captured_cents(stripe_client, body["payment"]["payment_intent_id"]) == 6000


def test_a_request_moved_earlier_must_be_answered_before_its_new_start(
    client: FlaskClient,
    confirming_mentor: MentorProfile,
    learner: ApiUser,
    stripe_client: StripeTestClient,
) -> None:
    body = request_and_authorize(client, learner, confirming_mentor, stripe_client)

    moved = learner.post(
        f"/api/v1/bookings/{body['id']}/reschedule", json={"start": "2027-01-05T12:00:00+01:00"}
    )

    assert moved.status_code == 200, moved.get_data(as_text=True)
    assert moved.get_json()["status"] == "awaiting_mentor"
    assert moved.get_json()["hold_expires_at"] == moved.get_json()["start"] == "2027-01-05T11:00:00+00:00"


def test_an_authorization_after_the_hold_lapsed_is_released(
    client: FlaskClient,
    confirming_mentor: MentorProfile,
    learner: ApiUser,
    stripe_client: StripeTestClient,
    clock: time_machine.Coordinates,
) -> None:
    held = book(learner, confirming_mentor, THURSDAY_10).get_json()
    intent_id = held["payment"]["payment_intent_id"]
    assert stripe_client.pay(intent_id)["status"] == "requires_capture"
    authorized = stripe_client.intent(intent_id)
    clock.shift(timedelta(minutes=16))
    assert booking_tasks.expire_lapsed_holds.apply().get() == 1

    deliver(client, "payment_intent.amount_capturable_updated", authorized)  # late

    outcome = db.session.scalar(
        select(StripeEvent.outcome).where(StripeEvent.type == "payment_intent.amount_capturable_updated")
    )
    assert outcome == "released: slot no longer held"
    assert learner.get(f"/api/v1/bookings/{held['id']}").get_json()["status"] == "expired"
    assert stripe_client.intent(intent_id)["status"] == "canceled"
    assert captured_cents(stripe_client, intent_id) == 0
