"""10,000 reminders due in the same minute, sent by 2 Celery worker processes, each exactly once.

    .venv/bin/python -m bench.reminders_bench [--reminders 10000] [--workers 2] [--baseline 1000]

Everything is real and on loopback: a private PostgreSQL, Redis as the broker, an aiosmtpd sink as the mail
server, and `celery -A workers worker --pool=solo` processes started as production starts them. 5,000
confirmed bookings (one mentor, an hour apart, a day ahead) get a reminder row for each participant, all due
now. The clock starts when the first `notifications.sweep_reminders` is published (beat's job, re-published
every few seconds here, as overlapping sweeps are safe) and stops when the sink holds every message.
Then it checks: every reminder `sent`, one `sent_emails` row each with one attempt, and as many distinct
Message-IDs at the sink as reminders. The baseline, measured in the same run, is the SMTP path alone: one
process sending `--baseline` ready-made messages to the same sink, one connection each, as the mailer does.
"""

from __future__ import annotations

import argparse
import smtplib
import tempfile
import time
from collections import Counter
from contextlib import ExitStack
from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path

from flask import Flask
from flask_migrate import upgrade
from sqlalchemy import func, insert, select

from bench.server import BenchError, exit_cleanly_on_signals
from marketplace.accounts.models import Role
from marketplace.bookings.models import Booking, BookingStatus
from marketplace.core.time import utcnow
from marketplace.extensions import db
from marketplace.notifications.models import EmailStatus, Reminder, ReminderStatus, SentEmail
from tests.factories import MentorProfileFactory, UserFactory
from tests.helpers import temporary_app
from tests.support.servers import SmtpSink, postgres_server, redis_server, smtp_server
from tests.support.workers import Worker, start_worker

LEARNERS = 50
SWEEP_EVERY_SECONDS = 5.0
TIMEOUT_SECONDS = 900.0


