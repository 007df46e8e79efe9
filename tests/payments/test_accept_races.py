"""Answers to one request raced through real HTTP (gunicorn workers) on PostgreSQL, with the Stripe stand-in:
however many accepts arrive together, the card is captured once; an accept racing a decline leaves either a
charged, confirmed booking or a declined one with nothing charged, never both or a refund."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from flask import Flask
from flask_migrate import upgrade
from sqlalchemy import func, select

from marketplace.accounts.models import Role
from marketplace.accounts.service import issue_token
from marketplace.bookings import state_changes
from marketplace.core.time import utcnow
from marketplace.extensions import db
from marketplace.payments.models import EarningEntry
from marketplace.scheduling.service import save_availability
from tests.bookings.test_races import all_at_once
from tests.factories import MentorProfileFactory, UserFactory
from tests.helpers import STRIPE_TEST_SETTINGS, temporary_app
from tests.support.databases import fresh_database
from tests.support.live_server import live_server
from tests.support.servers import localstripe_server
from tests.support.stripe_client import StripeTestClient

pytestmark = [pytest.mark.slow, pytest.mark.postgres_only]
TIMEOUT = 30


@dataclass(frozen=True)
class Shop:
    base_url: str
    app: Flask
    mentor_id: int
    mentor_token: str
    learner_token: str
    stripe: StripeTestClient

    def call(self, token: str, path: str, body: dict[str, Any] | None = None) -> requests.Response:
        return requests.post(
            self.base_url + path,
            json=body or {},
            headers={"Authorization": f"Bearer {token}"},
            timeout=TIMEOUT,
        )

    def authorized_request(self, day: int) -> dict[str, Any]:
        """A request on day `day`, its card authorized, awaiting the mentor (the worker's part run here)."""
        start = datetime.now(UTC).replace(hour=10, minute=0, second=0, microsecond=0) + timedelta(days=day)
        body = {"mentor_id": self.mentor_id, "start": start.isoformat(), "duration_minutes": 60, "topic": "x"}
        held = self.call(self.learner_token, "/api/v1/bookings", body)
        assert held.status_code == 201, held.text
        booking = held.json()
        assert self.stripe.pay(booking["payment"]["payment_intent_id"])["status"] == "requires_capture"
        with self.app.app_context():
            assert state_changes.await_mentor(booking["id"], utcnow(), timedelta(hours=48))
            db.session.commit()
        return booking

    def captured(self, intent_id: str) -> list[int]:
        charges = self.stripe.intent(intent_id)["charges"]["data"]
        return [charge["amount"] for charge in charges if charge["captured"]]

    def ledger_entries(self, booking_id: int) -> int:
        with self.app.app_context():
            count = db.session.scalar(
                select(func.count()).select_from(EarningEntry).where(EarningEntry.booking_id == booking_id)
            )
            db.session.rollback()
            return int(count or 0)


@pytest.fixture(scope="module")
def shop(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shop]:
    with (
        fresh_database(database_url, tmp_path_factory.mktemp("accept"), prefix="accept") as url,
        temporary_app(url) as app,
        localstripe_server() as stand_in,
    ):
        with app.app_context():
            upgrade()
            mentor = MentorProfileFactory(price_cents=6000, currency="USD", timezone="UTC")
            mentor.requires_confirmation = True
            save_availability(
                mentor.user,
                {
                    "timezone": "UTC",
                    "weekly": [{"weekday": day, "start": "00:00", "end": "24:00"} for day in range(7)],
                    "buffer_minutes": 0,
                    "min_notice_minutes": 0,
                    "horizon_days": 60,
                },
            )
            mentor_id, mentor_token = mentor.id, issue_token(mentor.user)
            learner_token = issue_token(UserFactory(roles=(Role.LEARNER,)))
            db.session.commit()
        env = {
            **STRIPE_TEST_SETTINGS,
            "STRIPE_API_BASE": stand_in.api_base,
            "CELERY_BROKER_URL": "memory://",  # no worker: the outbox's hand-off only needs a broker
        }
        with live_server(url, env=env) as base_url:
            stripe = StripeTestClient(stand_in.api_base, env["STRIPE_SECRET_KEY"])
            yield Shop(base_url, app, mentor_id, mentor_token, learner_token, stripe)


def test_accepts_raced_capture_once(shop: Shop) -> None:
    booking = shop.authorized_request(day=3)
    path = f"/api/v1/bookings/{booking['id']}/accept"

    answers = all_at_once([lambda: shop.call(shop.mentor_token, path) for _ in range(4)])

    assert {answer.status_code for answer in answers} == {200}, [answer.text for answer in answers]
    assert {answer.json()["status"] for answer in answers} == {"confirmed"}
    assert shop.captured(booking["payment"]["payment_intent_id"]) == [6000]
    assert shop.stripe.intent(booking["payment"]["payment_intent_id"])["status"] == "succeeded"
    assert shop.ledger_entries(booking["id"]) == 1


def test_an_accept_racing_a_decline_leaves_one_answer(shop: Shop) -> None:
    booking = shop.authorized_request(day=4)
    base = f"/api/v1/bookings/{booking['id']}"

    accepted, declined = all_at_once(
        [
            lambda: shop.call(shop.mentor_token, f"{base}/accept"),
            lambda: shop.call(shop.mentor_token, f"{base}/decline", {"reason": "Busy"}),
        ]
    )

    assert sorted([accepted.status_code, declined.status_code]) == [200, 409], (accepted.text, declined.text)
    final = requests.get(
        shop.base_url + base, headers={"Authorization": f"Bearer {shop.learner_token}"}, timeout=TIMEOUT
    ).json()
    intent_id = booking["payment"]["payment_intent_id"]
    if accepted.status_code == 200:
        assert final["status"] == "confirmed"
        assert final["refund"] is None
        assert shop.captured(intent_id) == [6000]
    else:
        assert final["status"] == "declined"
        assert final["refund"] == {"amount_cents": 0, "status": "none"}
        assert shop.captured(intent_id) == []
