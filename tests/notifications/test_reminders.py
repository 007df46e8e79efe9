"""Reminders through time: rows made on confirmation, swept by the beat task, each sent once, on time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import time_machine
from sqlalchemy import select, update

from marketplace.bookings import state_changes
from marketplace.core.db import unit_of_work
from marketplace.core.time import utcnow
from marketplace.extensions import db
from marketplace.mentors.models import MentorProfile
from marketplace.notifications.models import Reminder
from tests.fixtures.bookable import book
from tests.fixtures.mail import bodies, run_task
from tests.helpers import ApiUser
from tests.support.servers import SmtpSink

THURSDAY_15_BERLIN = "2027-01-07T15:00:00+01:00"  # 14:00 UTC; now is Monday 06:00 UTC
STEP = timedelta(minutes=15)


def _confirmed(learner: ApiUser, mentor: MentorProfile, start: str = THURSDAY_15_BERLIN) -> int:
    booking_id = book(learner, mentor, start).get_json()["id"]
    with unit_of_work():
        assert state_changes.confirm_paid_booking(booking_id)
    return booking_id


def _at(day: int, hour: int) -> datetime:
    return datetime(2027, 1, day, hour, 0, tzinfo=UTC)


def run_beat(clock: time_machine.Coordinates, mailbox: SmtpSink, until: datetime) -> list[tuple]:
    """Sweep every 15 minutes until `until`, noting when each reminder arrived, to whom, with what subject."""
    arrivals = []
    seen = len(mailbox.messages)
    while utcnow() < until:
        clock.shift(STEP)
        run_task("notifications.sweep_reminders")
        new = mailbox.messages[seen:]
        seen += len(new)
        arrivals += [
            (utcnow(), m.rcpt_tos[0], m.message["Subject"])
            for m in new
            if m.message["Subject"].startswith("Reminder:")
        ]
    return sorted(arrivals)


def _reminder_rows(booking_id: int) -> list[tuple[int, datetime, str]]:
    rows = db.session.scalars(select(Reminder).where(Reminder.booking_id == booking_id)).all()
    return sorted((r.offset_minutes, r.due_at, r.status) for r in rows)


def test_a_booking_three_days_ahead_gets_one_24h_and_one_1h_reminder_per_participant(
    mailbox: SmtpSink, mentor: MentorProfile, learner: ApiUser, clock: time_machine.Coordinates
) -> None:
    booking_id = _confirmed(learner, mentor)

    arrivals = run_beat(clock, mailbox, until=_at(7, 18))

    mentor_name, learner_name = mentor.name, learner.user.name
    assert arrivals == sorted(
        [
            (_at(6, 14), learner.user.email, f"Reminder: mentoring session with {mentor_name} in 24 hours"),
            (_at(6, 14), mentor.user.email, f"Reminder: mentoring session with {learner_name} in 24 hours"),
            (_at(7, 13), learner.user.email, f"Reminder: mentoring session with {mentor_name} in 1 hour"),
            (_at(7, 13), mentor.user.email, f"Reminder: mentoring session with {learner_name} in 1 hour"),
        ]
    )
    learner_reminder = next(m for m in mailbox.messages if m.rcpt_tos == [learner.user.email])
    assert "Thursday, 7 January 2027, 9:00 AM EST (America/New_York)" in bodies(learner_reminder.message)[0]
    assert [status for _offset, _due, status in _reminder_rows(booking_id)] == ["sent"] * 4


def test_a_cancelled_booking_gets_no_reminder(
    mailbox: SmtpSink, mentor: MentorProfile, learner: ApiUser, clock: time_machine.Coordinates
) -> None:
    booking_id = _confirmed(learner, mentor)
    assert len(_reminder_rows(booking_id)) == 4

    assert learner.post(f"/api/v1/bookings/{booking_id}/cancel", json={}).status_code == 200

    assert _reminder_rows(booking_id) == []
    assert run_beat(clock, mailbox, until=_at(7, 18)) == []


def test_a_rescheduled_booking_is_reminded_at_its_new_time_only(
    mailbox: SmtpSink, mentor: MentorProfile, learner: ApiUser, clock: time_machine.Coordinates
) -> None:
    booking_id = _confirmed(learner, mentor)
    moved = learner.post(
        f"/api/v1/bookings/{booking_id}/reschedule", json={"start": "2027-01-08T14:00:00+01:00"}
    )
    assert moved.status_code == 200

    arrivals = run_beat(clock, mailbox, until=_at(8, 18))

    assert [(when, to) for when, to, _subject in arrivals] == sorted(
        [
            (_at(7, 13), learner.user.email),
            (_at(7, 13), mentor.user.email),
            (_at(8, 12), learner.user.email),
            (_at(8, 12), mentor.user.email),
        ]
    )


def test_a_booking_confirmed_inside_a_day_gets_only_the_reminders_still_ahead(
    mentor: MentorProfile, learner: ApiUser
) -> None:
    booking_id = _confirmed(learner, mentor, "2027-01-04T15:00:00+01:00")

    assert _reminder_rows(booking_id) == [(60, _at(4, 13), "pending")] * 2


def test_reminders_due_while_the_system_was_down_go_late_once_or_are_skipped_once_started(
    mailbox: SmtpSink, mentor: MentorProfile, learner: ApiUser, clock: time_machine.Coordinates
) -> None:
    booking_id = _confirmed(learner, mentor)
    mailbox.wait_for(4)  # the hold, the two confirmations and the learner's receipt

    clock.move_to(_at(6, 20))  # six hours past the 24 h reminders; the session is tomorrow
    assert run_task("notifications.sweep_reminders") == 2
    assert run_task("notifications.sweep_reminders") == 0
    late = [m for m in mailbox.messages if m.message["Subject"].startswith("Reminder:")]
    assert sorted(m.rcpt_tos[0] for m in late) == sorted([learner.user.email, mentor.user.email])

    clock.move_to(_at(7, 14) + timedelta(minutes=30))  # the 1 h reminders fell due, and the session began
    assert run_task("notifications.sweep_reminders") == 0
    assert len(mailbox.messages) == 6
    assert _reminder_rows(booking_id) == [
        (60, _at(7, 13), "skipped"),
        (60, _at(7, 13), "skipped"),
        (1440, _at(6, 14), "sent"),
        (1440, _at(6, 14), "sent"),
    ]


def test_a_claimed_reminder_whose_session_started_before_its_send_ran_is_skipped(
    mailbox: SmtpSink, mentor: MentorProfile, learner: ApiUser, clock: time_machine.Coordinates
) -> None:
    booking_id = _confirmed(learner, mentor)
    mailbox.wait_for(4)  # the hold, the two confirmations and the learner's receipt
    # Claimed by a sweep whose send tasks are still queued (a backlog) when the session starts.
    with unit_of_work():
        db.session.execute(
            update(Reminder)
            .where(Reminder.booking_id == booking_id)
            .values(status="claimed", claimed_at=utcnow())
        )
    ids = db.session.scalars(select(Reminder.id).where(Reminder.booking_id == booking_id)).all()

    clock.move_to(_at(7, 14))

    assert [run_task("notifications.send_reminder", reminder_id=rid) for rid in ids] == [False] * 4
    assert len(mailbox.messages) == 4
    assert {status for _offset, _due, status in _reminder_rows(booking_id)} == {"skipped"}
