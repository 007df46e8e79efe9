"""Payment events end to end inside one process: real PaymentIntents on the Stripe stand-in, events signed
the way Stripe signs them, processed by the outbox task (run eagerly here; by a worker in production)."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from datetime import timedelta
from typing import Any

import pytest
import time_machine
from flask.testing import FlaskClient
from sqlalchemy import func, select

from marketplace.bookings import state_changes
from marketplace.bookings.models import Booking
from marketplace.extensions import db
from marketplace.mentors.models import MentorProfile
from marketplace.payments import service, tasks
from marketplace.payments.gateway import StripeGateway
from marketplace.payments.models import EarningEntry, StripeEvent
from tests.factories import UserFactory
from tests.fixtures.bookable import NOW, THURSDAY_10, book, deliver
from tests.helpers import WEBHOOK_SECRET, ApiUser, assert_error_shape
from tests.support.servers import free_port
from tests.support.stripe_client import DECLINED_AFTER_ATTACH, StripeTestClient, signed_event


def _held(learner: ApiUser, mentor: MentorProfile, start: str = THURSDAY_10) -> dict[str, Any]:
    response = book(learner, mentor, start)
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.get_json()


def _booking(booking_id: int) -> Booking:
    db.session.expire_all()
    return db.session.get(Booking, booking_id)


def test_a_booking_opens_a_payment_intent_for_its_price(
    mentor: MentorProfile, learner: ApiUser, stripe_client: StripeTestClient
) -> None:
    body = _held(learner, mentor)

    payment = body["payment"]
    assert payment["provider"] == "stripe"
    assert payment["publishable_key"] == "pk_test_marketplace"
    intent = stripe_client.intent(payment["payment_intent_id"])
    assert payment["client_secret"] == intent["client_secret"]
    assert intent["amount"] == 6000
    assert intent["currency"] == "usd"
    assert intent["metadata"]["booking_id"] == str(body["id"])
    assert intent["metadata"]["mentor_id"] == str(mentor.id)


def test_paid_booking_is_confirmed_once_and_credits_the_mentor(
    client: FlaskClient, mentor: MentorProfile, learner: ApiUser, stripe_client: StripeTestClient
) -> None:
    body = _held(learner, mentor)
    intent_id = body["payment"]["payment_intent_id"]
    assert stripe_client.pay(intent_id)["status"] == "succeeded"
    paid = stripe_client.intent(intent_id)

    first = deliver(client, "payment_intent.succeeded", paid, event_id="evt_paid_1")
    repeat = deliver(client, "payment_intent.succeeded", paid, event_id="evt_paid_1")

    assert first.status_code == repeat.status_code == 200
    assert first.get_json() == {"received": True, "duplicate": False}
    assert repeat.get_json() == {"received": True, "duplicate": True}
    assert _booking(body["id"]).status == "confirmed"
    assert db.session.get(StripeEvent, "evt_paid_1").outcome == "confirmed"
    entries = db.session.scalars(select(EarningEntry)).all()
    assert [(e.kind, e.amount_cents) for e in entries] == [("session", 4800)]
    assert learner.get(f"/api/v1/bookings/{body['id']}").get_json()["payment"]["client_secret"] is None


def _unsigned() -> tuple[bytes, dict[str, str]]:
    payload, _header = signed_event("payment_intent.succeeded", {"id": "pi_x"}, WEBHOOK_SECRET)
    return payload, {}


def _wrong_secret() -> tuple[bytes, dict[str, str]]:
    payload, header = signed_event("payment_intent.succeeded", {"id": "pi_x"}, "whsec_someone_else")
    return payload, {"Stripe-Signature": header}


def _stale() -> tuple[bytes, dict[str, str]]:
    ten_minutes_ago = int(time.time()) - 600
    payload, header = signed_event(
        "payment_intent.succeeded", {"id": "pi_x"}, WEBHOOK_SECRET, timestamp=ten_minutes_ago
    )
    return payload, {"Stripe-Signature": header}


def _tampered() -> tuple[bytes, dict[str, str]]:
    payload, header = signed_event("payment_intent.succeeded", {"id": "pi_x"}, WEBHOOK_SECRET)
    return payload.replace(b"pi_x", b"pi_y"), {"Stripe-Signature": header}


def _signed_garbage() -> tuple[bytes, dict[str, str]]:
    now = int(time.time())
    signature = hmac.new(WEBHOOK_SECRET.encode(), f"{now}.not json".encode(), hashlib.sha256).hexdigest()
    return b"not json", {"Stripe-Signature": f"t={now},v1={signature}"}


@pytest.mark.parametrize("forge", [_unsigned, _wrong_secret, _stale, _tampered, _signed_garbage])
def test_bad_or_stale_signatures_are_400_and_store_nothing(client: FlaskClient, forge: Any) -> None:
    payload, headers = forge()

    response = client.post("/webhooks/stripe", data=payload, headers=headers)

    assert_error_shape(response, 400)
    assert db.session.scalar(select(func.count()).select_from(StripeEvent)) == 0


def _pay(stripe_client: StripeTestClient, body: dict[str, Any], card: str | None = None) -> dict[str, Any]:
    intent_id = body["payment"]["payment_intent_id"]
    if card:
        stripe_client.pay(intent_id, card)
    else:
        assert stripe_client.pay(intent_id)["status"] == "succeeded"
    return stripe_client.intent(intent_id)


def test_a_declined_card_keeps_the_hold_and_a_second_card_confirms(
    client: FlaskClient, mentor: MentorProfile, learner: ApiUser, stripe_client: StripeTestClient
) -> None:
    body = _held(learner, mentor)
    declined = _pay(stripe_client, body, DECLINED_AFTER_ATTACH)
    assert declined["status"] == "requires_payment_method"

    deliver(client, "payment_intent.payment_failed", declined)

    failed = learner.get(f"/api/v1/bookings/{body['id']}").get_json()
    assert failed["status"] == "pending_payment"
    assert failed["payment"]["last_error"] == "Your card was declined."
    retried = learner.post(f"/api/v1/bookings/{body['id']}/payment")
    assert retried.status_code == 201, retried.get_data(as_text=True)
    new_payment = retried.get_json()["payment"]
    assert new_payment["payment_intent_id"] != body["payment"]["payment_intent_id"]
    assert stripe_client.intent(body["payment"]["payment_intent_id"])["status"] == "canceled"
    paid = _pay(stripe_client, retried.get_json())
    deliver(client, "payment_intent.canceled", stripe_client.intent(body["payment"]["payment_intent_id"]))
    deliver(client, "payment_intent.succeeded", paid)

    assert _booking(body["id"]).status == "confirmed"


def test_only_the_learner_retries_a_payment_and_only_while_held(
    client: FlaskClient,
    mentor: MentorProfile,
    mentor_api: ApiUser,
    learner: ApiUser,
    other_learner: ApiUser,
    clock: time_machine.Coordinates,
) -> None:
    body = _held(learner, mentor)

    assert_error_shape(mentor_api.post(f"/api/v1/bookings/{body['id']}/payment"), 403)
    assert_error_shape(other_learner.post(f"/api/v1/bookings/{body['id']}/payment"), 404)
    clock.shift(timedelta(minutes=16))
    assert_error_shape(learner.post(f"/api/v1/bookings/{body['id']}/payment"), 409)


def test_a_cancelled_payment_releases_the_hold(
    client: FlaskClient,
    mentor: MentorProfile,
    learner: ApiUser,
    other_learner: ApiUser,
    stripe_client: StripeTestClient,
) -> None:
    body = _held(learner, mentor)
    intent_id = body["payment"]["payment_intent_id"]
    stripe_client._post(f"/v1/payment_intents/{intent_id}/cancel")

    deliver(client, "payment_intent.canceled", stripe_client.intent(intent_id))

    assert _booking(body["id"]).status == "cancelled"
    assert book(other_learner, mentor, THURSDAY_10).status_code == 201


def test_a_late_payment_confirms_when_the_slot_is_still_free(
    client: FlaskClient,
    mentor: MentorProfile,
    learner: ApiUser,
    stripe_client: StripeTestClient,
    clock: time_machine.Coordinates,
) -> None:
    body = _held(learner, mentor)
    paid = _pay(stripe_client, body)
    clock.shift(timedelta(minutes=20))
    assert state_changes.expire_lapsed_holds() == [body["id"]]
    db.session.commit()

    deliver(client, "payment_intent.succeeded", paid)

    assert _booking(body["id"]).status == "confirmed"
    assert db.session.scalar(select(EarningEntry.amount_cents)) == 4800


def test_a_late_payment_for_a_taken_slot_is_refunded_in_full(
    client: FlaskClient,
    mentor: MentorProfile,
    learner: ApiUser,
    other_learner: ApiUser,
    stripe_client: StripeTestClient,
    clock: time_machine.Coordinates,
) -> None:
    body = _held(learner, mentor)
    paid = _pay(stripe_client, body)
    clock.shift(timedelta(minutes=20))
    assert book(other_learner, mentor, THURSDAY_10).status_code == 201

    deliver(client, "payment_intent.succeeded", paid)

    booking = _booking(body["id"])
    assert booking.status == "expired"
    assert booking.refund_amount_cents == 6000
    assert booking.refund_status == "succeeded"
    assert booking.refund_reference.startswith("re_")
    assert db.session.scalar(select(func.count()).select_from(EarningEntry)) == 0


def test_cancelling_48_hours_ahead_refunds_in_full_through_stripe(
    client: FlaskClient, mentor: MentorProfile, learner: ApiUser, stripe_client: StripeTestClient
) -> None:
    body = _held(learner, mentor)
    deliver(client, "payment_intent.succeeded", _pay(stripe_client, body))

    cancelled = learner.post(f"/api/v1/bookings/{body['id']}/cancel", json={"reason": "Sick"})

    assert cancelled.get_json()["refund"] == {"amount_cents": 6000, "status": "pending"}
    booking = _booking(body["id"])
    assert booking.refund_status == "succeeded"
    refunds = stripe_client.session.get(
        f"{stripe_client.api_base}/v1/refunds",
        params={"payment_intent": booking.payment_intent_id},
        timeout=10,
    ).json()["data"]
    assert [(r["id"], r["amount"]) for r in refunds] == [(booking.refund_reference, 6000)]
    ledger = db.session.scalars(select(EarningEntry.amount_cents).order_by(EarningEntry.id)).all()
    assert ledger == [4800, -4800]
    assert learner.get(f"/api/v1/bookings/{body['id']}").get_json()["refund"]["status"] == "succeeded"


def test_refund_and_dispute_events_are_recorded_once(
    client: FlaskClient, mentor: MentorProfile, learner: ApiUser, stripe_client: StripeTestClient
) -> None:
    body = _held(learner, mentor)
    paid = _pay(stripe_client, body)
    deliver(client, "payment_intent.succeeded", paid)
    charge = {"id": "ch_1", "object": "charge", "payment_intent": paid["id"], "amount_refunded": 3000}
    dispute = {"id": "dp_1", "object": "dispute", "payment_intent": paid["id"], "amount": 6000}

    for _ in range(2):
        deliver(client, "charge.refunded", charge)
        deliver(client, "charge.dispute.created", dispute)

    booking = _booking(body["id"])
    assert booking.refund_amount_cents == 3000
    assert booking.refund_status == "succeeded"
    assert booking.disputed_at is not None
    kinds = db.session.execute(
        select(EarningEntry.kind, EarningEntry.amount_cents).order_by(EarningEntry.id)
    ).all()
    # An open dispute holds the money but takes none of it until lost.
    assert [tuple(k) for k in kinds] == [("session", 4800), ("refund_reversal", -2400)]
    assert booking.disputed
    assert booking.dispute_closed_at is None


def test_unknown_events_are_stored_and_acknowledged(client: FlaskClient) -> None:
    response = deliver(client, "customer.created", {"id": "cus_1"}, event_id="evt_unknown")

    assert response.status_code == 200
    assert db.session.get(StripeEvent, "evt_unknown").outcome == "ignored"


def test_reconciliation_confirms_a_paid_booking_whose_webhook_was_lost(
    mentor: MentorProfile, learner: ApiUser, stripe_client: StripeTestClient, clock: time_machine.Coordinates
) -> None:
    paid_body = _held(learner, mentor)
    _pay(stripe_client, paid_body)
    abandoned = _held(learner, mentor, "2027-01-07T13:00:00+01:00")
    clock.shift(timedelta(minutes=18))

    outcomes = service.reconcile_payments()
    db.session.commit()

    assert outcomes == {"confirmed": 1, "expired": 1}
    assert _booking(paid_body["id"]).status == "confirmed"
    assert _booking(abandoned["id"]).status == "expired"
    assert stripe_client.intent(abandoned["payment"]["payment_intent_id"])["status"] == "canceled"
    assert service.reconcile_payments() == {}


def test_booking_answers_503_and_holds_nothing_when_stripe_is_down(
    client: FlaskClient, mentor: MentorProfile, learner: ApiUser
) -> None:
    app = client.application
    working = app.extensions["stripe_request_gateway"]
    app.extensions["stripe_request_gateway"] = StripeGateway(
        "sk_test_x", f"http://127.0.0.1:{free_port()}", timeout=2, max_network_retries=0
    )
    try:
        response = book(learner, mentor, THURSDAY_10)
    finally:
        app.extensions["stripe_request_gateway"] = working

    body = assert_error_shape(response, 503)
    assert "not held" in body["message"]
    assert response.headers["Retry-After"] == "5"
    # The hold was committed before Stripe was called, and withdrawn when it could not be reached.
    assert db.session.scalar(select(func.count()).select_from(Booking)) == 0
    assert book(learner, mentor, THURSDAY_10).status_code == 201


def test_earnings_for_mentors_and_admins(
    client: FlaskClient,
    mentor: MentorProfile,
    mentor_api: ApiUser,
    learner: ApiUser,
    stripe_client: StripeTestClient,
) -> None:
    body = _held(learner, mentor)
    deliver(client, "payment_intent.succeeded", _pay(stripe_client, body))
    admin = ApiUser(client, UserFactory(roles=("admin",)))

    mine = mentor_api.get("/api/v1/me/earnings").get_json()
    report = admin.get("/api/v1/admin/earnings").get_json()

    assert mine["balances"] == [
        {"currency": "USD", "balance_cents": 4800, "unpaid_cents": 4800, "entries": 1}
    ]
    assert [(e["booking_id"], e["kind"], e["amount_cents"]) for e in mine["entries"]] == [
        (body["id"], "session", 4800)
    ]
    assert report == [
        {"mentor_id": mentor.id, "currency": "USD", "balance_cents": 4800, "unpaid_cents": 4800, "entries": 1}
    ]
    assert_error_shape(learner.get("/api/v1/admin/earnings"), 403)
    assert_error_shape(learner.get("/api/v1/me/earnings"), 403)


def test_a_stored_event_no_worker_processed_is_redelivered_by_the_sweep(
    client: FlaskClient,
    mentor: MentorProfile,
    learner: ApiUser,
    stripe_client: StripeTestClient,
    clock: time_machine.Coordinates,
) -> None:
    """As if the broker was down right after the commit: the stored event stays until beat hands it over."""
    body = _held(learner, mentor)
    paid = _pay(stripe_client, body)
    payload, _header = signed_event("payment_intent.succeeded", paid, WEBHOOK_SECRET, event_id="evt_stranded")
    db.session.add(
        StripeEvent(
            id="evt_stranded", type="payment_intent.succeeded", payload=json.loads(payload), received_at=NOW
        )
    )
    db.session.commit()

    assert tasks.redeliver_unprocessed.apply().get() == 0
    clock.shift(timedelta(seconds=30))
    assert tasks.redeliver_unprocessed.apply().get() == 1

    assert db.session.get(StripeEvent, "evt_stranded").outcome == "confirmed"
    assert _booking(body["id"]).status == "confirmed"
    assert tasks.redeliver_unprocessed.apply().get() == 0


def test_an_event_that_fails_in_a_batch_does_not_hold_up_the_others(
    client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    for event_id in ("evt_breaks", "evt_fine"):
        db.session.add(
            StripeEvent(id=event_id, type="customer.created", payload={"id": event_id}, received_at=NOW)
        )
    db.session.commit()
    process = service.process_event

    def breaks_on_one(event_id: str) -> str | None:
        if event_id == "evt_breaks":
            raise RuntimeError("a bug in one handler")
        return process(event_id)

    monkeypatch.setattr(service, "process_event", breaks_on_one)

    assert tasks.process_events.apply(kwargs={"items": ["evt_breaks", "evt_fine"]}).get() == 1
    assert db.session.get(StripeEvent, "evt_fine").outcome == "ignored"
    assert db.session.get(StripeEvent, "evt_breaks").processed_at is None  # left for the redelivery sweep
