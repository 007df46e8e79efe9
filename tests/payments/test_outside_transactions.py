"""Stripe is never called inside a transaction, and sweeps take one item per unit.

A hold commits before its PaymentIntent is made; refunds, cancellations of released intents, retried
payments and reconciliation read first, call Stripe with no transaction open, then apply the answer in a
short unit of their own. Each sweep's item is a unit of its own: one that fails leaves the others done.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
import time_machine
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from marketplace.bookings import state_changes
from marketplace.bookings import tasks as booking_tasks
from marketplace.bookings.models import Booking, BookingStatus
from marketplace.core.idempotency import IdempotencyKey
from marketplace.extensions import db
from marketplace.mentors.models import MentorProfile
from marketplace.payments import service
from marketplace.payments.gateway import StripeGateway
from tests.factories import BookingFactory, MentorProfileFactory, UserFactory
from tests.fixtures.bookable import book, hold, pay_and_confirm, set_availability
from tests.helpers import ApiUser, assert_error_shape
from tests.support.servers import free_port
from tests.support.stripe_client import StripeTestClient

THURSDAY_10 = "2027-01-07T10:00:00+01:00"
FRIDAY_10 = "2027-01-08T10:00:00+01:00"
GATEWAY_CALLS = ("create_intent", "retrieve_intent", "cancel_intent", "refund")


@pytest.fixture
def stripe_calls(app: Flask, monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, bool]]:
    """Every call either gateway makes, with whether the calling session had a transaction open."""
    calls: list[tuple[str, bool]] = []

    def spying(name: str, call: Callable[..., Any]) -> Callable[..., Any]:
        def spy(*args: Any, **kwargs: Any) -> Any:
            calls.append((name, db.session().in_transaction()))
            return call(*args, **kwargs)

        return spy

    for gateway_name in ("stripe_gateway", "stripe_request_gateway"):
        gateway = app.extensions[gateway_name]
        for method in GATEWAY_CALLS:
            monkeypatch.setattr(gateway, method, spying(method, getattr(gateway, method)))
    return calls


def test_no_stripe_call_is_made_inside_a_transaction(
    client: FlaskClient,
    mentor: MentorProfile,
    learner: ApiUser,
    stripe_client: StripeTestClient,
    stripe_calls: list[tuple[str, bool]],
    clock: time_machine.Coordinates,
) -> None:
    paid = hold(learner, mentor, THURSDAY_10)
    retried = learner.post(f"/api/v1/bookings/{paid['id']}/payment")
    assert retried.status_code == 201, retried.get_data(as_text=True)
    pay_and_confirm(client, stripe_client, retried.get_json()["payment"]["payment_intent_id"])
    assert learner.post(f"/api/v1/bookings/{paid['id']}/cancel", json={}).status_code == 200  # refunded
    dropped = hold(learner, mentor, FRIDAY_10)
    assert learner.post(f"/api/v1/bookings/{dropped['id']}/cancel", json={}).status_code == 200
    hold(learner, mentor, "2027-01-11T10:00:00+01:00")
    clock.shift(timedelta(minutes=20))
    assert service.reconcile_payments() == {"expired": 1}

    assert {name for name, _ in stripe_calls} == set(GATEWAY_CALLS)
    assert [call for call in stripe_calls if call[1]] == []
    assert db.session.get(Booking, paid["id"]).refund_status == "succeeded"


def test_a_hold_whose_intent_cannot_be_made_is_withdrawn_and_its_key_released(
    client: FlaskClient, mentor: MentorProfile, learner: ApiUser
) -> None:
    app = client.application
    working = app.extensions["stripe_request_gateway"]
    app.extensions["stripe_request_gateway"] = StripeGateway(
        "sk_test_x", f"http://127.0.0.1:{free_port()}", timeout=2, max_network_retries=0
    )
    try:
        response = book(learner, mentor, THURSDAY_10, headers={"Idempotency-Key": "try-1"})
    finally:
        app.extensions["stripe_request_gateway"] = working

    assert_error_shape(response, 503)
    assert db.session.scalars(select(Booking)).all() == []
    assert db.session.scalars(select(IdempotencyKey)).all() == []  # the key is free for the retry
    again = book(learner, mentor, THURSDAY_10, headers={"Idempotency-Key": "try-1"})
    assert again.status_code == 201
    assert "Idempotent-Replayed" not in again.headers


def test_reconciliation_withdraws_holds_a_crash_left_without_an_intent(
    mentor: MentorProfile, learner: ApiUser, clock: time_machine.Coordinates
) -> None:
    orphan = BookingFactory(mentor=mentor, learner=learner.user, status=BookingStatus.PENDING_PAYMENT.value)
    db.session.commit()
    fresh = hold(learner, mentor, THURSDAY_10)
    clock.shift(service.RECONCILE_GRACE + timedelta(seconds=1))
    recent = BookingFactory(
        mentor=mentor,
        learner=learner.user,
        status=BookingStatus.PENDING_PAYMENT.value,
        start_at=orphan.start_at + timedelta(days=1),
    )
    db.session.commit()
    orphan_id, recent_id = orphan.id, recent.id

    assert service.reconcile_payments() == {"withdrawn": 1}
    db.session.expire_all()
    assert db.session.get(Booking, orphan_id) is None
    assert db.session.get(Booking, recent_id) is not None  # its request may still be waiting for Stripe
    assert db.session.get(Booking, fresh["id"]).payment_intent_id  # one with its intent is left alone


def test_one_failing_booking_does_not_stop_reconciliation_of_the_others(
    app: Flask,
    mentor: MentorProfile,
    learner: ApiUser,
    clock: time_machine.Coordinates,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first = hold(learner, mentor, THURSDAY_10)
    second = hold(learner, mentor, FRIDAY_10)
    clock.shift(timedelta(minutes=20))
    gateway = app.extensions["stripe_gateway"]
    retrieve = gateway.retrieve_intent

    def failing_for_the_first(intent_id: str) -> Any:
        if intent_id == first["payment"]["payment_intent_id"]:
            raise RuntimeError("Stripe answered nonsense")
        return retrieve(intent_id)

    monkeypatch.setattr(gateway, "retrieve_intent", failing_for_the_first)

    assert service.reconcile_payments() == {"failed": 1, "expired": 1}
    db.session.expire_all()
    assert db.session.get(Booking, second["id"]).status == "expired"
    assert db.session.get(Booking, first["id"]).payment_reconciled_at is None  # tried again next run


def test_one_failing_mentor_does_not_stop_the_expiry_sweep_for_the_others(
    client: FlaskClient,
    mentor: MentorProfile,
    learner: ApiUser,
    clock: time_machine.Coordinates,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    other = MentorProfileFactory(
        price_cents=6000,
        currency="USD",
        session_minutes=[30, 60],
        timezone="Europe/Berlin",
        user=UserFactory(roles=("mentor",), timezone="Europe/Berlin"),
    )
    set_availability(ApiUser(client, other.user))
    broken = hold(learner, mentor, THURSDAY_10)
    fine = hold(learner, other, THURSDAY_10)
    clock.shift(timedelta(minutes=20))
    expire = state_changes.expire_lapsed_holds

    def failing_for_the_first(now: Any = None, mentor_id: int | None = None) -> list[int]:
        if mentor_id == mentor.id:
            raise RuntimeError("this mentor's unit failed")
        return expire(now, mentor_id)

    monkeypatch.setattr(state_changes, "expire_lapsed_holds", failing_for_the_first)

    assert booking_tasks.expire_lapsed_holds() == 1
    db.session.expire_all()
    assert db.session.get(Booking, fine["id"]).status == "expired"
    assert db.session.get(Booking, broken["id"]).status == "pending_payment"
