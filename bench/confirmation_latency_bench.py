"""A payment confirmation's delay while 10,000 reminder mails are being sent: payments never wait behind mail.

    .venv/bin/python -m bench.confirmation_latency_bench [--reminders 10000] [--payments 20]

Everything real on loopback: a private PostgreSQL, Redis as the broker, an aiosmtpd sink, the Stripe stand-in
(localstripe), and worker processes as the Procfile starts them: one on the `payments` queue, two on `mail`,
one on `upkeep` (solo pools). 10,000 reminder rows fall due at once (bench/reminders_bench.py's seed) and
the sweep is published as beat would. Once the sweep has queued 1,000 of them on `mail`, while they are
being sent, a learner books through the API (the
PaymentIntent made at the stand-in), pays there, and the `payment_intent.succeeded` webhook, signed as
Stripe signs, is posted to `/webhooks/stripe`; the delay is from the webhook's answer until the booking
reads `confirmed`. The baseline is the same delay measured before the reminders fall due (idle queues), in
the same run. Target: p95 under 5 s while the mail is being sent.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import redis
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, update

from bench.reminders_bench import seed as seed_reminders
from bench.server import BenchError, exit_cleanly_on_signals, format_ms, percentile
from marketplace.accounts.models import Role
from marketplace.accounts.service import issue_token
from marketplace.bookings.models import Booking, BookingStatus
from marketplace.core.celery import MAIL_QUEUE, PAYMENTS_QUEUE, UPKEEP_QUEUE
from marketplace.core.time import utcnow
from marketplace.extensions import db
from marketplace.notifications.models import Reminder
from marketplace.scheduling.service import save_availability
from tests.factories import MentorProfileFactory, UserFactory
from tests.helpers import STRIPE_TEST_SETTINGS, temporary_app
from tests.support.servers import localstripe_server, postgres_server, redis_server, smtp_server
from tests.support.stripe_client import StripeTestClient, signed_event
from tests.support.workers import Worker, start_worker

TARGET_P95_SECONDS = 5.0
TIMEOUT_SECONDS = 120.0
SWEEP_EVERY_SECONDS = 5.0
# Payments are measured once this many reminders wait on `mail` (the sweep claims them in batches of 500 about
# as fast as two workers send them, so the backlog stays in the low thousands while all 10,000 go out).
BACKLOG = 1000
WORKERS = ((PAYMENTS_QUEUE,), (MAIL_QUEUE,), (MAIL_QUEUE,), (UPKEEP_QUEUE,))


def seed_bookable(app: Flask) -> tuple[int, str]:
    """A mentor free around the clock for the next months, and a learner's API token."""
    with app.app_context():
        mentor = MentorProfileFactory(price_cents=6000, currency="USD", timezone="UTC")
        save_availability(
            mentor.user,
            {
                "timezone": "UTC",
                "weekly": [{"weekday": day, "start": "00:00", "end": "24:00"} for day in range(7)],
                "buffer_minutes": 0,
                "min_notice_minutes": 0,
                "horizon_days": 120,
            },
        )
        token = issue_token(UserFactory(roles=(Role.LEARNER,)))
        db.session.commit()
        return mentor.id, token


class Learner:
    def __init__(self, app: Flask, stripe: StripeTestClient, mentor_id: int, token: str) -> None:
        self.app, self.stripe, self.mentor_id = app, stripe, mentor_id
        self.client: FlaskClient = app.test_client()
        self.headers = {"Authorization": f"Bearer {token}"}
        self.next_start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(days=40)

    def _intent_of(self, booking: dict[str, Any]) -> str:
        deadline = time.monotonic() + 30
        while not (booking.get("payment") or {}).get("payment_intent_id"):
            if time.monotonic() > deadline:
                raise BenchError(f"booking {booking['id']} got no PaymentIntent")
            time.sleep(0.1)
            booking = self.client.get(f"/api/v1/bookings/{booking['id']}", headers=self.headers).get_json()
        return str(booking["payment"]["payment_intent_id"])

    def pay_once(self) -> float:
        """Book, pay at the stand-in, post the webhook: seconds from its answer until `confirmed`."""
        self.next_start += timedelta(hours=2)
        response = self.client.post(
            "/api/v1/bookings",
            json={
                "mentor_id": self.mentor_id,
                "start": self.next_start.isoformat(),
                "duration_minutes": 60,
                "topic": "Bench",
            },
            headers=self.headers,
        )
        if response.status_code != 201:
            raise BenchError(f"booking refused: {response.status_code} {response.get_data(as_text=True)}")
        booking = response.get_json()
        intent_id = self._intent_of(booking)
        if self.stripe.pay(intent_id)["status"] != "succeeded":
            raise BenchError(f"the stand-in did not take the payment of {intent_id}")
        body, signature = signed_event(
            "payment_intent.succeeded",
            self.stripe.intent(intent_id),
            STRIPE_TEST_SETTINGS["STRIPE_WEBHOOK_SECRET"],
        )
        answer = self.client.post(
            "/webhooks/stripe",
            data=body,
            headers={"Stripe-Signature": signature, "Content-Type": "application/json"},
        )
        received = time.perf_counter()
        if answer.status_code != 200:
            raise BenchError(f"webhook answered {answer.status_code}")
        with self.app.app_context():
            while db.session.scalar(select(Booking.status).where(Booking.id == booking["id"])) != (
                BookingStatus.CONFIRMED.value
            ):
                db.session.rollback()
                if time.perf_counter() - received > TIMEOUT_SECONDS:
                    raise BenchError(f"booking {booking['id']} not confirmed after {TIMEOUT_SECONDS}s")
                time.sleep(0.02)
            db.session.rollback()
        return time.perf_counter() - received


