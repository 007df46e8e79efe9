"""Paying for a booking with every part real: gunicorn, a Celery worker, Redis, PostgreSQL, and the Stripe
stand-in delivering its own signed webhooks to the server."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from flask_migrate import upgrade

from marketplace.accounts.models import Role
from marketplace.accounts.service import issue_token
from marketplace.extensions import db
from marketplace.scheduling.service import save_availability
from tests.factories import MentorProfileFactory, UserFactory
from tests.helpers import STRIPE_TEST_SETTINGS, temporary_app
from tests.support.databases import fresh_database
from tests.support.live_server import live_server
from tests.support.servers import localstripe_server, redis_server
from tests.support.stripe_client import DECLINED_AFTER_ATTACH, StripeTestClient
from tests.support.workers import start_worker, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.postgres_only]
TIMEOUT = 30


@dataclass
class Shop:
    base_url: str
    learner_token: str
    mentor_id: int
    stripe: StripeTestClient
    mentor_token: str

    def call(self, method: str, path: str, token: str | None = None, **kwargs: Any) -> requests.Response:
        headers = {"Authorization": f"Bearer {token or self.learner_token}"}
        return requests.request(method, self.base_url + path, headers=headers, timeout=TIMEOUT, **kwargs)

    def booking(self, booking_id: int) -> dict[str, Any]:
        return self.call("GET", f"/api/v1/bookings/{booking_id}").json()

    def book(self, start: datetime) -> dict[str, Any]:
        response = self.call(
            "POST",
            "/api/v1/bookings",
            json={
                "mentor_id": self.mentor_id,
                "start": start.isoformat(),
                "duration_minutes": 60,
                "topic": "e2e",
            },
        )
        assert response.status_code == 201, response.text
        return response.json()


def _seed(url: str) -> tuple[int, str, str]:
    with temporary_app(url) as app, app.app_context():
        upgrade()
        mentor = MentorProfileFactory(price_cents=6000, currency="USD", timezone="UTC")
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
        token = issue_token(UserFactory(roles=(Role.LEARNER,)))
        mentor_token = issue_token(mentor.user)
        db.session.commit()
        return mentor.id, token, mentor_token


@pytest.fixture
def shop(database_url: str, tmp_path: Path) -> Iterator[Shop]:
    with (
        fresh_database(database_url, tmp_path, prefix="payments") as url,
        localstripe_server() as stand_in,
        redis_server() as redis_url,
    ):
        mentor_id, token, mentor_token = _seed(url)
        env = {**STRIPE_TEST_SETTINGS, "STRIPE_API_BASE": stand_in.api_base, "CELERY_BROKER_URL": redis_url}
        with live_server(url, env=env) as base_url:
            stand_in.register_webhook(
                "marketplace", f"{base_url}/webhooks/stripe", STRIPE_TEST_SETTINGS["STRIPE_WEBHOOK_SECRET"]
            )
            worker = start_worker("payments", tmp_path, {"DATABASE_URL": url, **env})
            try:
                stripe = StripeTestClient(stand_in.api_base, env["STRIPE_SECRET_KEY"])
                yield Shop(base_url, token, mentor_id, stripe, mentor_token)
            finally:
                worker.stop()


def _in_days(days: int, hour: int) -> datetime:
    today = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    return today.replace(hour=hour) + timedelta(days=days)


def test_pay_confirm_decline_retry_and_refund(shop: Shop) -> None:
    paid = shop.book(_in_days(3, 10))
    assert shop.stripe.pay(paid["payment"]["payment_intent_id"])["status"] == "succeeded"
    wait_until(
        lambda: shop.booking(paid["id"])["status"] == "confirmed", TIMEOUT, "confirmation by the worker"
    )

    declined = shop.book(_in_days(4, 10))
    shop.stripe.pay(declined["payment"]["payment_intent_id"], DECLINED_AFTER_ATTACH)
    failed = wait_until(
        lambda: (b := shop.booking(declined["id"]))["payment"]["last_error"] and b,
        TIMEOUT,
        "failure recorded",
    )
    assert failed["status"] == "pending_payment"
    assert failed["payment"]["last_error"] == "Your card was declined."
    retry = shop.call("POST", f"/api/v1/bookings/{declined['id']}/payment")
    assert retry.status_code == 200, retry.text
    assert shop.stripe.pay(retry.json()["payment"]["payment_intent_id"])["status"] == "succeeded"
    wait_until(lambda: shop.booking(declined["id"])["status"] == "confirmed", TIMEOUT, "second card confirms")

    cancelled = shop.call("POST", f"/api/v1/bookings/{paid['id']}/cancel", json={"reason": "plans changed"})
    assert cancelled.json()["refund"] == {"amount_cents": 6000, "status": "pending"}
    wait_until(
        lambda: shop.booking(paid["id"])["refund"]["status"] == "succeeded", TIMEOUT, "refund carried out"
    )
    refunds = shop.stripe.session.get(
        f"{shop.stripe.api_base}/v1/refunds",
        params={"payment_intent": paid["payment"]["payment_intent_id"]},
        timeout=TIMEOUT,
    ).json()["data"]
    assert [refund["amount"] for refund in refunds] == [6000]
    assert shop.booking(declined["id"])["status"] == "confirmed"


def test_a_mentor_onboards_and_the_stand_ins_signed_account_update_enables_payouts(shop: Shop) -> None:
    """The stand-in's onboarding page, its own signed `account.updated` to the server, a worker applying it."""
    body = {"return_url": f"{shop.base_url}/payouts-done", "refresh_url": f"{shop.base_url}/payouts-again"}
    link = shop.call("POST", "/api/v1/me/payouts/onboarding", token=shop.mentor_token, json=body)
    assert link.status_code == 201, link.text
    assert shop.call("GET", "/api/v1/me/payouts").status_code == 403  # the learner has no payouts

    finished = requests.post(link.json()["url"], allow_redirects=False, timeout=TIMEOUT)
    assert finished.headers["Location"] == body["return_url"]

    def payouts() -> dict[str, Any]:
        return shop.call("GET", "/api/v1/me/payouts", token=shop.mentor_token).json()

    enabled = wait_until(
        lambda: payouts()["account_status"] == "enabled" and payouts(), TIMEOUT, "account enabled"
    )
    assert (enabled["charges_enabled"], enabled["payouts_enabled"], enabled["requirements_due"]) == (
        True,
        True,
        [],
    )
