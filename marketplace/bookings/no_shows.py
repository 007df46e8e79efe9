"""No-show reports: who may report whom and when, what a report settles, strikes, and disputed reports.

From the start until `NO_SHOW_REPORT_HOURS` after the end, either party may report the other absent. The
first report settles the session as `no_show`: a mentor's absence refunds the learner in full (the payments
module makes the refund after the commit, on `booking_no_show`) and counts a strike, and
`NO_SHOW_STRIKES_TO_SUSPEND` strikes within `NO_SHOW_STRIKE_DAYS` suspend the mentor; a learner's absence
leaves the mentor's earning as for a completed session. A report against the first reporter (each says the
other was absent) opens a dispute for the admins (`Booking.disputed`): nothing more is refunded or paid out
until an admin decides who was absent (`resolve_report_dispute`).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError

from marketplace.accounts.models import User
from marketplace.bookings import signals
from marketplace.bookings.models import Booking, BookingStatus, NoShowParty, NoShowReport, RefundStatus
from marketplace.bookings.service import get_booking
from marketplace.bookings.state_changes import lock_mentor_calendar, transition
from marketplace.core.errors import Conflict, Forbidden, NotFound
from marketplace.core.time import utcnow
from marketplace.extensions import db
from marketplace.mentors import service as mentors


def report_window(booking: Booking) -> tuple[datetime, datetime]:
    """When reports are taken: from the start until `NO_SHOW_REPORT_HOURS` after the end."""
    hours = int(current_app.config["NO_SHOW_REPORT_HOURS"])
    return booking.start_at, booking.end_at + timedelta(hours=hours)


def _locked(booking_id: int) -> Booking:
    """The booking locked after its mentor's calendar (the lock order of bookings/models.py)."""
    mentor_id = db.session.scalar(select(Booking.mentor_id).where(Booking.id == booking_id))
    if mentor_id is None:
        raise NotFound("No such booking.")
    lock_mentor_calendar(mentor_id)
    booking = db.session.scalar(
        select(Booking).where(Booking.id == booking_id).with_for_update(of=Booking, key_share=True)
    )
    assert booking is not None  # bookings are deleted only while unopened holds, never once confirmed
    db.session.refresh(booking)
    return booking


def report_no_show(user: User, booking_id: int, absent: NoShowParty, note: str | None) -> Booking:
    """`user` reports the other party (`absent`) as not having come; see the module's docstring."""
    booking = get_booking(user, booking_id)
    if not booking.is_participant(user):
        raise Forbidden("Only the learner or the mentor of a booking can report a no-show.")
    if not (booking.is_learner(user) if absent is NoShowParty.MENTOR else booking.is_mentor(user)):
        raise Forbidden(f"Only the other party can report the {absent.value} as absent.")
    now = utcnow()
    opens, closes = report_window(booking)
    if now < opens:
        raise Conflict("A no-show can be reported once the session has started.")
    if now > closes:
        raise Conflict(f"No-shows can be reported until {closes:%Y-%m-%d %H:%M} UTC.")
    booking = _locked(booking_id)
    if not booking.can_report_no_show(user, absent) or booking.report_dispute_at is not None:
        raise Conflict(f"A booking that is {booking.status} cannot be reported as a no-show.")
    try:
        with db.session.begin_nested():
            db.session.add(
                NoShowReport(booking_id=booking.id, reporter_id=user.id, absent_party=absent.value, note=note)
            )
    except IntegrityError as exc:
        raise Conflict(f"The {absent.value} was reported absent already.") from exc
    if booking.state is BookingStatus.NO_SHOW:
        booking.report_dispute_at = now
        db.session.flush()
        signals.no_show_disputed.send(booking.id)
        return booking
    if not transition(booking, BookingStatus.NO_SHOW, only_from=(BookingStatus.CONFIRMED,)):
        raise Conflict("The booking changed meanwhile; reload it and try again.")
    _settle(booking, absent)
    return booking


def _settle(booking: Booking, absent: NoShowParty) -> None:
    """The session is settled with `absent` as the party who did not come."""
    booking.no_show_party = absent.value
    if absent is NoShowParty.MENTOR and booking.refund_status == RefundStatus.NONE.value:
        booking.refund_amount_cents = booking.price_cents
        booking.refund_status = RefundStatus.PENDING.value
    db.session.flush()
    signals.booking_no_show.send(booking.id)
    if absent is NoShowParty.MENTOR:
        _suspend_after_strikes(booking.mentor_id)


def strikes(mentor_id: int, now: datetime) -> list[Booking]:
    """The mentor's no-shows within `NO_SHOW_STRIKE_DAYS` before now, the latest first (one still disputed
    counts once an admin decides it was theirs)."""
    since = now - timedelta(days=int(current_app.config["NO_SHOW_STRIKE_DAYS"]))
    return list(
        db.session.scalars(
            select(Booking)
            .where(
                Booking.mentor_id == mentor_id,
                Booking.status == BookingStatus.NO_SHOW.value,
                Booking.no_show_party == NoShowParty.MENTOR.value,
                Booking.start_at >= since,
                or_(Booking.report_dispute_at.is_(None), Booking.report_dispute_resolved_at.is_not(None)),
            )
            .order_by(Booking.start_at.desc(), Booking.id.desc())
        )
    )


def _suspend_after_strikes(mentor_id: int) -> None:
    counted = strikes(mentor_id, utcnow())
    limit = int(current_app.config["NO_SHOW_STRIKES_TO_SUSPEND"])
    if len(counted) < limit:
        return
    mentors.suspend_automatically(mentor_id, _suspension_note(counted, limit))


def _suspension_note(counted: list[Booking], limit: int) -> str:
    """The reports behind a suspension, for the admins reading the vetting history."""
    days = int(current_app.config["NO_SHOW_STRIKE_DAYS"])
    rows = db.session.execute(
        select(NoShowReport.booking_id, NoShowReport.note).where(
            NoShowReport.booking_id.in_([booking.id for booking in counted]),
            NoShowReport.absent_party == NoShowParty.MENTOR.value,
        )
    )
    notes = {row.booking_id: row.note for row in rows}
    lines = [
        f"- booking {booking.id} at {booking.start_at:%Y-%m-%d %H:%M} UTC: {notes.get(booking.id) or 'no note'}"
        for booking in counted
    ]
    return (
        f"Suspended automatically: {len(counted)} no-shows reported within {days} days (limit {limit}).\n"
        + ("\n".join(lines))
    )


def resolve_report_dispute(booking_id: int, absent: NoShowParty) -> Booking:
    """An admin decides who was absent when both parties reported each other; the money follows the decision
    (a mentor's absence refunds the learner in full, if that was not done yet, and counts a strike)."""
    booking = _locked(booking_id)
    if booking.report_dispute_at is None or booking.report_dispute_resolved_at is not None:
        raise Conflict("This booking has no open no-show dispute.")
    booking.report_dispute_resolved_at = utcnow()
    booking.report_dispute_outcome = absent.value
    _settle(booking, absent)
    return booking


def reports_of(booking_id: int) -> list[NoShowReport]:
    return list(
        db.session.scalars(
            select(NoShowReport).where(NoShowReport.booking_id == booking_id).order_by(NoShowReport.id)
        )
    )
