"""Reminders: rows with a due time, created on confirmation, swept by beat, sent once.

Far-future work is a row, not a Celery countdown: it survives restarts and follows reschedules. The sweep
claims each due row in a short unit of its own (`run_in_unit`: run again after a lost race), a guarded UPDATE
that a concurrent sweeper's claim makes match nothing, and in the same unit writes the outbox message for
`notifications.send_reminder`: claiming and asking for the send commit together. A row whose unit still
fails stays pending for the next sweep and holds up none of the others. A reminder that fell due while the
system was down is still sent if its session has not started, and skipped if it has.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import delete, exists, or_, select, tuple_, update

from marketplace.bookings.models import Booking, BookingStatus
from marketplace.core import outbox
from marketplace.core.db import rows_matched, run_in_unit
from marketplace.core.time import utcnow
from marketplace.extensions import db
from marketplace.notifications.models import Reminder, ReminderStatus

log = logging.getLogger(__name__)

SEND_REMINDER_TASK = "notifications.send_reminder"
# One sweep stops claiming after this long, well inside the task's time limit; the next sweep goes on.
SWEEP_BUDGET_SECONDS = 30.0


def offsets_minutes() -> list[int]:
    """`REMINDER_OFFSETS_MINUTES`, e.g. "1440,60": how long before the start each reminder goes out."""
    raw = current_app.config["REMINDER_OFFSETS_MINUTES"]
    values = raw.split(",") if isinstance(raw, str) else raw
    return sorted({int(value) for value in values if str(value).strip()}, reverse=True)


def schedule(booking_id: int, now: datetime | None = None) -> int:
    """Reminder rows for both participants of a confirmed booking, for the offsets still ahead."""
    booking = db.session.get(Booking, booking_id)
    if booking is None or booking.status != BookingStatus.CONFIRMED.value:
        return 0
    now = now or utcnow()
    rows = [
        Reminder(
            booking_id=booking.id,
            user_id=user_id,
            offset_minutes=offset,
            due_at=booking.start_at - timedelta(minutes=offset),
        )
        for user_id in (booking.learner_id, booking.mentor.user_id)
        for offset in offsets_minutes()
        if booking.start_at - timedelta(minutes=offset) > now
    ]
    db.session.add_all(rows)
    db.session.flush()
    return len(rows)


def drop(booking_id: int) -> None:
    """A cancelled or moved booking's reminders go; sent_emails keeps what was already sent."""
    db.session.execute(
        delete(Reminder).where(Reminder.booking_id == booking_id).execution_options(synchronize_session=False)
    )


def _skip_stale(now: datetime) -> None:
    """Due rows whose session started (or whose booking is no longer confirmed) are not worth sending."""
    stale = exists().where(
        Booking.id == Reminder.booking_id,
        or_(Booking.status != BookingStatus.CONFIRMED.value, Booking.start_at <= now),
    )
    db.session.execute(
        update(Reminder)
        .where(Reminder.status == ReminderStatus.PENDING.value, Reminder.due_at <= now, stale)
        .values(status=ReminderStatus.SKIPPED.value)
        .execution_options(synchronize_session=False)
    )


def _due(now: datetime, limit: int, after: tuple[datetime, int] | None) -> list[tuple[datetime, int]]:
    """(due_at, id) of up to `limit` due reminders of confirmed, not yet started sessions, oldest first."""
    stmt = (
        select(Reminder.due_at, Reminder.id)
        .join(Booking, Booking.id == Reminder.booking_id)
        .where(
            Reminder.status == ReminderStatus.PENDING.value,
            Reminder.due_at <= now,
            Booking.status == BookingStatus.CONFIRMED.value,
            Booking.start_at > now,
        )
        .order_by(Reminder.due_at, Reminder.id)
        .limit(limit)
    )
    if after is not None:
        stmt = stmt.where(tuple_(Reminder.due_at, Reminder.id) > tuple_(*after))
    return [(due_at, reminder_id) for due_at, reminder_id in db.session.execute(stmt)]


def claim(reminder_id: int, now: datetime) -> bool:
    """Claim one reminder if it is still due and unclaimed, and ask for its send; False if it is not."""
    session_ahead = exists().where(
        Booking.id == Reminder.booking_id,
        Booking.status == BookingStatus.CONFIRMED.value,
        Booking.start_at > now,
    )
    claimed = rows_matched(
        update(Reminder)
        .where(
            Reminder.id == reminder_id,
            Reminder.status == ReminderStatus.PENDING.value,
            Reminder.due_at <= now,
            session_ahead,
        )
        .values(status=ReminderStatus.CLAIMED.value, claimed_at=now)
        .execution_options(synchronize_session=False)
    )
    if claimed:
        outbox.enqueue(SEND_REMINDER_TASK, reminder_id=reminder_id)
    return claimed == 1


def sweep() -> int:
    """Claim every due reminder, one short unit each, batch after batch until none is left or the time is up.

    Walks the due rows in order (after the last one seen), so a row whose unit failed is passed over now
    and taken by the next sweep.
    """
    batch = int(current_app.config["REMINDER_BATCH_SIZE"])
    deadline = time.monotonic() + SWEEP_BUDGET_SECONDS
    now = utcnow()
    run_in_unit(_skip_stale, now)
    claimed, after = 0, None
    while True:
        due = run_in_unit(_due, now, batch, after)
        for _due_at, reminder_id in due:
            try:
                claimed += run_in_unit(claim, reminder_id, now)
            except Exception:
                log.exception("claiming reminder %s failed; the next sweep tries again", reminder_id)
        if len(due) < batch or time.monotonic() > deadline:
            return claimed
        after = due[-1]


def take_for_sending(reminder_id: int) -> bool:
    """True if a claimed reminder is still worth sending; marks it skipped if its session has started."""
    row = db.session.execute(
        select(Reminder.status, Booking.status, Booking.start_at)
        .join(Booking, Booking.id == Reminder.booking_id)
        .where(Reminder.id == reminder_id)
    ).one_or_none()
    if row is None or row[0] != ReminderStatus.CLAIMED.value:
        return False
    if row[1] != BookingStatus.CONFIRMED.value or row[2] <= utcnow():
        db.session.execute(
            update(Reminder)
            .where(Reminder.id == reminder_id)
            .values(status=ReminderStatus.SKIPPED.value)
            .execution_options(synchronize_session=False)
        )
        return False
    return True


def mark_sent(reminder_id: int) -> None:
    db.session.execute(
        update(Reminder)
        .where(Reminder.id == reminder_id, Reminder.status == ReminderStatus.CLAIMED.value)
        .values(status=ReminderStatus.SENT.value, sent_at=utcnow())
        .execution_options(synchronize_session=False)
    )
