"""The money lifecycle with every part real: gunicorn, a Celery worker, Redis, PostgreSQL, the Stripe stand-in
delivering its own signed webhooks to the server, and the mails the worker sends, caught by an SMTP sink.

Beat's sweeps are sent to the worker through the broker, as beat sends them. Time passing is the one thing
played: a session is moved into the past in the database (no process's clock is shifted), and the events
the stand-in cannot produce (a card issuer's dispute, an authorization's `amount_capturable_updated`) are
signed by the test as Stripe signs them and posted to the server's webhook.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import requests
from flask import Flask
from flask_migrate import upgrade
from sqlalchemy import select, update

from marketplace.accounts.models import Role
from marketplace.accounts.service import issue_token
from marketplace.bookings.models import Booking
from marketplace.core.time import utcnow
from marketplace.extensions import db
from marketplace.payments.models import PayoutAccount
from marketplace.scheduling.service import save_availability
from tests.bookings.test_races import all_at_once
from tests.factories import MentorProfileFactory, UserFactory
from tests.fixtures.mail import bodies
from tests.helpers import STRIPE_TEST_SETTINGS, WEBHOOK_SECRET, temporary_app
from tests.support.databases import fresh_database
from tests.support.live_server import live_server
from tests.support.servers import ReceivedMail, SmtpSink, localstripe_server, redis_server
from tests.support.stripe_client import DECLINED_AFTER_ATTACH, StripeTestClient, signed_event
from tests.support.workers import Worker, start_worker, wait_until

pytestmark = [pytest.mark.slow(seconds=55), pytest.mark.postgres_only]
TIMEOUT = 30
LEARNER_ZONE = "America/New_York"


@dataclass
class Shop:
    base_url: str
    app: Flask  # on the shop's database and broker: reads rows, moves sessions, sends beat's tasks
    worker: Worker
    stripe: StripeTestClient
    mailbox: SmtpSink
    mentor_id: int
    confirming_mentor_id: int  # requires confirmation: cards are authorized, charged on accept
    learner_token: str
    other_learner_token: str
    mentor_token: str
    confirming_token: str
    admin_token: str
    learner_email: str
    mentor_email: str
    confirming_email: str
    admin_email: str

    def call(self, method: str, path: str, token: str | None = None, **kwargs: Any) -> requests.Response:
        headers = {"Authorization": f"Bearer {token or self.learner_token}", **kwargs.pop("headers", {})}
        return requests.request(method, self.base_url + path, headers=headers, timeout=TIMEOUT, **kwargs)

    def booking(self, booking_id: int) -> dict[str, Any]:
        return self.call("GET", f"/api/v1/bookings/{booking_id}").json()

    def try_book(
        self, start: datetime, mentor_id: int | None = None, token: str | None = None
    ) -> requests.Response:
        body = {
            "mentor_id": mentor_id or self.mentor_id,
            "start": start.isoformat(),
            "duration_minutes": 60,
            "topic": "e2e",
        }
        return self.call("POST", "/api/v1/bookings", token=token, json=body)

    def book(self, start: datetime, mentor_id: int | None = None) -> dict[str, Any]:
        response = self.try_book(start, mentor_id)
        assert response.status_code == 201, response.text
        return response.json()

    def paid(self, start: datetime) -> dict[str, Any]:
        """A booking paid at the stand-in and confirmed by the worker on the stand-in's webhook."""
        booking = self.book(start)
        assert self.stripe.pay(booking["payment"]["payment_intent_id"])["status"] == "succeeded"
        self.wait_status(booking["id"], "confirmed")
        return booking

    def wait_status(self, booking_id: int, status: str) -> dict[str, Any]:
        return wait_until(
            lambda: (b := self.booking(booking_id))["status"] == status and b, TIMEOUT, f"booking {status}"
        )

    def run_beat(self, task: str) -> None:
        """Send one of beat's sweeps to the worker and wait until the worker finished it."""
        task_id = f"e2e-{uuid.uuid4().hex}"
        self.app.extensions["celery"].send_task(task, task_id=task_id)
        wait_until(
            lambda: f"[{task_id}] succeeded" in self.worker.log(), TIMEOUT, f"{task} run by the worker"
        )

    def move(self, booking_id: int, start: datetime) -> None:
        """Time passes for this session: it is moved to `start` (an hour long)."""
        with self.app.app_context():
            db.session.execute(
                update(Booking)
                .where(Booking.id == booking_id)
                .values(
                    start_at=start,
                    end_at=start + timedelta(hours=1),
                    blocked_until=start + timedelta(hours=1),
                )
            )
            db.session.commit()

    def webhook(self, event_type: str, obj: dict[str, Any]) -> None:
        payload, signature = signed_event(event_type, obj, WEBHOOK_SECRET)
        response = requests.post(
            f"{self.base_url}/webhooks/stripe",
            data=payload,
            headers={"Stripe-Signature": signature, "Content-Type": "application/json"},
            timeout=TIMEOUT,
        )
        assert response.status_code == 200, response.text

    def get_stripe(self, path: str, **params: Any) -> list[dict[str, Any]]:
        answer = self.stripe.session.get(f"{self.stripe.api_base}{path}", params=params, timeout=TIMEOUT)
        return list(answer.json()["data"])

    def refunds(self, intent_id: str) -> list[int]:
        return [refund["amount"] for refund in self.get_stripe("/v1/refunds", payment_intent=intent_id)]

    def captured(self, intent_id: str) -> list[int]:
        charges = self.stripe.intent(intent_id)["charges"]["data"]
        return [charge["amount"] for charge in charges if charge["captured"]]

    def transfers(self, booking_id: int) -> list[dict[str, Any]]:
        return self.get_stripe("/v1/transfers", transfer_group=f"booking-{booking_id}")

    def charge_of(self, intent_id: str) -> str:
        latest = self.stripe.intent(intent_id)["latest_charge"]
        return str(latest["id"] if isinstance(latest, dict) else latest)

    def mails(self, subject: str, to: str, count: int = 1) -> list[ReceivedMail]:
        """The mails to `to` whose subject contains `subject`, once `count` of them arrived."""

        def matching() -> list[ReceivedMail]:
            return [
                m
                for m in self.mailbox.messages
                if m.rcpt_tos == [to] and subject in str(m.message["Subject"])
            ]

        return wait_until(lambda: len(matching()) >= count and matching(), TIMEOUT, f"{subject!r} to {to}")

    def mail_about(self, booking_id: int, subject: str, to: str) -> str:
        """The one mail about this booking with this subject to `to`, as text (its HTML alternative names the
        booking too)."""
        mentions = re.compile(rf"\bbooking:?\s+{booking_id}\b", re.IGNORECASE)

        def about() -> list[ReceivedMail]:
            return [m for m in self.mails(subject, to) if mentions.search(bodies(m.message)[0])]

        found = wait_until(about, TIMEOUT, f"{subject!r} about booking {booking_id}")
        assert len(found) == 1, [str(m.message["Subject"]) for m in found]
        text, html = bodies(found[0].message)
        assert str(booking_id) in html
        return text


