"""Booking state changes: the one way a booking's status moves, and the calendar lock they take.

`transition` (and `transition_all` for many bookings) is a compare-and-swap UPDATE guarded on the states
the table in models.py (`TRANSITIONS`) lets move to the target, so of concurrent confirm, cancel,
reschedule and expiry calls exactly one applies. The use cases of the payment work and the sweeps that move
bookings without a person asking (confirm, revive, release, expire, complete) live here too; those a
learner or mentor asks for are in service.py.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError

from marketplace.accounts.models import User
from marketplace.bookings import signals
from marketplace.bookings.models import LIVE_STATUSES, Booking, BookingStatus, RefundStatus, sources_of
from marketplace.core.db import rows_matched
from marketplace.core.time import utcnow
from marketplace.extensions import db
from marketplace.mentors.calendar_version import bump_calendar_versions
from marketplace.mentors.models import MentorProfile
from marketplace.mentors.vetting import VettingStatus


def lock_mentor_calendar(mentor_id: int) -> None:
    """Serialize every change to one mentor's booked time (new holds, moves, revivals).

    Without it, concurrent holds for one slot all pass the free-slot check while the winner is still busy
    writing its row, and PostgreSQL's exclusion checks between their uncommitted rows can deadlock. With
    it, the losers wait, see the slot taken and get a clean 409. Mentors are independent, and on SQLite
    writers are serialized anyway. Second in the lock order (bookings/models.py), before any user or
    booking; `FOR NO KEY UPDATE`, so rows that merely reference the mentor are inserted without waiting.
    """
    db.session.execute(
        select(MentorProfile.id).where(MentorProfile.id == mentor_id).with_for_update(key_share=True)
    )


def lock_learner(learner_id: int) -> None:
    """Serialize one learner's new holds so the unpaid-hold limit cannot be raced past.

    Taken after the mentor's calendar (the lock order in bookings/models.py), as `FOR NO KEY UPDATE`: the
    payment work inserting reminders for this learner (a foreign key to the row) does not wait for it.
    """
    db.session.execute(select(User.id).where(User.id == learner_id).with_for_update(key_share=True))


def mentor_takes_bookings(mentor_id: int) -> bool:
    """Whether the mentor is approved, read afresh (callers hold the mentor's calendar lock, so it holds)."""
    status = db.session.scalar(select(MentorProfile.vetting_status).where(MentorProfile.id == mentor_id))
    return status == VettingStatus.APPROVED.value


# --- moves of one booking and of many ---------------------------------------------------------------------------------


def _from_states(to: BookingStatus, only_from: Iterable[BookingStatus] | None) -> list[str]:
    """The table's sources of `to`, narrowed to `only_from` where a use case moves from fewer of them."""
    sources = sources_of(to)
    narrowed = sources if only_from is None else frozenset(only_from)
    if not narrowed <= sources:
        raise ValueError(f"Not a booking transition: {sorted(narrowed - sources)} -> {to.value}")
    return sorted(state.value for state in narrowed)


def transition(
    booking: Booking,
    to: BookingStatus,
    *,
    only_from: Iterable[BookingStatus] | None = None,
    where: tuple[Any, ...] = (),
    **values: Any,
) -> bool:
    """Move the booking to `to` if it is still in a state the table (`TRANSITIONS`) lets move there; True
    when this call won. Every status change of a single booking goes through here.

    A compare-and-swap: one UPDATE guarded on the current state, so of concurrent changes exactly one
    applies. A move that takes the booking's time back (expired -> confirmed) loses too when a live
    booking holds that time now (the database's no-overlap constraint decides). Sets `values` with it;
    `where` adds conditions the booking must still meet.
    """
    allowed = _from_states(to, only_from)
    # The mentor's row before the booking's, as everywhere: the commit bumps it.
    lock_mentor_calendar(booking.mentor_id)
    update_booking = (
        update(Booking)
        .where(Booking.id == booking.id, Booking.status.in_(allowed), *where)
        .values(status=to.value, updated_at=utcnow(), **values)
        .execution_options(synchronize_session=False)
    )
    if to.value in LIVE_STATUSES and not set(allowed) <= set(LIVE_STATUSES):
        try:
            with db.session.begin_nested():
                won = rows_matched(update_booking) == 1
        except IntegrityError:
            won = False
    else:
        won = rows_matched(update_booking) == 1
    if won:
        bump_calendar_versions(
            [booking.mentor_id]
        )  # every transition changes whether the booking holds its time
    db.session.refresh(booking)
    return won


def transition_all(
    to: BookingStatus,
    conditions: tuple[Any, ...],
    *,
    only_from: Iterable[BookingStatus] | None = None,
    **values: Any,
) -> list[int]:
    """`transition` for every booking matching `conditions` (and in a state allowed to move to `to`);
    returns the ids moved.

    The mentors' calendars are locked first, in id order, so this takes locks in the order every other
    booking change does (mentor, then booking) and cannot deadlock with one when the commit bumps them.
    """
    conditions = (*conditions, Booking.status.in_(_from_states(to, only_from)))
    mentor_ids = sorted(set(db.session.scalars(select(Booking.mentor_id).where(*conditions))))
    if not mentor_ids:
        return []
    for mentor_id in mentor_ids:
        lock_mentor_calendar(mentor_id)
    rows = db.session.execute(
        update(Booking)
        .where(*conditions, Booking.mentor_id.in_(mentor_ids))
        .values(status=to.value, **values)
        .returning(Booking.id, Booking.mentor_id)
        .execution_options(synchronize_session=False)
    ).all()
    bump_calendar_versions(row.mentor_id for row in rows)
    for row in rows:
        booking = db.session.identity_map.get(db.session.identity_key(Booking, row.id))
        if booking is not None:
            db.session.expire(booking)
    return [row.id for row in rows]


def confirm_paid_booking(booking_id: int) -> bool:
    """Called by the payment work when money arrived: pending_payment -> confirmed, or a request whose
    authorization was captured (the mentor accepted) awaiting_mentor -> confirmed; nothing else."""
    booking = db.session.get(Booking, booking_id)
    won = booking is not None and transition(
        booking,
        BookingStatus.CONFIRMED,
        only_from=(BookingStatus.PENDING_PAYMENT, BookingStatus.AWAITING_MENTOR),
        confirmed_at=utcnow(),
    )
    if won:
        signals.booking_confirmed.send(booking_id)
    return won


def revive_paid_booking(booking_id: int) -> bool:
    """Money arrived after the hold lapsed: expired -> confirmed, if the mentor still takes bookings and no
    live booking took the time since. The caller holds the mentor's calendar lock."""
    booking = db.session.get(Booking, booking_id)
    if booking is None or not mentor_takes_bookings(booking.mentor_id):
        return False
    won = transition(
        booking, BookingStatus.CONFIRMED, only_from=(BookingStatus.EXPIRED,), confirmed_at=utcnow()
    )
    if won:
        signals.booking_confirmed.send(booking_id)
    return won


def release_unpaid_hold(booking_id: int, reason: str) -> bool:
    """The payment was abandoned: a still-unpaid hold is cancelled at once, with nothing to refund."""
    booking = db.session.get(Booking, booking_id)
    won = booking is not None and transition(
        booking,
        BookingStatus.CANCELLED,
        only_from=(BookingStatus.PENDING_PAYMENT,),
        cancelled_at=utcnow(),
        cancel_reason=reason,
        refund_amount_cents=0,
        refund_status=RefundStatus.NONE.value,
        sequence=Booking.sequence + 1,
    )
    if won:
        signals.booking_cancelled.send(booking_id)
    return won


def await_mentor(booking_id: int, now: datetime, window: timedelta) -> bool:
    """The learner's card is authorized for a mentor who confirms requests: pending_payment ->
    awaiting_mentor, holding the slot until the mentor answers or `window` passes (never past the start)."""
    booking = db.session.get(Booking, booking_id)
    if booking is None:
        return False
    won = transition(
        booking,
        BookingStatus.AWAITING_MENTOR,
        only_from=(BookingStatus.PENDING_PAYMENT,),
        hold_expires_at=min(now + window, booking.start_at),
        authorized_at=now,
    )
    if won:
        signals.booking_requested.send(booking_id)
    return won


# An answer is taken once: a request the mentor accepted can no longer be declined, withdrawn or expire.
NOT_ACCEPTED = (Booking.mentor_accepted_at.is_(None),)


def decline_request(booking: Booking, reason: str | None) -> bool:
    """The mentor says no: awaiting_mentor -> declined, the slot is free; its authorization is released
    after the commit (`booking_declined`), so nothing is charged."""
    won = transition(
        booking,
        BookingStatus.DECLINED,
        only_from=(BookingStatus.AWAITING_MENTOR,),
        where=NOT_ACCEPTED,
        cancelled_at=utcnow(),
        cancelled_by_id=booking.mentor.user_id,
        cancel_reason=reason,
        refund_amount_cents=0,
        refund_status=RefundStatus.NONE.value,
        sequence=Booking.sequence + 1,
    )
    if won:
        signals.booking_declined.send(booking.id)
    return won


def claim_acceptance(booking_id: int, now: datetime) -> bool:
    """Record the mentor's yes before the card is charged; True while the request awaits them. A repeated
    accept claims again, even past the deadline, so it can finish a capture a failed call left undone (an
    accepted request no longer expires)."""
    booking = db.session.get(Booking, booking_id)
    if booking is None:
        return False
    lock_mentor_calendar(booking.mentor_id)
    return (
        rows_matched(
            update(Booking)
            .where(
                Booking.id == booking_id,
                Booking.status == BookingStatus.AWAITING_MENTOR.value,
                or_(Booking.hold_expires_at > now, Booking.mentor_accepted_at.is_not(None)),
            )
            .values(mentor_accepted_at=func.coalesce(Booking.mentor_accepted_at, now), updated_at=now)
            .execution_options(synchronize_session=False)
        )
        == 1
    )


def expire_request(booking: Booking) -> bool:
    """A request whose authorization was released at the provider (it lapsed): expired, accepted or not."""
    won = transition(booking, BookingStatus.EXPIRED, only_from=(BookingStatus.AWAITING_MENTOR,))
    if won:
        signals.booking_expired.send(booking.id)
    return won


def announce_hold(booking_id: int) -> None:
    """The hold has its PaymentIntent now (the payments module stored it): its learner can pay for it."""
    signals.booking_held.send(booking_id)


def withdraw_unopened_hold(booking_id: int) -> bool:
    """Take back a hold whose PaymentIntent could not be made, as if it had never been made; True if it was.

    Nobody was told of it (its request answered 503 or never answered, and `booking_held` is only sent with
    the intent), so it is deleted rather than cancelled: no mail, no cooldown for its learner, no row in
    their list. A hold that got its intent meanwhile is left alone.
    """
    unopened = (
        Booking.id == booking_id,
        Booking.status == BookingStatus.PENDING_PAYMENT.value,
        Booking.payment_intent_id.is_(None),
    )
    mentor_id = db.session.scalar(select(Booking.mentor_id).where(*unopened))
    if mentor_id is None:
        return False
    lock_mentor_calendar(mentor_id)
    deleted = rows_matched(delete(Booking).where(*unopened).execution_options(synchronize_session=False))
    if deleted:
        bump_calendar_versions([mentor_id])
    return bool(deleted)


def unopened_holds(older_than: datetime) -> list[int]:
    """Holds still without a PaymentIntent since before `older_than`: their request died between the hold's
    commit and the intent's (a crash), since a living one gives up within its Stripe timeout."""
    return list(
        db.session.scalars(
            select(Booking.id)
            .where(
                Booking.status == BookingStatus.PENDING_PAYMENT.value,
                Booking.payment_intent_id.is_(None),
                Booking.created_at < older_than,
            )
            .order_by(Booking.id)
        )
    )


def mentors_with_lapsed_holds(now: datetime) -> list[int]:
    """The mentors `expire_lapsed_holds` has work for, so a sweep can take them one short unit at a time."""
    return _mentors_with(BookingStatus.EXPIRED, (Booking.hold_expires_at <= now, *NOT_ACCEPTED))


def mentors_with_finished_sessions(now: datetime) -> list[int]:
    """The mentors `complete_finished` has work for."""
    return _mentors_with(BookingStatus.COMPLETED, (Booking.end_at <= _completion_cutoff(now),))


def _mentors_with(to: BookingStatus, conditions: tuple[Any, ...]) -> list[int]:
    allowed = Booking.status.in_(_from_states(to, None))
    return list(
        db.session.scalars(
            select(Booking.mentor_id).where(*conditions, allowed).distinct().order_by(Booking.mentor_id)
        )
    )


def expire_lapsed_holds(now: datetime | None = None, mentor_id: int | None = None) -> list[int]:
    """Unpaid holds, and requests their mentor did not answer, past their time become expired (a request's
    authorization is released after the commit, `booking_expired`); returns the ids this call expired."""
    now = now or utcnow()
    lapsed: tuple[Any, ...] = (Booking.hold_expires_at <= now, *NOT_ACCEPTED)
    if mentor_id is not None:
        lapsed += (Booking.mentor_id == mentor_id,)
    expired = transition_all(BookingStatus.EXPIRED, lapsed, updated_at=now)
    for booking_id in expired:
        signals.booking_expired.send(booking_id)
    return expired


def cancel_unpaid_holds(mentor_id: int, reason: str) -> list[int]:
    """Cancel every unpaid hold on the mentor (suspended: none of it may be paid for now); returns their ids.

    Each is signalled as cancelled, so its learner is told and its PaymentIntent is cancelled after the
    commit; a payment that still lands on one is refunded in full.
    """
    now = utcnow()
    cancelled = transition_all(
        BookingStatus.CANCELLED,
        (Booking.mentor_id == mentor_id,),
        only_from=(BookingStatus.PENDING_PAYMENT,),
        cancelled_at=now,
        cancel_reason=reason,
        refund_amount_cents=0,
        refund_status=RefundStatus.NONE.value,
        sequence=Booking.sequence + 1,
        updated_at=now,
    )
    for booking_id in cancelled:
        signals.booking_cancelled.send(booking_id)
    return cancelled


def _completion_cutoff(now: datetime) -> datetime:
    return now - timedelta(hours=int(current_app.config["NO_SHOW_REPORT_HOURS"]))


def complete_finished(now: datetime | None = None, mentor_id: int | None = None) -> list[int]:
    """Confirmed sessions nobody reported become completed once the no-show report window after their end
    (`NO_SHOW_REPORT_HOURS`) has passed."""
    now = now or utcnow()
    finished: tuple[Any, ...] = (Booking.end_at <= _completion_cutoff(now),)
    if mentor_id is not None:
        finished += (Booking.mentor_id == mentor_id,)
    completed = transition_all(BookingStatus.COMPLETED, finished, updated_at=now)
    for booking_id in completed:
        signals.booking_completed.send(booking_id)
    return completed
