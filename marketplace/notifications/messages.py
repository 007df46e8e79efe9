"""What each message says and to whom: one composer per kind, reading the rows afresh at send time.

A composer returns the letters of one event (one per recipient), or none when the event no longer holds (a
confirmation for a booking cancelled meanwhile). Every time is shown in the recipient's own zone. The
messages of the money lifecycle (receipts, no-shows) are composed in `money`.
"""

from __future__ import annotations

from flask import current_app
from sqlalchemy.orm import lazyload

from marketplace.accounts import links
from marketplace.accounts.models import User
from marketplace.bookings.models import LIVE_STATUSES, BookingStatus
from marketplace.core.money import format_money
from marketplace.core.time import utcnow
from marketplace.extensions import db
from marketplace.mentors.models import MentorProfile, VettingEvent
from marketplace.mentors.vetting import RevisionAction, VettingStatus
from marketplace.notifications.letters import (
    Composer,
    Kind,
    Letter,
    admins,
    booking_in,
    booking_letters,
    load_booking,
    participants,
)
from marketplace.notifications.models import Reminder
from marketplace.notifications.money import MONEY_COMPOSERS

__all__ = ["COMPOSERS", "REVISION_KINDS", "VETTING_KINDS", "Kind", "Letter", "compose"]

VETTING_KINDS = {
    VettingStatus.PENDING_REVIEW.value: Kind.APPLICATION_RECEIVED,
    VettingStatus.APPROVED.value: Kind.APPLICATION_APPROVED,
    VettingStatus.CHANGES_REQUESTED.value: Kind.CHANGES_REQUESTED,
    VettingStatus.REJECTED.value: Kind.APPLICATION_REJECTED,
    VettingStatus.SUSPENDED.value: Kind.PROFILE_SUSPENDED,
}
REVISION_KINDS = {
    RevisionAction.APPROVE.value: Kind.REVISION_APPROVED,
    RevisionAction.REJECT.value: Kind.REVISION_REJECTED,
}


# --- composers --------------------------------------------------------------------------------------


def _welcome(user_id: int, _version: int) -> list[Letter]:
    """With the link that verifies the address, unless it was verified meanwhile. Links are signed here, at
    send time: no secret waits in the outbox, and a link's age counts from the mail."""
    user = db.session.get(User, user_id, options=[lazyload(User.role_rows)])
    if user is None:
        return []
    context = {
        "verification_link": None if user.email_verified else links.verification_url(user),
        "hours": current_app.config["EMAIL_VERIFICATION_LINK_HOURS"],
    }
    return [Letter(user, "Welcome to Mentor marketplace", "welcome", context)]


def _password_reset(user_id: int, _version: int) -> list[Letter]:
    user = db.session.get(User, user_id, options=[lazyload(User.role_rows)])
    if user is None or not user.is_active:
        return []
    minutes = current_app.config["PASSWORD_RESET_LINK_MINUTES"]
    context = {"link": links.password_reset_url(user), "minutes": minutes}
    return [Letter(user, "Reset your Mentor marketplace password", "password_reset", context)]


_VETTING_SUBJECTS = {
    VettingStatus.PENDING_REVIEW.value: "We received your mentor application",
    VettingStatus.APPROVED.value: "Your mentor profile is live",
    VettingStatus.CHANGES_REQUESTED.value: "Changes requested to your mentor profile",
    VettingStatus.REJECTED.value: "Your mentor application was not accepted",
    VettingStatus.SUSPENDED.value: "Your mentor profile is suspended",
}


def _vetting(event_id: int, _version: int) -> list[Letter]:
    event = db.session.get(VettingEvent, event_id)
    profile = db.session.get(MentorProfile, event.profile_id) if event else None
    if event is None or profile is None:
        return []
    context = {
        "status": event.to_status,
        "note": event.note,
        "reinstated": event.from_status == VettingStatus.SUSPENDED.value,
    }
    return [Letter(profile.user, _VETTING_SUBJECTS[event.to_status], "vetting", context)]


def _revision(event_id: int, _version: int) -> list[Letter]:
    event = db.session.get(VettingEvent, event_id)
    profile = db.session.get(MentorProfile, event.profile_id) if event else None
    if event is None or profile is None:
        return []
    approved = event.decision == RevisionAction.APPROVE.value
    subject = "Your profile changes are live" if approved else "Your profile changes were not accepted"
    return [Letter(profile.user, subject, "revision", {"approved": approved, "note": event.note})]


def _held(booking_id: int, _version: int) -> list[Letter]:
    booking = booking_in(booking_id, BookingStatus.PENDING_PAYMENT.value)
    if booking is None:
        return []
    return booking_letters(
        booking,
        [booking.learner],
        lambda c: f"Pay by {c['hold_expires']} to keep your session",
        "booking_held",
    )


def _confirmed(booking_id: int, _version: int) -> list[Letter]:
    booking = booking_in(booking_id, BookingStatus.CONFIRMED.value)
    if booking is None:
        return []
    return booking_letters(
        booking,
        participants(booking),
        lambda c: f"Confirmed: mentoring session with {c['other']}, {c['start']}",
        "booking_confirmed",
        invite_method="REQUEST",
    )


def _cancelled(booking_id: int, _version: int) -> list[Letter]:
    booking = booking_in(booking_id, BookingStatus.CANCELLED.value)
    if booking is None:
        return []
    refund = booking.refund_amount_cents or 0
    return booking_letters(
        booking,
        participants(booking),
        lambda c: f"Cancelled: mentoring session with {c['other']}, {c['start']}",
        "booking_cancelled",
        # Only a confirmed booking was sent as an invite; the cancellation takes it off the calendar.
        invite_method="CANCEL" if booking.confirmed_at else None,
        refund=format_money(refund, booking.currency) if refund else None,
        cancelled_by_learner=booking.cancelled_by_id == booking.learner_id,
    )


