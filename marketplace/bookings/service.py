"""Booking operations. Each flushes; the request or task commits.

The operations a learner or mentor asks for: holding a slot, cancelling, rescheduling, reviewing, calendar files and feeds. Their status changes go through `state_changes.transition`, a
compare-and-swap, so concurrent confirm, cancel, reschedule and expiry calls leave exactly one applied. The no-overlap invariant is held by the database (an exclusion
constraint on PostgreSQL, a trigger plus BEGIN IMMEDIATE on SQLite); the checks here give the caller a
precise answer, the constraint makes the answer true under races.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import asdict
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import Select, case, func, or_, select, update
from sqlalchemy.exc import IntegrityError

from marketplace.accounts.models import User
from marketplace.bookings import policy, signals
from marketplace.bookings.availability.service import SLOT_PROBLEM_MESSAGES as _PROBLEM_MESSAGES
from marketplace.bookings.availability.service import blocking_intervals
from marketplace.bookings.availability.service import live_clause as _live_clause
from marketplace.bookings.ics import ics_for
from marketplace.bookings.models import (
    LIVE_STATUSES,
    Booking,
    BookingStatus,
    CalendarFeed,
    RefundStatus,
    Review,
)
from marketplace.bookings.state_changes import (
    NOT_ACCEPTED,
    expire_lapsed_holds,
    lock_learner,
    lock_mentor_calendar,
    mentor_takes_bookings,
    transition,
)
from marketplace.core.db import commit_before_network_call, rows_matched
from marketplace.core.errors import Conflict, Forbidden, NotFound, TooManyRequests, Unprocessable
from marketplace.core.time import as_utc, utcnow
from marketplace.extensions import db
from marketplace.mentors.calendar_version import bump_calendar_versions
from marketplace.mentors.models import MentorProfile
from marketplace.scheduling.service import rules_for
from marketplace.scheduling.slots import AvailabilityRules, SlotProblem, check_slot

MENTOR_UNAVAILABLE = "The mentor is no longer taking bookings."


def _setting(name: str) -> int:
    return int(current_app.config[name])


# --- reading ---------------------------------------------------------------------------------------


def get_booking(user: User, booking_id: int) -> Booking:
    booking = db.session.get(Booking, booking_id)
    if booking is None or not booking.can_view(user):
        raise NotFound("No such booking.")
    return booking


def admin_bookings(filters: dict[str, Any]) -> Select[Booking]:
    """Every booking, for the admins: by `status`, `mentor_id`, `learner_id` and `disputed` (open disputes)."""
    stmt = select(Booking)
    for name in ("status", "mentor_id", "learner_id"):
        if filters.get(name) is not None:
            stmt = stmt.where(getattr(Booking, name) == filters[name])
    if filters.get("disputed") is not None:
        chargeback = Booking.disputed_at.is_not(None) & Booking.dispute_closed_at.is_(None)
        reports = Booking.report_dispute_at.is_not(None) & Booking.report_dispute_resolved_at.is_(None)
        open_dispute = or_(chargeback, reports)
        stmt = stmt.where(open_dispute if filters["disputed"] else ~open_dispute)
    return stmt.order_by(Booking.start_at.desc(), Booking.id.desc())


def list_bookings(user: User, role: str | None, status: str | None) -> Select[Booking]:
    stmt = select(Booking).join(Booking.mentor)
    as_learner = Booking.learner_id == user.id
    as_mentor = MentorProfile.user_id == user.id
    if role == "learner":
        stmt = stmt.where(as_learner)
    elif role == "mentor":
        stmt = stmt.where(as_mentor)
    else:
        stmt = stmt.where(or_(as_learner, as_mentor))
    if status:
        stmt = stmt.where(Booking.status == status)
    return stmt.order_by(Booking.start_at.desc(), Booking.id.desc())


# --- creating --------------------------------------------------------------------------------------


def _check_slot_or_raise(
    profile: MentorProfile, start: datetime, duration: int, now: datetime, exclude_id: int | None = None
) -> AvailabilityRules:
    """The rules `start` was checked against (their buffer widens the booking)."""
    rules = rules_for(profile)
    if rules is None:
        raise Unprocessable("This mentor has not published any availability.")
    span = timedelta(minutes=duration + rules.buffer_minutes)
    busy = blocking_intervals(
        profile.id, start - timedelta(days=1), start + span + timedelta(days=1), now, exclude_id
    )
    problem = check_slot(rules, busy, now, start, duration)
    if problem is SlotProblem.BUSY:
        raise Conflict(_PROBLEM_MESSAGES[problem])
    if problem is not None:
        raise Unprocessable(_PROBLEM_MESSAGES[problem], {"start": [problem.value]})
    return rules


def _flush_or_conflict() -> None:
    try:
        with db.session.begin_nested():
            db.session.flush()
    except IntegrityError as exc:
        raise Conflict(_PROBLEM_MESSAGES[SlotProblem.BUSY]) from exc


def create_booking(
    learner: User, mentor_id: int, start: datetime, duration_minutes: int, topic: str
) -> Booking:
    """Hold a slot for the learner, with a PaymentIntent to pay for it; committed (see below)."""
    profile = db.session.get(MentorProfile, mentor_id)
    if profile is None:
        raise NotFound("No such mentor.")
    if not profile.is_public:
        raise Unprocessable("This mentor is not taking bookings.", {"mentor_id": ["Not an approved mentor."]})
    if profile.user_id == learner.id:
        raise Unprocessable("You cannot book yourself.", {"mentor_id": ["This is your own profile."]})
    now = utcnow()
    start = as_utc(start)
    lock_mentor_calendar(profile.id)  # the lock order (bookings/models.py): mentor, then learner
    lock_learner(learner.id)
    if not mentor_takes_bookings(profile.id):  # suspended while this request waited for the lock
        raise Unprocessable("This mentor is not taking bookings.", {"mentor_id": ["Not an approved mentor."]})
    unpaid = db.session.execute(
        select(func.count())
        .select_from(Booking)
        .where(
            Booking.learner_id == learner.id,
            Booking.status == BookingStatus.PENDING_PAYMENT.value,
            Booking.hold_expires_at > now,
        )
    ).scalar_one()
    if unpaid >= _setting("MAX_UNPAID_HOLDS"):
        raise TooManyRequests("Pay for or cancel your unpaid bookings before holding another slot.")
    expire_lapsed_holds(now, mentor_id=profile.id)
    end = start + timedelta(minutes=duration_minutes)
    _refuse_recent_release(learner, profile.id, start, end, now)
    rules = _check_slot_or_raise(profile, start, duration_minutes, now)
    booking = Booking(
        mentor=profile,
        learner=learner,
        status=BookingStatus.PENDING_PAYMENT.value,
        start_at=start,
        end_at=end,
        blocked_until=end + timedelta(minutes=rules.buffer_minutes),
        duration_minutes=duration_minutes,
        topic=topic,
        price_cents=policy.session_price_cents(profile.price_cents or 0, duration_minutes),
        currency=profile.currency or "USD",
        hold_expires_at=now + timedelta(minutes=_setting("BOOKING_HOLD_MINUTES")),
    )
    db.session.add(booking)
    _flush_or_conflict()
    bump_calendar_versions([profile.id])
    openers = [opener for _receiver, opener in signals.payment_needed.send(booking.id) if opener]
    if not openers:
        raise RuntimeError("No receiver opens PaymentIntents: a hold must not exist without one.")
    # The hold commits before its PaymentIntent is made, so no lock waits on Stripe (the one commit inside a
    # service: core.db.commit_before_network_call). The payments module then opens the intent in units of its
    # own, or withdraws the hold and raises (503) when Stripe cannot make it: no slot stays held without a way
    # to pay for it.
    commit_before_network_call()
    for open_payment in openers:
        open_payment()
    return booking


def _refuse_recent_release(
    learner: User, mentor_id: int, start: datetime, end: datetime, now: datetime
) -> None:
    """409 when the learner let go of an unpaid hold on this time of the mentor (cancelled it, or let it
    lapse) less than `HOLD_REHOLD_COOLDOWN_MINUTES` ago: otherwise cancel-and-hold-again would keep a slot
    held forever without paying."""
    cooldown = timedelta(minutes=_setting("HOLD_REHOLD_COOLDOWN_MINUTES"))
    since = now - cooldown
    released = db.session.execute(
        select(Booking.cancelled_at, Booking.hold_expires_at).where(
            Booking.learner_id == learner.id,
            Booking.mentor_id == mentor_id,
            Booking.confirmed_at.is_(None),
            Booking.start_at < end,
            Booking.end_at > start,
            or_(
                (Booking.status == BookingStatus.CANCELLED.value)
                & (Booking.cancelled_by_id == learner.id)
                & (Booking.cancelled_at > since),
                (Booking.status == BookingStatus.EXPIRED.value) & (Booking.hold_expires_at > since),
            ),
        )
    ).all()
    if released:
        last = max(as_utc(row.cancelled_at or row.hold_expires_at) for row in released)
        raise Conflict(
            f"You let go of this time recently; you can hold it again from {last + cooldown:%H:%M} UTC, "
            "or choose another time.",
            {"start": ["Released by you recently."]},
        )


def cancel_booking(user: User, booking_id: int, reason: str | None) -> Booking:
    booking = get_booking(user, booking_id)
    if not booking.is_participant(user):
        raise Forbidden("Only the learner or the mentor of a booking can cancel it.")
    now = utcnow()
    # The refund depends on the state; if a payment confirms the booking meanwhile, look again.
    for _attempt in range(3):
        if not booking.can_cancel(user):
            raise Conflict(f"A booking that is {booking.status} cannot be cancelled.")
        terms = _cancellation_terms(booking, user, now)
        if not terms.allowed:
            raise Conflict(terms.reason)
        won = transition(
            booking,
            BookingStatus.CANCELLED,
            only_from=(booking.state,),
            # A request its mentor accepted is being charged: it is confirmed (then cancellable) in a moment.
            where=(or_(Booking.status != BookingStatus.AWAITING_MENTOR.value, *NOT_ACCEPTED),),
            cancelled_at=now,
            cancelled_by_id=user.id,
            cancel_reason=reason,
            refund_amount_cents=terms.refund_cents,
            refund_status=(RefundStatus.PENDING if terms.refund_cents else RefundStatus.NONE).value,
            sequence=Booking.sequence + 1,
        )
        if won:
            signals.booking_cancelled.send(booking.id)
            return booking
    raise Conflict("The booking kept changing; reload it and try again.")


def _cancellation_terms(booking: Booking, user: User, now: datetime) -> policy.CancellationTerms:
    """Nothing was charged before a booking is confirmed (a request's card is only authorized): letting it
    go is always allowed and refunds nothing."""
    if booking.state is not BookingStatus.CONFIRMED:
        return policy.CancellationTerms(True, 0, "Nothing has been charged for this booking.")
    return policy.cancellation_terms(
        paid_cents=booking.price_cents,
        cancelled_by_mentor=booking.is_mentor(user),
        now=now,
        start=booking.start_at,
        full_refund_hours=_setting("CANCELLATION_FULL_REFUND_HOURS"),
        notice_hours=booking.mentor.cancel_notice_hours,
    )


def cancellation_preview(user: User, booking_id: int) -> dict[str, object]:
    """What `cancel_booking` would do now, by the same rules, for the learner to see before confirming."""
    booking = get_booking(user, booking_id)
    if not booking.can_cancel(user):
        terms = policy.CancellationTerms(False, 0, f"A booking that is {booking.status} cannot be cancelled.")
    else:
        terms = _cancellation_terms(booking, user, utcnow())
    return {**asdict(terms), "currency": booking.currency}


def reschedule_refusal(booking: Booking, now: datetime) -> str | None:
    """Why `booking` cannot be moved now, or None: asked by the move itself and by the page offering it."""
    default = _setting("CANCELLATION_FULL_REFUND_HOURS")
    return policy.reschedule_refusal(now, booking.start_at, booking.mentor.reschedule_notice_hours, default)


def reschedule_booking(user: User, booking_id: int, new_start: datetime) -> Booking:
    booking = get_booking(user, booking_id)
    if not booking.is_participant(user):
        raise Forbidden("Only the learner or the mentor of a booking can reschedule it.")
    if not booking.can_reschedule(user):
        raise Conflict(f"A booking that is {booking.status} cannot be rescheduled.")
    now = utcnow()
    refusal = reschedule_refusal(booking, now)
    if refusal:
        raise Conflict(refusal)
    new_start = as_utc(new_start)
    lock_mentor_calendar(booking.mentor_id)
    expire_lapsed_holds(now, mentor_id=booking.mentor_id)
    rules = _check_slot_or_raise(booking.mentor, new_start, booking.duration_minutes, now, booking.id)
    new_end = new_start + timedelta(minutes=booking.duration_minutes)
    old_start = booking.start_at
    try:
        with db.session.begin_nested():
            matched = rows_matched(
                update(Booking)
                .where(
                    Booking.id == booking.id, Booking.status.in_(LIVE_STATUSES), Booking.start_at == old_start
                )
                .values(
                    start_at=new_start,
                    end_at=new_end,
                    blocked_until=new_end + timedelta(minutes=rules.buffer_minutes),
                    # A hold or a request to answer never outlives the session's start.
                    hold_expires_at=case(
                        (Booking.hold_expires_at > new_start, new_start), else_=Booking.hold_expires_at
                    ),
                    sequence=Booking.sequence + 1,
                    updated_at=now,
                )
                .execution_options(synchronize_session=False)
            )
    except IntegrityError as exc:
        raise Conflict(_PROBLEM_MESSAGES[SlotProblem.BUSY]) from exc
    db.session.refresh(booking)
    if matched != 1:
        raise Conflict("The booking changed meanwhile; reload it and try again.")
    bump_calendar_versions([booking.mentor_id])
    signals.booking_rescheduled.send(booking.id)
    return booking


def add_review(user: User, booking_id: int, rating: int, comment: str | None) -> Review:
    booking = get_booking(user, booking_id)
    if not booking.is_learner(user):
        raise Forbidden("Only the learner of a booking can review it.")
    if not booking.can_review(user):
        raise Conflict("Only completed sessions can be reviewed.")
    review = Review(
        booking_id=booking.id, mentor_id=booking.mentor_id, learner_id=user.id, rating=rating, comment=comment
    )
    try:
        with db.session.begin_nested():
            db.session.add(review)
    except IntegrityError as exc:
        raise Conflict("This session has already been reviewed.") from exc
    # One UPDATE, so concurrent reviews of the same mentor serialize on the row and none is lost.
    db.session.execute(
        update(MentorProfile)
        .where(MentorProfile.id == booking.mentor_id)
        .values(
            rating_avg=(func.coalesce(MentorProfile.rating_avg, 0) * MentorProfile.rating_count + rating)
            / (MentorProfile.rating_count + 1),
            rating_count=MentorProfile.rating_count + 1,
        )
        .execution_options(synchronize_session=False)
    )
    db.session.refresh(booking.mentor)
    return review


# --- calendars -------------------------------------------------------------------------------------


def booking_calendar(user: User, booking_id: int) -> bytes:
    return ics_for([get_booking(user, booking_id)], utcnow())


def _feed_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def rotate_calendar_feed(user: User) -> str:
    """Issue a new secret feed token for the caller's mentor profile; the old URL stops working."""
    profile = db.session.scalar(select(MentorProfile).where(MentorProfile.user_id == user.id))
    if profile is None:
        raise NotFound("You have no mentor profile.")
    token = secrets.token_urlsafe(32)
    feed = db.session.scalar(select(CalendarFeed).where(CalendarFeed.mentor_id == profile.id))
    if feed is None:
        db.session.add(CalendarFeed(mentor_id=profile.id, token_hash=_feed_digest(token)))
    else:
        feed.token_hash = _feed_digest(token)
    db.session.flush()
    return token


def feed_calendar(token: str) -> bytes:
    feed = db.session.scalar(select(CalendarFeed).where(CalendarFeed.token_hash == _feed_digest(token)))
    if feed is None:
        raise NotFound("No such calendar.")
    now = utcnow()
    bookings = db.session.scalars(
        select(Booking)
        .where(
            Booking.mentor_id == feed.mentor_id, _live_clause(now), Booking.end_at > now - timedelta(days=30)
        )
        .order_by(Booking.start_at)
    )
    return ics_for(bookings, now, name="Mentoring sessions")