def _seed(url: str) -> dict[str, Any]:
    every_day = {
        "timezone": "UTC",
        "weekly": [{"weekday": day, "start": "00:00", "end": "24:00"} for day in range(7)],
        "buffer_minutes": 0,
        "min_notice_minutes": 0,
        "horizon_days": 60,
    }
    with temporary_app(url) as app, app.app_context():
        upgrade()
        mentor = MentorProfileFactory(price_cents=6000, currency="USD", timezone="UTC")
        confirming = MentorProfileFactory(price_cents=6000, currency="USD", timezone="UTC")
        confirming.requires_confirmation = True
        save_availability(mentor.user, every_day)
        save_availability(confirming.user, every_day)
        learner = UserFactory(roles=(Role.LEARNER,), timezone=LEARNER_ZONE)
        admin = UserFactory(roles=(Role.ADMIN,))
        db.session.flush()
        seeded = {
            "mentor_id": mentor.id,
            "confirming_mentor_id": confirming.id,
            "learner_token": issue_token(learner),
            "other_learner_token": issue_token(UserFactory(roles=(Role.LEARNER,))),
            "mentor_token": issue_token(mentor.user),
            "confirming_token": issue_token(confirming.user),
            "admin_token": issue_token(admin),
            "learner_email": learner.email,
            "mentor_email": mentor.user.email,
            "confirming_email": confirming.user.email,
            "admin_email": admin.email,
        }
        db.session.commit()
        return seeded