def _rescheduled(booking_id: int, version: int) -> list[Letter]:
    booking = booking_in(booking_id, *LIVE_STATUSES)
    # A later reschedule sends its own message with the newer time; this one would only repeat it.
    if booking is None or booking.sequence != version:
        return []
    confirmed = booking.status == BookingStatus.CONFIRMED.value
    return booking_letters(
        booking,
        participants(booking),
        lambda c: f"New time: mentoring session with {c['other']}, {c['start']}",
        "booking_rescheduled",
        invite_method="REQUEST" if confirmed else None,
    )


def _hold_expired(booking_id: int, _version: int) -> list[Letter]:
    booking = booking_in(booking_id, BookingStatus.EXPIRED.value)
    if booking is None:
        return []
    subject = (
        "Your request was not answered in time"
        if booking.authorized_at
        else "Your unpaid booking was released"
    )
    return booking_letters(booking, [booking.learner], lambda c: subject, "hold_expired")


def _requested(booking_id: int, _version: int) -> list[Letter]:
    """The mentor is asked to answer by the deadline; the learner learns their card is only authorized."""
    booking = booking_in(booking_id, BookingStatus.AWAITING_MENTOR.value)
    if booking is None:
        return []
    return booking_letters(
        booking,
        participants(booking),
        lambda c: f"Request: mentoring session with {c['other']}, {c['start']}",
        "booking_requested",
    )


def _declined(booking_id: int, _version: int) -> list[Letter]:
    booking = booking_in(booking_id, BookingStatus.DECLINED.value)
    if booking is None:
        return []
    return booking_letters(
        booking, [booking.learner], lambda c: f"{c['other']} declined your request", "booking_declined"
    )


def _payment_failed(booking_id: int, _version: int) -> list[Letter]:
    booking = load_booking(booking_id)
    if booking is None:
        return []
    held = booking.status == BookingStatus.PENDING_PAYMENT.value and booking.hold_expires_at > utcnow()
    return booking_letters(
        booking,
        [booking.learner],
        lambda c: f"Payment failed for your session with {c['other']}",
        "payment_failed",
        can_retry=held,
    )


def _late_payment_refunded(booking_id: int, _version: int) -> list[Letter]:
    booking = load_booking(booking_id)
    if booking is None:
        return []
    refund = format_money(booking.refund_amount_cents or booking.price_cents, booking.currency)
    return booking_letters(
        booking,
        [booking.learner],
        lambda c: "Your payment arrived after the slot was taken: full refund",
        "late_payment_refunded",
        refund=refund,
    )


def _disputed(booking_id: int, _version: int) -> list[Letter]:
    booking = load_booking(booking_id)
    if booking is None:
        return []
    return booking_letters(
        booking, admins(), lambda c: f"Payment disputed: booking {booking.id}", "booking_disputed"
    )


def _review_request(booking_id: int, _version: int) -> list[Letter]:
    booking = booking_in(booking_id, BookingStatus.COMPLETED.value)
    if booking is None:
        return []
    return booking_letters(
        booking, [booking.learner], lambda c: f"How was your session with {c['other']}?", "review_request"
    )


def _reminder(reminder_id: int, _version: int) -> list[Letter]:
    reminder = db.session.get(Reminder, reminder_id)
    booking = load_booking(reminder.booking_id) if reminder else None
    # Usually one of the booking's people, already in the session: no query.
    recipient = (
        db.session.get(User, reminder.user_id, options=[lazyload(User.role_rows)]) if reminder else None
    )
    if reminder is None or booking is None or recipient is None:
        return []
    hours, minutes = divmod(reminder.offset_minutes, 60)
    lead = f"{hours} hour{'s' if hours != 1 else ''}" if not minutes else f"{reminder.offset_minutes} minutes"
    return booking_letters(
        booking,
        [recipient],
        lambda c: f"Reminder: mentoring session with {c['other']} in {lead}",
        "reminder",
        lead=lead,
    )


COMPOSERS: dict[Kind, Composer] = {
    Kind.WELCOME: _welcome,
    Kind.PASSWORD_RESET: _password_reset,
    Kind.APPLICATION_RECEIVED: _vetting,
    Kind.APPLICATION_APPROVED: _vetting,
    Kind.CHANGES_REQUESTED: _vetting,
    Kind.APPLICATION_REJECTED: _vetting,
    Kind.PROFILE_SUSPENDED: _vetting,
    Kind.REVISION_APPROVED: _revision,
    Kind.REVISION_REJECTED: _revision,
    Kind.BOOKING_HELD: _held,
    Kind.BOOKING_CONFIRMED: _confirmed,
    Kind.BOOKING_CANCELLED: _cancelled,
    Kind.BOOKING_RESCHEDULED: _rescheduled,
    Kind.HOLD_EXPIRED: _hold_expired,
    Kind.BOOKING_REQUESTED: _requested,
    Kind.BOOKING_DECLINED: _declined,
    Kind.PAYMENT_FAILED: _payment_failed,
    Kind.LATE_PAYMENT_REFUNDED: _late_payment_refunded,
    Kind.BOOKING_DISPUTED: _disputed,
    Kind.REVIEW_REQUEST: _review_request,
    Kind.REMINDER: _reminder,
    **MONEY_COMPOSERS,
}


def compose(kind: Kind, object_id: int, version: int) -> list[Letter]:
    return COMPOSERS[kind](object_id, version)
