"""What a message is made of: its kind, its letters (one per recipient), and the booking facts every booking
message shows, each time in the recipient's own zone. Shared by the composers of `messages` and `money`."""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import select
from sqlalchemy.orm import defaultload

from marketplace.accounts.models import Role, User, UserRole
from marketplace.bookings.ics import ics_for
from marketplace.bookings.models import Booking
from marketplace.core.money import format_money
from marketplace.core.time import utcnow
from marketplace.extensions import db
from marketplace.mentors.models import MentorProfile


class Kind(enum.StrEnum):
    WELCOME = "welcome"
    PASSWORD_RESET = "password_reset"
    APPLICATION_RECEIVED = "application_received"
    APPLICATION_APPROVED = "application_approved"
    CHANGES_REQUESTED = "changes_requested"
    APPLICATION_REJECTED = "application_rejected"
    PROFILE_SUSPENDED = "profile_suspended"
    REVISION_APPROVED = "revision_approved"
    REVISION_REJECTED = "revision_rejected"
    BOOKING_HELD = "booking_held"
    BOOKING_CONFIRMED = "booking_confirmed"
    BOOKING_CANCELLED = "booking_cancelled"
    BOOKING_RESCHEDULED = "booking_rescheduled"
    HOLD_EXPIRED = "hold_expired"
    BOOKING_REQUESTED = "booking_requested"
    BOOKING_DECLINED = "booking_declined"
    PAYMENT_FAILED = "payment_failed"
    LATE_PAYMENT_REFUNDED = "late_payment_refunded"
    BOOKING_DISPUTED = "booking_disputed"
    REVIEW_REQUEST = "review_request"
    REMINDER = "reminder"
    # The money lifecycle (`money`): receipts, no-show reports, strikes and report disputes.
    PAYMENT_RECEIPT = "payment_receipt"
    REFUND_RECEIPT = "refund_receipt"  # version 0: the booking's own refund; n: admin refund n
    NO_SHOW_REPORTED = "no_show_reported"
    REPORT_DISPUTE_OPENED = "report_dispute_opened"
    REPORT_DISPUTE_RESOLVED = "report_dispute_resolved"


@dataclass(frozen=True)
class Letter:
    recipient: User
    subject: str
    template: str  # templates/<template>.txt and .html
    context: dict[str, Any] = field(default_factory=dict)
    invite: bytes | None = None  # an .ics calendar whose METHOD is `invite_method`
    invite_method: str | None = None


Composer = Callable[[int, int], list[Letter]]


# --- formatting in the recipient's zone -------------------------------------------------------------


def zone_of(user: User) -> ZoneInfo:
    try:
        return ZoneInfo(user.timezone or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def local_time(moment: datetime, zone: ZoneInfo) -> str:
    """'Thursday, 7 January 2027, 4:00 AM EST (America/New_York)': the zone's abbreviation and its name."""
    local = moment.astimezone(zone)
    hour = local.hour % 12 or 12
    text = f"{local:%A}, {local.day} {local:%B %Y}, {hour}:{local:%M %p} {local:%Z}"
    return text if local.tzname() == zone.key else f"{text} ({zone.key})"


# --- booking letters ---------------------------------------------------------------------------------


def booking_context(booking: Booking, recipient: User) -> dict[str, Any]:
    zone = zone_of(recipient)
    as_learner = recipient.id == booking.learner_id
    return {
        "booking": booking,
        "role": "learner"
        if as_learner
        else ("mentor" if recipient.id == booking.mentor.user_id else "admin"),
        "other": booking.mentor.name if as_learner else booking.learner.name,
        "start": local_time(booking.start_at, zone),
        "end": local_time(booking.end_at, zone),
        "hold_expires": local_time(booking.hold_expires_at, zone),
        "price": format_money(booking.price_cents, booking.currency),
    }


def participants(booking: Booking) -> list[User]:
    return [booking.learner, booking.mentor.user]


def admins() -> list[User]:
    return list(
        db.session.scalars(
            select(User).join(UserRole).where(UserRole.role == Role.ADMIN.value).order_by(User.id)
        )
    )


def booking_letters(
    booking: Booking,
    recipients: list[User],
    subject: Callable[[dict[str, Any]], str],
    template: str,
    invite_method: str | None = None,
    **extra: Any,
) -> list[Letter]:
    invite = ics_for([booking], utcnow(), method=invite_method) if invite_method else None
    letters = []
    for user in recipients:
        context = {**booking_context(booking, user), **extra}
        letters.append(Letter(user, subject(context), template, context, invite, invite_method))
    return letters


# A message needs the booking and its two people, not their tags or roles (eager by default on the models).
_LEAN_BOOKING = (
    defaultload(Booking.mentor).lazyload(MentorProfile.tags),
    defaultload(Booking.mentor).defaultload(MentorProfile.user).lazyload(User.role_rows),
    defaultload(Booking.learner).lazyload(User.role_rows),
)


def load_booking(booking_id: int) -> Booking | None:
    return db.session.get(Booking, booking_id, options=_LEAN_BOOKING)


def booking_in(booking_id: int, *statuses: str) -> Booking | None:
    booking = load_booking(booking_id)
    return booking if booking is not None and booking.status in statuses else None