@pytest.fixture(scope="module")
def shop(database_url: str, tmp_path_factory: pytest.TempPathFactory, smtp_sink: SmtpSink) -> Iterator[Shop]:
    tmp_path: Path = tmp_path_factory.mktemp("e2e")
    smtp_sink.refuse(False)
    with (
        fresh_database(database_url, tmp_path, prefix="payments") as url,
        localstripe_server() as stand_in,
        redis_server() as redis_url,
    ):
        seeded = _seed(url)
        env = {
            **STRIPE_TEST_SETTINGS,
            "STRIPE_API_BASE": stand_in.api_base,
            "CELERY_BROKER_URL": redis_url,
            "MAIL_BACKEND": "smtp",
            "MAIL_SERVER": smtp_sink.host,
            "MAIL_PORT": str(smtp_sink.port),
        }
        with (
            live_server(url, env=env, timeout=90) as base_url,
            temporary_app(url, CELERY_BROKER_URL=redis_url, CELERY_TASK_ALWAYS_EAGER=False) as app,
        ):
            stand_in.register_webhook("marketplace", f"{base_url}/webhooks/stripe", WEBHOOK_SECRET)
            worker = start_worker("payments", tmp_path, {"DATABASE_URL": url, **env})
            try:
                stripe = StripeTestClient(stand_in.api_base, env["STRIPE_SECRET_KEY"])
                yield Shop(base_url, app, worker, stripe, smtp_sink, **seeded)
            finally:
                worker.stop()


def _in_days(days: int, hour: int) -> datetime:
    today = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    return today.replace(hour=hour) + timedelta(days=days)


def _ago(hours: float) -> datetime:
    return utcnow().replace(microsecond=0) - timedelta(hours=hours)


def test_pay_confirm_decline_retry_and_refund(shop: Shop) -> None:
    paid = shop.paid(_in_days(3, 10))
    intent_id = paid["payment"]["payment_intent_id"]
    receipt = shop.mail_about(paid["id"], "Receipt: $60.00 paid", shop.learner_email)
    assert intent_id in receipt
    learner_start = datetime.fromisoformat(paid["start"]).astimezone(ZoneInfo(LEARNER_ZONE))
    assert f"{learner_start:%A}, {learner_start.day} {learner_start:%B %Y}" in receipt
    assert "(America/New_York)" in receipt

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
    assert retry.status_code == 201, retry.text
    assert shop.stripe.pay(retry.json()["payment"]["payment_intent_id"])["status"] == "succeeded"
    shop.wait_status(declined["id"], "confirmed")

    cancelled = shop.call("POST", f"/api/v1/bookings/{paid['id']}/cancel", json={"reason": "plans changed"})
    assert cancelled.json()["refund"] == {"amount_cents": 6000, "status": "pending"}
    wait_until(
        lambda: shop.booking(paid["id"])["refund"]["status"] == "succeeded", TIMEOUT, "refund carried out"
    )
    assert shop.refunds(intent_id) == [6000]
    assert shop.booking(declined["id"])["status"] == "confirmed"
    refund = shop.mail_about(paid["id"], "Refund receipt: $60.00", shop.learner_email)
    assert "Still paid:        $0.00 of $60.00" in refund
    assert "You cancelled the session" in refund
    assert "plans changed" in refund