def seed(app: Flask, reminders: int) -> None:
    """Confirmed bookings a day ahead, and a reminder per participant due now (bulk inserts: not timed)."""
    with app.app_context():
        upgrade()
        mentor = MentorProfileFactory(user=UserFactory(roles=(Role.MENTOR,), timezone="Europe/Berlin"))
        learners = [UserFactory(roles=(Role.LEARNER,), timezone="America/New_York") for _ in range(LEARNERS)]
        db.session.flush()
        now = utcnow().replace(second=0, microsecond=0)
        first = now + timedelta(days=1)
        bookings = []
        for i in range(reminders // 2):
            start = first + timedelta(hours=i)
            bookings.append(
                {
                    "mentor_id": mentor.id,
                    "learner_id": learners[i % LEARNERS].id,
                    "status": BookingStatus.CONFIRMED.value,
                    "start_at": start,
                    "end_at": start + timedelta(minutes=60),
                    "blocked_until": start + timedelta(minutes=60),
                    "duration_minutes": 60,
                    "topic": "Benchmark",
                    "price_cents": 6000,
                    "currency": "USD",
                    "hold_expires_at": now,
                    "confirmed_at": now,
                }
            )
        ids = db.session.scalars(insert(Booking).returning(Booking.id), bookings).all()
        rows = [
            {"booking_id": booking_id, "user_id": user_id, "offset_minutes": 1440, "due_at": now}
            for booking_id, learner_id in zip(ids, [b["learner_id"] for b in bookings], strict=True)
            for user_id in (learner_id, mentor.user_id)
        ]
        db.session.execute(insert(Reminder), rows)
        db.session.commit()


def baseline_rate(sink: SmtpSink, count: int) -> float:
    """Messages per second through smtplib to the same sink from one process, one connection each."""
    message = EmailMessage()
    message["From"] = "bench@localhost"
    message["To"] = "someone@example.test"
    message["Subject"] = "Baseline"
    message.set_content("Hello\n" * 20)
    started = time.perf_counter()
    for _ in range(count):
        with smtplib.SMTP(sink.host, sink.port, timeout=10) as smtp:
            smtp.send_message(message)
    elapsed = time.perf_counter() - started
    sink.clear()
    return count / elapsed


def start_workers(
    count: int, database_url: str, redis_url: str, sink: SmtpSink, directory: Path
) -> list[Worker]:
    """`count` real worker processes (the test suite's runner), logging to `directory/worker<n>.log`."""
    env = {
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "CELERY_BROKER_URL": redis_url,
        "MAIL_BACKEND": "smtp",
        "MAIL_SERVER": sink.host,
        "MAIL_PORT": str(sink.port),
    }
    return [start_worker(f"worker{n}", directory, env) for n in range(count)]


def run(app: Flask, sink: SmtpSink, reminders: int) -> float:
    """Seconds from the first sweep until the sink holds every reminder."""
    sweep = app.extensions["celery"].tasks["notifications.sweep_reminders"]
    started = time.perf_counter()
    last_sweep = 0.0
    while len(sink.messages) < reminders:
        if time.perf_counter() - last_sweep >= SWEEP_EVERY_SECONDS:
            sweep.apply_async()
            last_sweep = time.perf_counter()
        if time.perf_counter() - started > TIMEOUT_SECONDS:
            raise BenchError(f"only {len(sink.messages)} of {reminders} reminders after {TIMEOUT_SECONDS}s")
        time.sleep(0.05)
    return time.perf_counter() - started


def check_exactly_once(app: Flask, sink: SmtpSink, reminders: int) -> None:
    time.sleep(3)  # room for a duplicate to show up
    ids = Counter(str(m.message["Message-ID"]) for m in sink.messages)
    if len(sink.messages) != reminders or len(ids) != reminders:
        raise BenchError(f"{len(sink.messages)} messages, {len(ids)} distinct, for {reminders} reminders")
    with app.app_context():
        statuses = dict(
            db.session.execute(select(Reminder.status, func.count()).group_by(Reminder.status)).all()
        )
        emails = db.session.execute(
            select(SentEmail.status, SentEmail.attempts, func.count()).group_by(
                SentEmail.status, SentEmail.attempts
            )
        ).all()
    if statuses != {ReminderStatus.SENT.value: reminders}:
        raise BenchError(f"reminder statuses {statuses}")
    if [tuple(row) for row in emails] != [(EmailStatus.SENT.value, 1, reminders)]:
        raise BenchError(f"sent_emails (status, attempts, count): {emails}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reminders", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--baseline", type=int, default=1000)
    args = parser.parse_args()
    exit_cleanly_on_signals()
    with ExitStack() as stack:
        directory = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="reminders-bench-")))
        database_url = stack.enter_context(postgres_server())
        redis_url = stack.enter_context(redis_server())
        sink = stack.enter_context(smtp_server())
        app = stack.enter_context(
            temporary_app(database_url, CELERY_BROKER_URL=redis_url, CELERY_TASK_ALWAYS_EAGER=False)
        )
        seed(app, args.reminders)
        baseline = baseline_rate(sink, args.baseline)
        for worker in start_workers(args.workers, database_url, redis_url, sink, directory):
            stack.callback(worker.stop)
        elapsed = run(app, sink, args.reminders)
        check_exactly_once(app, sink, args.reminders)
        per_worker = [
            (directory / f"worker{n}.log").read_text(errors="replace").count("notifications.send_reminder[")
            // 2  # "received" and "succeeded"
            for n in range(args.workers)
        ]
    rate = args.reminders / elapsed
    print(f"reminders: {args.reminders} due in one minute, {args.workers} worker processes (solo pool)")
    print(f"  all sent, each exactly once, in {elapsed:.1f} s: {rate:.0f} reminders/s")
    print(f"  sends per worker: {per_worker}")
    print(f"  baseline, bare smtplib to the same sink from one process: {baseline:.0f} messages/s")
    print(f"  ratio: {rate / baseline:.2f} of the bare SMTP rate")


if __name__ == "__main__":
    main()
