"""Faults with real processes: Redis down at commit time, a worker killed mid-task, SMTP refusing for a while.

In each, the mail must arrive exactly once: the test waits for it, then waits a little longer for a duplicate,
and checks the `sent_emails` row that made it so.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from sqlalchemy import select

from marketplace.accounts.models import Role, User
from marketplace.accounts.service import register
from marketplace.bookings import service as bookings
from marketplace.bookings import state_changes
from marketplace.core import outbox
from marketplace.core.db import unit_of_work
from marketplace.core.outbox import OutboxMessage
from marketplace.core.time import utcnow
from marketplace.extensions import db
from marketplace.notifications.models import EmailStatus, SentEmail
from tests.support.servers import ReceivedMail
from tests.support.workers import wait_until
from tests.workers.conftest import World

pytestmark = [pytest.mark.slow(seconds=70), pytest.mark.postgres_only]

# Long enough for a duplicate to show up if one were coming (every retry delay here is shorter).
SETTLE_SECONDS = 4.0


def _subjects(mails: list[ReceivedMail], prefix: str) -> list[tuple[list[str], str]]:
    return [(m.rcpt_tos, m.message["Subject"]) for m in mails if m.message["Subject"].startswith(prefix)]


def _book(world: World) -> int:
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(days=3)
    with world.app.app_context(), unit_of_work():
        learner = db.session.get(User, world.learner_id)
        return bookings.create_booking(learner, world.mentor_id, start, 60, "Fault tolerance").id


def _email_rows(world: World, kind: str) -> list[tuple[str, str, int]]:
    with world.app.app_context():
        rows = db.session.scalars(select(SentEmail).where(SentEmail.kind == kind)).all()
        return sorted((r.recipient, r.status, r.attempts) for r in rows)


def test_confirmation_committed_while_redis_is_down_is_mailed_once_after_it_returns(
    world: World, backend: str
) -> None:
    world.start_worker("w1")
    booking_id = _book(world)
    assert _subjects(world.sink.wait_for(1, timeout=30), "Pay by")  # the hold message: all is running

    started = time.monotonic()
    world.redis.stop()
    with world.app.app_context():
        with unit_of_work():
            assert state_changes.confirm_paid_booking(booking_id)
        stuck = db.session.scalars(select(OutboxMessage).where(OutboxMessage.published_at.is_(None))).all()
        mail = [m for m in stuck if m.task == "notifications.send_email"]
        assert sorted((m.payload for m in mail), key=lambda payload: payload["kind"]) == [
            {"kind": "booking_confirmed", "object_id": booking_id, "version": 0},
            {"kind": "payment_receipt", "object_id": booking_id, "version": 0},
        ]
        assert all(m.last_error for m in mail)
    world.redis.start()

    # Beat's sweep, run once the row is older than the grace it leaves to the request that wrote it.
    with (
        time_machine.travel(utcnow() + outbox.SWEEP_GRACE, tick=True),
        world.app.app_context(),
        unit_of_work(),
    ):
        assert outbox.relay_pending() == len(stuck)

    world.sink.wait_for(4, timeout=60)
    elapsed = time.monotonic() - started
    time.sleep(SETTLE_SECONDS)
    confirmed = _subjects(world.sink.messages, "Confirmed:")
    assert sorted(to for to, _subject in confirmed) == sorted([[u.email] for u in _participants(world)])
    assert len(_subjects(world.sink.messages, "Receipt")) == 1
    assert len(world.sink.messages) == 4
    assert [(status, attempts) for _to, status, attempts in _email_rows(world, "booking_confirmed")] == [
        (EmailStatus.SENT.value, 1)
    ] * 2
    print(f"redis outage: confirmation mails delivered {elapsed:.1f}s after the outage began")


def _participants(world: World) -> list[User]:
    with world.app.app_context():
        mentor_user = db.session.scalar(select(User).where(User.role_rows.any(role=Role.MENTOR.value)))
        learner = db.session.get(User, world.learner_id)
        db.session.expunge_all()
        return [mentor_user, learner]


def test_a_worker_killed_in_the_middle_of_sending_leaves_the_mail_to_another_once(
    world: World, backend: str
) -> None:
    knobs = {"CELERY_VISIBILITY_TIMEOUT": "4", "MAIL_CLAIM_LEASE_SECONDS": "3", "MAIL_TIMEOUT_SECONDS": "60"}
    workers = [world.start_worker("alpha", **knobs), world.start_worker("beta", **knobs)]
    world.sink.stalls_left = 1  # the first delivery hangs at RCPT: its worker is inside smtplib

    started = time.monotonic()
    with world.app.app_context(), unit_of_work():
        register(email="kim@example.test", password="x" * 12, name="Kim", role=Role.LEARNER)
    assert world.sink.stalled.wait(30), "no worker started sending"
    (victim,) = wait_until(
        lambda: [w for w in workers if "notifications.send_email[" in w.log()], 10, "a worker logs the task"
    )
    victim.kill()
    survivor = next(w for w in workers if w is not victim)

    (mail,) = world.sink.wait_for(1, timeout=60)
    elapsed = time.monotonic() - started
    time.sleep(SETTLE_SECONDS)
    assert len(world.sink.messages) == 1
    assert mail.rcpt_tos == ["kim@example.test"]
    assert mail.message["Subject"] == "Welcome to Mentor marketplace"
    assert "succeeded" in survivor.log()
    # The worker logs through the project's setup (core/logs.py), not Celery's own format.
    assert re.search(
        r"^\[.+\] INFO celery\.app\.trace \[request_id=-\]: Task notifications\.send_email\[.+\] succeeded",
        survivor.log(),
        re.MULTILINE,
    ), survivor.log()
    # Claimed by the killed worker (attempt 1), taken over by the survivor once the lease ran out.
    assert _email_rows(world, "welcome") == [("kim@example.test", EmailStatus.SENT.value, 2)]
    print(
        f"worker killed: {victim.name} killed, mail sent once by {survivor.name} {elapsed:.1f}s after the request"
    )


def test_mail_refused_for_a_while_arrives_once_after_retries(world: World, backend: str) -> None:
    world.start_worker("w1")
    world.sink.refuse(True)

    started = time.monotonic()
    with world.app.app_context(), unit_of_work():
        register(email="lee@example.test", password="x" * 12, name="Lee", role=Role.LEARNER)
    # The sink's own count: the row's `attempts` grows when a send is claimed, before SMTP refuses it.
    wait_until(lambda: world.sink.refused >= 2, 60, "two refused attempts")
    world.sink.refuse(False)

    (mail,) = world.sink.wait_for(1, timeout=90)
    elapsed = time.monotonic() - started
    time.sleep(SETTLE_SECONDS)
    assert len(world.sink.messages) == 1
    assert mail.rcpt_tos == ["lee@example.test"]
    ((recipient, status, attempts),) = _email_rows(world, "welcome")
    assert (recipient, status) == ("lee@example.test", EmailStatus.SENT.value)
    assert attempts == world.sink.refused + 1 >= 3  # every refused attempt was retried, then one delivery
    print(f"smtp refusing: sent once after {attempts - 1} refused attempts, {elapsed:.1f}s after the request")
