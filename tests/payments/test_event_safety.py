"""Webhook events that are not ours, malformed, from the future or failing: stored, never acted on wrongly,
never retried forever, never a 500."""

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

from marketplace.bookings.models import Booking
from marketplace.core.outbox import OutboxMessage
from marketplace.extensions import db
from marketplace.mentors.models import MentorProfile
from marketplace.payments import service, tasks
from marketplace.payments.models import EarningEntry, IssuedIntent, StripeEvent
from marketplace.payments.service import events
from tests.factories import UserFactory
from tests.helpers import WEBHOOK_SECRET, ApiUser, assert_error_shape
from tests.payments.test_webhooks import THURSDAY_10, _booking, _held, _pay, deliver
from tests.support.stripe_client import StripeTestClient, signed_event

MARKER = {"marketplace": "mentor-marketplace"}


def _post_signed(client: FlaskClient, event: dict[str, Any], timestamp: int | None = None) -> Any:
    """Any body, signed with the webhook secret the way Stripe signs."""
    signed_at = int(time.time()) if timestamp is None else timestamp
    payload = json.dumps(event).encode()
    digest = hmac.new(WEBHOOK_SECRET.encode(), f"{signed_at}.".encode() + payload, hashlib.sha256).hexdigest()
    return client.post(
        "/webhooks/stripe", data=payload, headers={"Stripe-Signature": f"t={signed_at},v1={digest}"}
    )


def _refunds(stripe_client: StripeTestClient, intent_id: str) -> list[dict[str, Any]]:
    response = stripe_client.session.get(
        f"{stripe_client.api_base}/v1/refunds", params={"payment_intent": intent_id}, timeout=10
    )
    return response.json()["data"]


def _count(model: type[Any]) -> int:
    return db.session.scalar(select(func.count()).select_from(model)) or 0


def _foreign_metadata(booking_id: int) -> dict[str, str]:
    return {
        "no metadata": {},
        "our booking id without our marker": {"booking_id": str(booking_id)},
        "our marker and booking id on an intent we never opened": {**MARKER, "booking_id": str(booking_id)},
        "another deployment's marker": {"marketplace": "staging", "booking_id": str(booking_id)},
    }


@pytest.mark.parametrize("case", list(_foreign_metadata(0)))
def test_a_paid_intent_that_is_not_ours_is_stored_and_ignored(
    client: FlaskClient,
    mentor: MentorProfile,
    learner: ApiUser,
    stripe_client: StripeTestClient,
    case: str,
) -> None:
    """Another product on the same Stripe account: its payment is neither refunded nor touched, and our
    booking (whose id its metadata happens to name) stays as it was."""
    held = _held(learner, mentor)
    metadata = {f"metadata[{key}]": value for key, value in _foreign_metadata(held["id"])[case].items()}
    foreign = stripe_client._post("/v1/payment_intents", {"amount": 1234, "currency": "usd", **metadata})
    assert stripe_client.pay(foreign["id"])["status"] == "succeeded"
    outbox_before, intents_before = _count(OutboxMessage), _count(IssuedIntent)

    for event_type in (
        "payment_intent.succeeded",
        "payment_intent.canceled",
        "payment_intent.payment_failed",
    ):
        response = deliver(
            client, event_type, stripe_client.intent(foreign["id"]), event_id=f"evt_{event_type[15:]}"
        )
        assert response.status_code == 200
    charge = {
        "id": "ch_foreign",
        "object": "charge",
        "payment_intent": foreign["id"],
        "amount_refunded": 1234,
    }
    deliver(client, "charge.refunded", charge, event_id="evt_charge")
    deliver(
        client,
        "charge.dispute.created",
        {"id": "dp_foreign", "payment_intent": foreign["id"]},
        event_id="evt_dp",
    )

    outcomes = db.session.scalars(select(StripeEvent.outcome)).all()
    assert outcomes == ["ignored: not ours"] * 5
    assert _refunds(stripe_client, foreign["id"]) == []
    assert stripe_client.intent(foreign["id"])["status"] == "succeeded"
    booking = _booking(held["id"])
    assert (booking.status, booking.payment_intent_id) == (
        "pending_payment",
        held["payment"]["payment_intent_id"],
    )
    assert (booking.refund_status, booking.disputed_at, booking.last_payment_error) == ("none", None, None)
    assert (_count(OutboxMessage), _count(IssuedIntent), _count(EarningEntry)) == (
        outbox_before,
        intents_before,
        0,
    )


def test_our_payment_intents_carry_the_deployment_marker_and_are_recorded(
    mentor: MentorProfile, learner: ApiUser, stripe_client: StripeTestClient
) -> None:
    held = _held(learner, mentor)
    intent_id = held["payment"]["payment_intent_id"]

    assert stripe_client.intent(intent_id)["metadata"] == {
        **MARKER,
        "booking_id": str(held["id"]),
        "mentor_id": str(mentor.id),
        "learner_id": str(learner.user.id),
        "description": f"Mentoring session #{held['id']}, 60 min",
    }
    assert db.session.get(IssuedIntent, intent_id).booking_id == held["id"]