def _onboard(shop: Shop) -> dict[str, Any]:
    """The mentor onboards on the stand-in's page; its signed `account.updated` reaches the server and the
    worker applies it."""
    body = {"return_url": f"{shop.base_url}/payouts-done", "refresh_url": f"{shop.base_url}/payouts-again"}
    link = shop.call("POST", "/api/v1/me/payouts/onboarding", token=shop.mentor_token, json=body)
    assert link.status_code == 201, link.text
    assert shop.call("GET", "/api/v1/me/payouts").status_code == 403  # the learner has no payouts

    finished = requests.post(link.json()["url"], allow_redirects=False, timeout=TIMEOUT)
    assert finished.headers["Location"] == body["return_url"]

    def payouts() -> dict[str, Any]:
        return shop.call("GET", "/api/v1/me/payouts", token=shop.mentor_token).json()

    return wait_until(lambda: (p := payouts())["account_status"] == "enabled" and p, TIMEOUT, "enabled")


@pytest.fixture(scope="module")
def payouts(shop: Shop) -> dict[str, Any]:
    return _onboard(shop)


def test_a_mentor_onboards_and_the_stand_ins_signed_account_update_enables_payouts(
    payouts: dict[str, Any],
) -> None:
    assert (payouts["charges_enabled"], payouts["payouts_enabled"], payouts["requirements_due"]) == (
        True,
        True,
        [],
    )


def _settle(shop: Shop, booking_id: int, ended_hours_ago: float) -> None:
    """The session ended that long ago (past the report window), and beat's sweeps ran."""
    shop.move(booking_id, _ago(ended_hours_ago + 1))
    shop.run_beat("bookings.complete_finished")
    shop.run_beat("payments.transfer_settled")


def _account_of_mentor(shop: Shop) -> str:
    with shop.app.app_context():
        return db.session.scalars(
            select(PayoutAccount.stripe_account_id).where(PayoutAccount.mentor_id == shop.mentor_id)
        ).one()


def test_a_settled_session_is_transferred_once_and_an_admin_refund_after_reverses_it(
    shop: Shop, payouts: dict[str, Any]
) -> None:
    paid = shop.paid(_in_days(5, 10))
    intent_id = paid["payment"]["payment_intent_id"]
    _settle(shop, paid["id"], ended_hours_ago=30)
    assert shop.booking(paid["id"])["status"] == "completed"
    shop.run_beat("payments.transfer_settled")  # a second sweep makes no second transfer

    [transfer] = shop.transfers(paid["id"])
    assert (transfer["amount"], transfer["currency"]) == (4800, "usd")  # 6000 less the 20 % fee
    assert transfer["destination"] == _account_of_mentor(shop)
    assert transfer["source_transaction"] == shop.charge_of(intent_id)

    refund = shop.call(
        "POST",
        f"/api/v1/admin/bookings/{paid['id']}/refund",
        token=shop.admin_token,
        json={"amount_cents": 3000, "reason": "Half the session was lost to a broken call."},
        headers={"Idempotency-Key": f"refund-{paid['id']}"},
    )
    assert refund.status_code == 200, refund.text
    assert shop.refunds(intent_id) == [3000]
    reversed_transfer = wait_until(
        lambda: (t := shop.transfers(paid["id"])[0])["amount_reversed"] and t, TIMEOUT, "reversal"
    )
    assert reversed_transfer["amount_reversed"] == 2400
    assert len(shop.transfers(paid["id"])) == 1

    assert intent_id in shop.mail_about(paid["id"], "Receipt: $60.00 paid", shop.learner_email)
    receipt = shop.mail_about(paid["id"], "Refund receipt: $30.00", shop.learner_email)
    assert "Still paid:        $30.00 of $60.00" in receipt
    assert "Half the session was lost to a broken call." in receipt


