"""500 webhook deliveries over 100 bookings: repeated, shuffled, some forged or stale.

Every forged or stale one gets 400, nothing gets a 5xx, every booking ends in the state its events call for,
and every refund happens exactly once at the payment provider. On PostgreSQL, the production database: the
same intake on SQLite is tested event by event in test_webhooks.py, and this run would double its minute.
"""

from __future__ import annotations

import random
import time as time_module
from collections import Counter
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from marketplace.bookings.models import Booking
from marketplace.extensions import db
from marketplace.mentors.models import MentorProfile
from marketplace.payments.models import EarningEntry, StripeEvent
from tests.fixtures.bookable import book
from tests.helpers import WEBHOOK_SECRET, ApiUser
from tests.support.stripe_client import StripeTestClient, signed_event

BERLIN = ZoneInfo("Europe/Berlin")
SCENARIOS = ["paid"] * 40 + ["failed_then_paid"] * 20 + ["paid_then_cancelled"] * 20 + ["abandoned"] * 10
SCENARIOS += ["declined"] * 10
DISPUTED = 15

pytestmark = [pytest.mark.postgres_only, pytest.mark.slow(seconds=85)]


def _weekday_starts(count: int) -> list[str]:
    """Distinct free starts, 5 a day on weekdays from Tuesday 5 January 2027, 90 minutes apart."""
    starts: list[str] = []
    day = date(2027, 1, 5)
    while len(starts) < count:
        if day.weekday() < 5:
            for hour, minute in ((9, 0), (10, 30), (12, 0), (13, 30), (15, 0)):
                starts.append(datetime.combine(day, time(hour, minute), BERLIN).isoformat())
        day += timedelta(days=1)
    return starts[:count]


@pytest.fixture
def many_holds_allowed(app: Flask) -> Any:
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(app.config, "MAX_UNPAID_HOLDS", 1000)
        patch.setitem(app.config, "HOLD_RATE_LIMIT", "1000 per hour")
        yield


def test_webhook_chaos(
    client: FlaskClient,
    mentor: MentorProfile,
    learner: ApiUser,
    stripe_client: StripeTestClient,
    many_holds_allowed: None,
) -> None:
    rng = random.Random(20270104)
    bookings: list[dict[str, Any]] = []
    for start, scenario in zip(_weekday_starts(len(SCENARIOS)), SCENARIOS, strict=True):
        response = book(learner, mentor, start)
        assert response.status_code == 201, response.get_data(as_text=True)
        bookings.append({**response.get_json(), "scenario": scenario})

    phase_one: list[tuple[str, dict[str, Any]]] = []
    for index, booking in enumerate(bookings):
        intent_id = booking["payment"]["payment_intent_id"]
        created = stripe_client.intent(intent_id)
        phase_one.append(("payment_intent.created", created))
        scenario = booking["scenario"]
        if scenario in ("paid", "failed_then_paid", "paid_then_cancelled"):
            assert stripe_client.pay(intent_id)["status"] == "succeeded"
            paid = stripe_client.intent(intent_id)
            phase_one += [("payment_intent.succeeded", paid), ("charge.succeeded", {"id": f"ch_{index}"})]
        if scenario in ("paid", "failed_then_paid", "declined"):
            failed = {**created, "last_payment_error": {"message": "Your card was declined."}}
            phase_one.append(("payment_intent.payment_failed", failed))
        if scenario == "abandoned":
            stripe_client._post(f"/v1/payment_intents/{intent_id}/cancel")
            phase_one.append(("payment_intent.canceled", stripe_client.intent(intent_id)))
        if scenario == "paid" and index < DISPUTED:
            phase_one.append(
                (
                    "charge.dispute.created",
                    {"id": f"dp_{index}", "object": "dispute", "payment_intent": intent_id},
                )
            )

    statuses: Counter[int] = Counter()
    forged_statuses: Counter[int] = Counter()

    def deliver_all(events: list[tuple[str, dict[str, Any]]], repeats: int, forged: int) -> None:
        signed = [signed_event(kind, obj, WEBHOOK_SECRET) for kind, obj in events]
        deliveries = [(*d, False) for d in signed + rng.sample(signed, repeats)]
        deliveries += [(*_forge(rng, events, rng.randrange(len(events))), True) for _ in range(forged)]
        rng.shuffle(deliveries)
        for payload, header, is_forged in deliveries:
            response = client.post("/webhooks/stripe", data=payload, headers={"Stripe-Signature": header})
            (forged_statuses if is_forged else statuses)[response.status_code] += 1

    assert len(phase_one) == 355
    deliver_all(phase_one, repeats=95, forged=23)

    cancelled = [b for b in bookings if b["scenario"] == "paid_then_cancelled"]
    for booking in cancelled:
        response = learner.post(f"/api/v1/bookings/{booking['id']}/cancel", json={"reason": "chaos"})
        assert response.status_code == 200, response.get_data(as_text=True)
    refunds = [
        (
            "charge.refunded",
            {
                "id": f"ch_r{b['id']}",
                "payment_intent": b["payment"]["payment_intent_id"],
                "amount_refunded": b["price_cents"],
            },
        )
        for b in cancelled
    ]
    deliver_all(refunds, repeats=5, forged=2)

    assert sum(statuses.values()) + sum(forged_statuses.values()) == 500
    assert statuses == {200: 475}
    assert forged_statuses == {400: 25}
    db.session.expire_all()
    final = {b.id: b for b in db.session.scalars(select(Booking))}
    expected = {
        "paid": "confirmed",
        "failed_then_paid": "confirmed",
        "paid_then_cancelled": "cancelled",
        "abandoned": "cancelled",
        "declined": "pending_payment",
    }
    for booking in bookings:
        assert final[booking["id"]].status == expected[booking["scenario"]], booking
    for booking in cancelled:
        row = final[booking["id"]]
        assert (row.refund_status, row.refund_amount_cents) == ("succeeded", 6000)
        at_provider = stripe_client.session.get(
            f"{stripe_client.api_base}/v1/refunds",
            params={"payment_intent": row.payment_intent_id},
            timeout=10,
        ).json()["data"]
        assert [r["amount"] for r in at_provider] == [6000]
    for booking in bookings:
        if booking["scenario"] == "declined":
            assert final[booking["id"]].last_payment_error == "Your card was declined."
    assert sum(1 for row in final.values() if row.disputed_at is not None) == DISPUTED
    ledger = Counter(db.session.scalars(select(EarningEntry.kind)))
    assert ledger == {"session": 80, "refund_reversal": 20}  # open disputes hold money, lost ones take it
    assert all(event.processed_at for event in db.session.scalars(select(StripeEvent)))


def _forge(rng: random.Random, events: list[tuple[str, dict[str, Any]]], index: int) -> tuple[bytes, str]:
    """A real event signed with the wrong secret, or correctly signed but an hour old (a replay)."""
    kind, obj = events[index]
    if rng.random() < 0.5:
        return signed_event(kind, obj, "whsec_not_ours")
    return signed_event(kind, obj, WEBHOOK_SECRET, timestamp=int(time_module.time()) - 3600)