def test_a_replaced_intent_is_still_recognised_as_ours(
    client: FlaskClient, mentor: MentorProfile, learner: ApiUser, stripe_client: StripeTestClient
) -> None:
    """The booking points back at its earlier intents too: their events are ours, though out of date."""
    held = _held(learner, mentor)
    first = held["payment"]["payment_intent_id"]
    retried = learner.post(f"/api/v1/bookings/{held['id']}/payment")
    assert retried.status_code == 201, retried.get_data(as_text=True)

    deliver(client, "payment_intent.canceled", stripe_client.intent(first), event_id="evt_replaced")

    assert db.session.get(StripeEvent, "evt_replaced").outcome == "ignored: not the current intent"
    assert db.session.scalars(select(IssuedIntent.booking_id).order_by(IssuedIntent.created_at)).all() == [
        held["id"],
        held["id"],
    ]
    assert _booking(held["id"]).status == "pending_payment"


def _event(event_id: str, event_type: str, data: Any) -> dict[str, Any]:
    return {"id": event_id, "object": "event", "type": event_type, "created": int(time.time()), "data": data}


def _intent(metadata: Any, intent_id: str = "pi_malformed") -> dict[str, Any]:
    return {"object": {"id": intent_id, "object": "payment_intent", "amount": 100, "metadata": metadata}}


MALFORMED = {
    "data null": None,
    "data a list": [],
    "object null": {"object": None},
    "metadata a string": _intent("booking_id=1"),
    "booking_id out of range": _intent({**MARKER, "booking_id": "99999999999999999999"}),
    "booking_id past the integer column": _intent({**MARKER, "booking_id": "2147483648"}),
    "booking_id not an integer": _intent({**MARKER, "booking_id": "1.5"}),
    "booking_id not a string": _intent({**MARKER, "booking_id": [1]}),
    "intent id too long": _intent({**MARKER, "booking_id": "1"}, "pi_" + "x" * 300),
    "intent id with a NUL": _intent({**MARKER, "booking_id": "1"}, "pi_\u0000"),
}


@pytest.mark.parametrize("data", list(MALFORMED.values()), ids=list(MALFORMED))
def test_malformed_events_are_ignored_once_not_retried(
    client: FlaskClient, clock: time_machine.Coordinates, data: Any
) -> None:
    response = _post_signed(client, _event("evt_malformed", "payment_intent.succeeded", data))

    assert response.status_code == 200
    event = db.session.get(StripeEvent, "evt_malformed")
    assert event.outcome.startswith("ignored")
    assert (event.attempts, event.parked_at) == (0, None)
    clock.shift(timedelta(hours=1))
    assert tasks.redeliver_unprocessed.apply().get() == 0


def test_a_charge_event_with_a_malformed_intent_is_ignored(client: FlaskClient) -> None:
    data = {"object": {"id": "ch_1", "payment_intent": {"id": "pi_1"}, "amount_refunded": "all"}}

    assert _post_signed(client, _event("evt_charge", "charge.refunded", data)).status_code == 200

    assert db.session.get(StripeEvent, "evt_charge").outcome == "ignored: not ours"


def _future(seconds: int) -> tuple[bytes, dict[str, str]]:
    payload, header = signed_event(
        "payment_intent.succeeded", {"id": "pi_x"}, WEBHOOK_SECRET, timestamp=int(time.time()) + seconds
    )
    return payload, {"Stripe-Signature": header}


def test_a_signature_dated_beyond_the_tolerance_in_the_future_is_400(client: FlaskClient) -> None:
    payload, headers = _future(600)

    body = assert_error_shape(client.post("/webhooks/stripe", data=payload, headers=headers), 400)

    assert "future" in body["message"]
    assert _count(StripeEvent) == 0


def test_a_signature_a_little_ahead_of_our_clock_is_accepted(client: FlaskClient) -> None:
    payload, headers = _future(60)

    assert client.post("/webhooks/stripe", data=payload, headers=headers).status_code == 200


BAD_IDS = {
    "over 255 characters": ("evt_" + "a" * 300, "customer.created"),
    "empty": ("", "customer.created"),
    "a NUL byte": ("evt_\u0000", "customer.created"),
    "a lone surrogate": ("evt_\ud800", "customer.created"),
    "not ASCII": ("evt_é", "customer.created"),
    "a type over 100 characters": ("evt_1", "customer." + "x" * 100),
    "a type with a NUL byte": ("evt_1", "customer.\u0000"),
}


@pytest.mark.parametrize(("event_id", "event_type"), list(BAD_IDS.values()), ids=list(BAD_IDS))
def test_malformed_event_ids_and_types_are_400(client: FlaskClient, event_id: str, event_type: str) -> None:
    response = _post_signed(client, _event(event_id, event_type, {"object": {"id": "cus_1"}}))

    assert_error_shape(response, 400)
    assert _count(StripeEvent) == 0