def test_a_chargeback_holds_the_transfer_until_it_is_won(shop: Shop, payouts: dict[str, Any]) -> None:
    paid = shop.paid(_in_days(6, 10))
    intent_id = paid["payment"]["payment_intent_id"]
    dispute = {
        "id": f"dp_{uuid.uuid4().hex[:16]}",
        "object": "dispute",
        "amount": 6000,
        "currency": "usd",
        "charge": shop.charge_of(intent_id),
        "payment_intent": intent_id,
        "status": "needs_response",
    }
    shop.webhook("charge.dispute.created", dispute)
    admin_view = f"/api/v1/admin/bookings/{paid['id']}"
    wait_until(
        lambda: shop.call("GET", admin_view, token=shop.admin_token).json()["disputed"], TIMEOUT, "flag"
    )

    _settle(shop, paid["id"], ended_hours_ago=40)
    assert shop.transfers(paid["id"]) == []
    admin_mail = shop.mails(f"Payment disputed: booking {paid['id']}", shop.admin_email)
    assert len(admin_mail) == 1

    shop.webhook("charge.dispute.closed", {**dispute, "status": "won"})
    wait_until(
        lambda: not shop.call("GET", admin_view, token=shop.admin_token).json()["disputed"], TIMEOUT, "won"
    )
    shop.run_beat("payments.transfer_settled")
    assert [t["amount"] for t in shop.transfers(paid["id"])] == [4800]


def test_a_mentor_no_show_refunds_in_full_at_the_provider_and_counts_a_strike(shop: Shop) -> None:
    paid = shop.paid(_in_days(7, 10))
    shop.move(paid["id"], _ago(3))
    report = shop.call(
        "POST", f"/api/v1/bookings/{paid['id']}/no-show", json={"who": "mentor", "note": "Nobody came."}
    )
    assert report.status_code == 200, report.text
    assert report.json()["status"] == "no_show"
    wait_until(lambda: shop.booking(paid["id"])["refund"]["status"] == "succeeded", TIMEOUT, "refund")
    assert shop.refunds(paid["payment"]["payment_intent_id"]) == [6000]

    to_mentor = shop.mail_about(paid["id"], "No-show reported:", shop.mentor_email)
    assert "you have 1 within" in to_mentor
    assert "90 days" in to_mentor
    assert "contest the report by reporting" in to_mentor
    receipt = shop.mail_about(paid["id"], "Refund receipt: $60.00", shop.learner_email)
    assert "Still paid:        $0.00 of $60.00" in receipt
    assert "The mentor did not come to the session" in receipt


def test_a_learner_no_show_pays_the_mentor_and_reports_against_each_other_wait_for_an_admin(
    shop: Shop, payouts: dict[str, Any]
) -> None:
    absent = shop.paid(_in_days(8, 10))
    contested = shop.paid(_in_days(9, 10))
    shop.move(absent["id"], _ago(6))
    shop.move(contested["id"], _ago(8))
    for booking in (absent, contested):
        reported = shop.call(
            "POST",
            f"/api/v1/bookings/{booking['id']}/no-show",
            token=shop.mentor_token,
            json={"who": "learner", "note": "Never joined."},
        )
        assert reported.status_code == 200, reported.text
    to_learner = shop.mail_about(absent["id"], "No-show reported:", shop.learner_email)
    assert "paid to the mentor" in to_learner
    countered = shop.call(
        "POST", f"/api/v1/bookings/{contested['id']}/no-show", json={"who": "mentor", "note": "I was there."}
    )
    assert countered.status_code == 200, countered.text
    assert countered.json()["disputed"] is True
    for to in (shop.learner_email, shop.mentor_email, shop.admin_email):
        assert "No money is paid out or refunded" in shop.mail_about(contested["id"], "No-show disputed:", to)

    _settle(shop, absent["id"], ended_hours_ago=26)
    _settle(shop, contested["id"], ended_hours_ago=28)
    assert [t["amount"] for t in shop.transfers(absent["id"])] == [4800]
    assert shop.transfers(contested["id"]) == []  # held while the admins decide

    decided = shop.call(
        "POST",
        f"/api/v1/admin/bookings/{contested['id']}/resolve",
        token=shop.admin_token,
        json={"absent": "learner"},
    )
    assert decided.status_code == 200, decided.text
    for to in (shop.learner_email, shop.mentor_email, shop.admin_email):
        text = shop.mail_about(contested["id"], "No-show dispute decided:", to)
        assert "the learner did not come" in " ".join(text.split())
    shop.run_beat("payments.transfer_settled")
    assert [t["amount"] for t in shop.transfers(contested["id"])] == [4800]
    assert shop.refunds(contested["payment"]["payment_intent_id"]) == []