def start_workers(env: dict[str, str], directory: Path) -> list[Worker]:
    return [
        start_worker(f"worker{n}-{queues[0]}", directory, env, queues=queues)
        for n, queues in enumerate(WORKERS)
    ]


def make_reminders_due(app: Flask) -> None:
    """The seeded reminders were due at seeding; they start being swept now (not counted in the baseline)."""
    with app.app_context():
        db.session.execute(update(Reminder).values(due_at=utcnow()))
        db.session.commit()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reminders", type=int, default=10_000)
    parser.add_argument("--payments", type=int, default=20)
    parser.add_argument("--baseline", type=int, default=5)
    args = parser.parse_args()
    exit_cleanly_on_signals()
    logging.getLogger("mail.log").setLevel(logging.WARNING)  # the sink's line per SMTP command
    with ExitStack() as stack:
        directory = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="confirmation-bench-")))
        database_url = stack.enter_context(postgres_server())
        redis_url = stack.enter_context(redis_server())
        sink = stack.enter_context(smtp_server())
        stand_in = stack.enter_context(localstripe_server())
        settings = {**STRIPE_TEST_SETTINGS, "STRIPE_API_BASE": stand_in.api_base}
        app = stack.enter_context(
            temporary_app(
                database_url,
                CELERY_BROKER_URL=redis_url,
                CELERY_TASK_ALWAYS_EAGER=False,
                HOLD_RATE_LIMIT="10000 per hour",  # one learner makes every booking measured
                **settings,
            )
        )
        seed_reminders(app, args.reminders)
        with app.app_context():  # not due until the baseline is measured
            db.session.execute(update(Reminder).values(due_at=utcnow() + timedelta(days=365)))
            db.session.commit()
        mentor_id, token = seed_bookable(app)
        env = {
            **settings,
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "CELERY_BROKER_URL": redis_url,
            "MAIL_BACKEND": "smtp",
            "MAIL_SERVER": sink.host,
            "MAIL_PORT": str(sink.port),
        }
        for worker in start_workers(env, directory):
            stack.callback(worker.stop)
        learner = Learner(
            app, StripeTestClient(stand_in.api_base, settings["STRIPE_SECRET_KEY"]), mentor_id, token
        )
        idle = [learner.pay_once() for _ in range(args.baseline)]

        make_reminders_due(app)
        sweep = app.extensions["celery"].tasks["notifications.sweep_reminders"]
        sweep.apply_async()
        last_sweep = time.perf_counter()
        broker = redis.Redis.from_url(redis_url)
        deadline = time.perf_counter() + TIMEOUT_SECONDS
        while broker.llen(MAIL_QUEUE) < min(BACKLOG, args.reminders // 4):
            if time.perf_counter() > deadline:
                raise BenchError(f"the sweep queued only {broker.llen(MAIL_QUEUE)} reminders")
            time.sleep(0.1)
        backlog_at_start = broker.llen(MAIL_QUEUE)
        busy: list[float] = []
        while len(busy) < args.payments:
            if time.perf_counter() - last_sweep >= SWEEP_EVERY_SECONDS:
                sweep.apply_async()
                last_sweep = time.perf_counter()
            busy.append(learner.pay_once())
            time.sleep(0.5)
        mails_when_done, backlog_at_end = len(sink.messages), broker.llen(MAIL_QUEUE)
    if mails_when_done >= args.reminders:
        raise BenchError("the reminders were all sent before the payments were measured: raise --reminders")
    p50, p95 = percentile(busy, 50), percentile(busy, 95)
    print(f"confirmation latency: {args.payments} payments while {args.reminders} reminders are sent")
    print(f"  mail queue backlog: {backlog_at_start} at the first payment, {backlog_at_end} at the last")
    print(
        f"  webhook answered -> booking confirmed: p50 {format_ms(p50)}, p95 {format_ms(p95)}, max {format_ms(max(busy))}"
    )
    print(
        f"  reminder mails at the sink when the last payment was confirmed: {mails_when_done} of {args.reminders}"
    )
    print(f"  baseline, idle queues: p50 {format_ms(percentile(idle, 50))} ({args.baseline} payments)")
    print(f"  ratio p95 busy / p50 idle: {p95 / percentile(idle, 50):.1f}")
    print(f"  target p95 < {TARGET_P95_SECONDS:.0f} s: {'PASS' if p95 < TARGET_P95_SECONDS else 'MISS'}")


if __name__ == "__main__":
    main()