# --- failing events --------------------------------------------------------------------------------


def _admin(client: FlaskClient) -> ApiUser:
    return ApiUser(client, UserFactory(roles=("admin",)))


def test_a_poison_event_is_parked_after_the_maximum_attempts_listed_and_replayed(
    client: FlaskClient,
    mentor: MentorProfile,
    learner: ApiUser,
    stripe_client: StripeTestClient,
    clock: time_machine.Coordinates,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    held = _held(learner, mentor)
    paid = _pay(stripe_client, held)

    def broken(_obj: dict[str, Any]) -> str:
        raise RuntimeError("a bug in the handler")

    monkeypatch.setitem(events._HANDLERS, "payment_intent.succeeded", broken)
    deliver(client, "payment_intent.succeeded", paid, event_id="evt_poison")  # the first attempt, at intake
    event = db.session.get(StripeEvent, "evt_poison")
    assert (event.attempts, event.parked_at) == (1, None)
    assert "RuntimeError: a bug in the handler" in event.last_error

    # The sweep waits out a backoff that doubles: 1, 2, 4 and 8 minutes after the failures.
    sweeps = []
    for minutes in (0.5, 0.6, 2, 4, 8, 60):
        clock.shift(timedelta(minutes=minutes))
        sweeps.append(tasks.redeliver_unprocessed.apply().get())
    assert sweeps == [0, 1, 1, 1, 1, 0]
    db.session.expire_all()
    event = db.session.get(StripeEvent, "evt_poison")
    assert (event.attempts, event.processed_at) == (5, None)
    assert event.parked_at is not None

    admin = _admin(client)
    listed = admin.get("/api/v1/admin/payment-events?state=failed&page_size=10")
    assert listed.status_code == 200
    (item,) = listed.get_json()
    assert item["id"] == "evt_poison"
    assert item["object_id"] == paid["id"]
    assert (item["state"], item["attempts"], item["processed_at"]) == ("failed", 5, None)
    assert "payload" not in item  # it holds the learner's client secret
    assert json.loads(listed.headers["X-Pagination"])["total"] == 1
    assert admin.get("/api/v1/admin/payment-events?state=pending").get_json() == []
    assert_error_shape(learner.get("/api/v1/admin/payment-events?state=failed"), 403)
    assert_error_shape(admin.get("/api/v1/admin/payment-events?state=lost"), 422)

    monkeypatch.undo()  # the bug is fixed; the admin replays the event
    assert_error_shape(learner.post("/api/v1/admin/payment-events/evt_poison/replay"), 403)
    replayed = admin.post("/api/v1/admin/payment-events/evt_poison/replay")

    assert replayed.status_code == 200, replayed.get_data(as_text=True)
    assert (replayed.get_json()["attempts"], replayed.get_json()["parked_at"]) == (0, None)
    event = db.session.get(StripeEvent, "evt_poison")
    db.session.refresh(event)
    assert (event.outcome, event.parked_at) == ("confirmed", None)
    assert _booking(held["id"]).status == "confirmed"
    assert admin.get("/api/v1/admin/payment-events?state=failed").get_json() == []
    assert [e["id"] for e in admin.get("/api/v1/admin/payment-events?state=processed").get_json()] == [
        "evt_poison"
    ]
    assert_error_shape(admin.post("/api/v1/admin/payment-events/evt_poison/replay"), 409)


@pytest.mark.parametrize("event_id", ["evt_unknown", "evt_" + "a" * 300, "evt%00"])
def test_replaying_an_unknown_event_is_404(client: FlaskClient, event_id: str) -> None:
    assert_error_shape(_admin(client).post(f"/api/v1/admin/payment-events/{event_id}/replay"), 404)


def test_a_failure_recorded_for_a_processed_or_parked_event_changes_nothing(client: FlaskClient) -> None:
    deliver(client, "customer.created", {"id": "cus_1"}, event_id="evt_done")

    assert service.record_failure("evt_done", "late failure report") is False
    assert service.record_failure("evt_never_stored", "no such event") is False
    assert db.session.get(StripeEvent, "evt_done").attempts == 0


def test_a_booking_paid_for_on_a_mentor_suspended_meanwhile_is_refunded(
    client: FlaskClient, mentor: MentorProfile, learner: ApiUser, stripe_client: StripeTestClient
) -> None:
    """Even if a hold escaped the suspension's cancellation, the payment cannot confirm it."""
    held = _held(learner, mentor, THURSDAY_10)
    paid = _pay(stripe_client, held)
    mentor.vetting_status = "suspended"
    db.session.commit()

    deliver(client, "payment_intent.succeeded", paid)

    booking = _booking(held["id"])
    assert (booking.status, booking.refund_status, booking.refund_amount_cents) == (
        "cancelled",
        "succeeded",
        6000,
    )
    assert [r["amount"] for r in _refunds(stripe_client, paid["id"])] == [6000]
    assert _count(EarningEntry) == 0
    assert db.session.scalar(select(Booking.confirmed_at).where(Booking.id == held["id"])) is None