def _authorized_request(shop: Shop, start: datetime) -> dict[str, Any]:
    """A request to the mentor who confirms bookings, its card authorized at the stand-in, and Stripe's
    `amount_capturable_updated` (which the stand-in does not send) posted signed, for the worker to apply."""
    booking = shop.book(start, shop.confirming_mentor_id)
    intent_id = booking["payment"]["payment_intent_id"]
    assert shop.stripe.pay(intent_id)["status"] == "requires_capture"
    shop.webhook("payment_intent.amount_capturable_updated", shop.stripe.intent(intent_id))
    return shop.wait_status(booking["id"], "awaiting_mentor")


def test_requests_are_charged_once_when_accepted_and_never_when_declined_or_expired(shop: Shop) -> None:
    accepted, declined, lapsing = (_authorized_request(shop, _in_days(day, 14)) for day in (10, 11, 12))
    asked = shop.mails("Request:", shop.confirming_email, count=3)
    assert all("accept or decline by" in " ".join(bodies(m.message)[0].split()) for m in asked)
    held = shop.try_book(_in_days(11, 14), shop.confirming_mentor_id, shop.other_learner_token)
    assert held.status_code == 409, held.text  # the slot is held while the mentor decides

    path = f"/api/v1/bookings/{accepted['id']}/accept"
    answers = all_at_once([lambda: shop.call("POST", path, token=shop.confirming_token) for _ in range(3)])
    assert {answer.status_code for answer in answers} == {200}, [answer.text for answer in answers]
    assert shop.captured(accepted["payment"]["payment_intent_id"]) == [6000]
    receipt = shop.mail_about(accepted["id"], "Receipt: $60.00 paid", shop.learner_email)
    assert "accepted your request, and your card was charged" in receipt

    refused = shop.call(
        "POST",
        f"/api/v1/bookings/{declined['id']}/decline",
        token=shop.confirming_token,
        json={"reason": "Away"},
    )
    assert refused.status_code == 200, refused.text
    declined_intent = declined["payment"]["payment_intent_id"]
    wait_until(lambda: shop.stripe.intent(declined_intent)["status"] == "canceled", TIMEOUT, "released")
    assert shop.captured(declined_intent) == []
    freed = shop.try_book(_in_days(11, 14), shop.confirming_mentor_id, shop.other_learner_token)
    assert freed.status_code == 201, freed.text
    [no] = shop.mails("declined your request", shop.learner_email)
    assert "Your card was not charged" in bodies(no.message)[0]

    with shop.app.app_context():
        db.session.execute(
            update(Booking).where(Booking.id == lapsing["id"]).values(hold_expires_at=_ago(0.1))
        )
        db.session.commit()
    shop.run_beat("bookings.expire_lapsed_holds")
    assert shop.booking(lapsing["id"])["status"] == "expired"
    lapsed_intent = lapsing["payment"]["payment_intent_id"]
    wait_until(lambda: shop.stripe.intent(lapsed_intent)["status"] == "canceled", TIMEOUT, "released")
    assert shop.captured(lapsed_intent) == []
    [expired] = shop.mails("Your request was not answered in time", shop.learner_email)
    assert "Your card was not charged" in bodies(expired.message)[0]
    freed = shop.try_book(_in_days(12, 14), shop.confirming_mentor_id, shop.other_learner_token)
    assert freed.status_code == 201, freed.text
