"""Mail and reminders under lost races: every database step of a send and of the reminder sweep is a unit
of its own that runs again after a deadlock, a serialization failure or SQLite's busy writer, and a unit
that keeps failing holds up none of the others."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
import time_machine
from flask import Flask
from sqlalchemy import select

from marketplace.bookings import state_changes
from marketplace.core.celery import TransientError
from marketplace.core.db import run_in_unit
from marketplace.extensions import db
from marketplace.mentors.models import MentorProfile
from marketplace.notifications import reminders, service
from marketplace.notifications.messages import Kind
from marketplace.notifications.models import EmailStatus, Reminder, ReminderStatus, SentEmail
from tests.core.races import failing, losing_each_unit_once, lost_race
from tests.factories import BookingFactory, UserFactory
from tests.fixtures.bookable import book
from tests.fixtures.mail import run_task, with_subject
from tests.helpers import ApiUser
from tests.support.servers import SmtpSink

SESSIONS = ("2027-01-07T10:00:00+01:00", "2027-01-07T15:00:00+01:00")  # Thursday 09:00 and 14:00 UTC
# Both sessions' 24-hour reminders are due, their 1-hour ones not yet.
BOTH_24H_REMINDERS_DUE = datetime(2027, 1, 6, 14, 30, tzinfo=UTC)


@pytest.fixture
def reminders_due(learner: ApiUser, mentor: MentorProfile, clock: time_machine.Coordinates) -> list[str]:
    """Two confirmed sessions, and the clock where their four 24-hour reminders are due; who gets them."""
    for start in SESSIONS:
        booking_id = book(learner, mentor, start).get_json()["id"]
        assert run_in_unit(state_changes.confirm_paid_booking, booking_id)
    clock.move_to(BOTH_24H_REMINDERS_DUE)
    return sorted([learner.user.email, mentor.user.email] * 2)


def _due_reminders() -> list[Reminder]:
    return list(
        db.session.scalars(
            select(Reminder)
            .where(Reminder.offset_minutes == 1440)
            .order_by(Reminder.id)
            .execution_options(populate_existing=True)
        )
    )


def _reminder_mails(mailbox: SmtpSink) -> list[str]:
    return sorted(m.rcpt_tos[0] for m in with_subject(mailbox.messages, "Reminder:"))


def test_every_unit_of_the_sweep_and_the_sends_that_loses_a_race_runs_again_and_each_reminder_goes_once(
    backend: str, mailbox: SmtpSink, reminders_due: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    racing, lost = losing_each_unit_once(run_in_unit, lost_race(backend))
    monkeypatch.setattr(reminders, "run_in_unit", racing)
    monkeypatch.setattr(service, "run_in_unit", racing)

    assert run_task("notifications.sweep_reminders") == 4

    assert _reminder_mails(mailbox) == reminders_due
    assert [r.status for r in _due_reminders()] == [ReminderStatus.SENT.value] * 4
    # Each reminder's claim, and each step of its send, lost once and ran again.
    assert lost.count("claim") == 4
    assert lost.count("take_for_sending") == 4
    assert lost.count("_claim") == 4  # the SentEmail claims
    assert lost.count("_mark_reminder_sent") == 4


def test_a_reminder_whose_claim_keeps_losing_holds_up_none_of_the_others_and_goes_next_sweep(
    app: Flask, backend: str, mailbox: SmtpSink, reminders_due: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    unlucky = _due_reminders()[0].id
    claim = reminders.claim
    attempts: list[int] = []

    def losing_for_one(reminder_id: int, now: datetime) -> bool:
        if reminder_id == unlucky:
            attempts.append(reminder_id)
            raise lost_race(backend)
        return claim(reminder_id, now)

    monkeypatch.setattr(reminders, "claim", losing_for_one)
    monkeypatch.setitem(app.config, "REMINDER_BATCH_SIZE", 1)  # the sweep walks on past the failing one

    assert run_task("notifications.sweep_reminders") == 3

    assert len(attempts) == app.config["DATABASE_RETRY_ATTEMPTS"]
    statuses = {r.id: r.status for r in _due_reminders()}
    assert statuses.pop(unlucky) == ReminderStatus.PENDING.value  # nothing of its unit was kept
    assert list(statuses.values()) == [ReminderStatus.SENT.value] * 3
    assert len(_reminder_mails(mailbox)) == 3

    monkeypatch.setattr(reminders, "claim", claim)
    assert run_task("notifications.sweep_reminders") == 1
    assert [r.status for r in _due_reminders()] == [ReminderStatus.SENT.value] * 4
    assert _reminder_mails(mailbox) == reminders_due


def _disputed_booking_and_admins() -> tuple[int, list[str]]:
    """A booking whose dispute notice goes to two admins: one event, two recipients."""
    admins = [UserFactory(roles=("admin",)).email for _ in range(2)]
    booking_id = BookingFactory().id
    db.session.commit()  # a unit that loses its race rolls back to here
    return booking_id, sorted(admins)


def _dispute_mails(mailbox: SmtpSink) -> list[str]:
    return sorted(m.rcpt_tos[0] for m in with_subject(mailbox.messages, "Payment disputed"))


def _outcomes(booking_id: int) -> list[tuple[str, int]]:
    rows = db.session.scalars(
        select(SentEmail)
        .where(SentEmail.kind == Kind.BOOKING_DISPUTED.value, SentEmail.object_id == booking_id)
        .execution_options(populate_existing=True)
    )
    return sorted((row.status, row.attempts) for row in rows)


def test_every_unit_of_a_send_that_loses_a_race_runs_again_and_each_recipient_gets_one_mail(
    backend: str, mailbox: SmtpSink, db_session: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    booking_id, admins = _disputed_booking_and_admins()
    racing, lost = losing_each_unit_once(run_in_unit, lost_race(backend))
    monkeypatch.setattr(service, "run_in_unit", racing)

    assert service.deliver(Kind.BOOKING_DISPUTED, booking_id) == 2

    assert _dispute_mails(mailbox) == admins
    # A claim kept after its lost race would be a live claim of "another worker": both would be deferred.
    assert _outcomes(booking_id) == [(EmailStatus.SENT.value, 1)] * 2
    assert lost == ["_render_all", "_claim", "execute", "_claim", "execute"]


def test_a_recipient_whose_claim_keeps_losing_holds_up_none_of_the_others(
    app: Flask, backend: str, mailbox: SmtpSink, db_session: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    booking_id, admins = _disputed_booking_and_admins()
    claim, calls = failing(app.config["DATABASE_RETRY_ATTEMPTS"], lost_race(backend), service._claim)
    monkeypatch.setattr(service, "_claim", claim)

    with pytest.raises(TransientError, match="OperationalError"):  # the task retries it with backoff
        service.deliver(Kind.BOOKING_DISPUTED, booking_id)
    assert len(calls) == app.config["DATABASE_RETRY_ATTEMPTS"] + 1
    assert len(_dispute_mails(mailbox)) == 1
    assert _outcomes(booking_id) == [(EmailStatus.SENT.value, 1)]

    assert service.deliver(Kind.BOOKING_DISPUTED, booking_id) == 1
    assert _dispute_mails(mailbox) == admins
