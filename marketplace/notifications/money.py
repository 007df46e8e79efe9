"""Messages of the money lifecycle: receipts of payments and refunds, no-show reports (with the strike they
count), and disputed reports opened and resolved. Composed from the rows at send time, like every message;
the refunds admins made are the payments module's rows, which it hands over on `manual_refunds_wanted`.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from flask import current_app

from marketplace.bookings import no_shows, signals
from marketplace.bookings.models import Booking, BookingStatus, NoShowParty, RefundStatus
from marketplace.bookings.signals import ManualRefund
from marketplace.core.money import format_money
from marketplace.core.time import utcnow
from marketplace.notifications.letters import (
    Composer,
    Kind,
    Letter,
    admins,
    booking_letters,
    load_booking,
    local_time,
    participants,
    zone_of,
)


def manual_refunds(booking_id: int) -> list[ManualRefund]:
    """The succeeded refunds admins made of the booking, as the payments module reports them."""
    found: list[ManualRefund] = []
    for _receiver, answer in signals.manual_refunds_wanted.send(booking_id):
        found.extend(refund for refund in answer or [] if refund.succeeded)
    return found


def _policy_refunded(booking: Booking) -> int:
    succeeded = booking.refund_status == RefundStatus.SUCCEEDED.value
    return booking.refund_amount_cents or 0 if succeeded else 0


def _money(booking: Booking, cents: int) -> str:
    return format_money(cents, booking.currency)


def _payment_receipt(booking_id: int, _version: int) -> list[Letter]:
    """The learner's receipt once the card is charged (paid at once, or captured when the mentor accepted)."""
    booking = load_booking(booking_id)
    if booking is None or booking.confirmed_at is None or not booking.payment_intent_id:
        return []
    paid_at = local_time(booking.confirmed_at, zone_of(booking.learner))
    return booking_letters(
        booking,
        [booking.learner],
        lambda c: f"Receipt: {c['price']} paid for your session with {c['other']}",
        "payment_receipt",
        paid_at=paid_at,
        accepted=booking.mentor_accepted_at is not None,
    )


def _policy_refund_reason(booking: Booking) -> str:
    if booking.no_show_party == NoShowParty.MENTOR.value:
        return "The mentor did not come to the session: you are refunded in full."
    if booking.confirmed_at is None:
        return "Your payment arrived after the session was no longer held for you: you are refunded in full."
    if booking.cancelled_by_id == booking.learner_id:
        why = "You cancelled the session; the refund follows the cancellation policy."
    elif booking.cancelled_by_id == booking.mentor.user_id:
        why = "The mentor cancelled the session: you are refunded in full."
    else:
        why = "The session was cancelled."
    return f"{why} Reason given: {booking.cancel_reason}" if booking.cancel_reason else why


def _refund_receipt(booking_id: int, version: int) -> list[Letter]:
    """One receipt per refund: version 0 is the booking's own refund (cancellation, mentor no-show, late
    payment), any other version the admin refund of that id. Sent only once the provider made it."""
    booking = load_booking(booking_id)
    if booking is None:
        return []
    by_hand = manual_refunds(booking_id)
    if version == 0:
        amount = _policy_refunded(booking)
        reference, reason = booking.refund_reference, _policy_refund_reason(booking)
    else:
        mine = [refund for refund in by_hand if refund.id == version]
        amount = mine[0].amount_cents if mine else 0
        reference = mine[0].reference if mine else None
        reason = mine[0].reason if mine else ""
    if amount <= 0:
        return []
    refunded = _policy_refunded(booking) + sum(refund.amount_cents for refund in by_hand)
    return booking_letters(
        booking,
        [booking.learner],
        lambda c: f"Refund receipt: {_money(booking, amount)} for your session with {c['other']}",
        "refund_receipt",
        amount=_money(booking, amount),
        remaining=_money(booking, max(0, booking.price_cents - refunded)),
        reference=reference,
        reason=reason,
    )


def _contest_deadline(booking: Booking) -> datetime:
    return booking.end_at + timedelta(hours=int(current_app.config["NO_SHOW_REPORT_HOURS"]))


def _strike_count(booking: Booking) -> dict[str, Any]:
    return {
        "strikes": len(no_shows.strikes(booking.mentor_id, utcnow())),
        "strike_limit": int(current_app.config["NO_SHOW_STRIKES_TO_SUSPEND"]),
        "strike_days": int(current_app.config["NO_SHOW_STRIKE_DAYS"]),
    }


def _no_show_reported(booking_id: int, _version: int) -> list[Letter]:
    """The party reported absent learns what the report settled and how to contest it (a report of their
    own against the reporter, within the window, which sends both to an admin)."""
    booking = load_booking(booking_id)
    if booking is None or booking.status != BookingStatus.NO_SHOW.value or booking.no_show_party is None:
        return []
    mentor_absent = booking.no_show_party == NoShowParty.MENTOR.value
    absent = booking.mentor.user if mentor_absent else booking.learner
    deadline = local_time(_contest_deadline(booking), zone_of(absent))
    extra: dict[str, Any] = _strike_count(booking) if mentor_absent else {}
    return booking_letters(
        booking,
        [absent],
        lambda c: f"No-show reported: your session with {c['other']}, {c['start']}",
        "no_show_reported",
        mentor_absent=mentor_absent,
        contest_until=deadline,
        reporter_role="learner" if mentor_absent else "mentor",
        **extra,
    )


def _report_dispute_opened(booking_id: int, _version: int) -> list[Letter]:
    booking = load_booking(booking_id)
    if booking is None or booking.report_dispute_at is None:
        return []
    return booking_letters(
        booking,
        [*participants(booking), *admins()],
        lambda c: f"No-show disputed: booking {booking.id}, {c['start']}",
        "report_dispute_opened",
    )


def _report_dispute_resolved(booking_id: int, _version: int) -> list[Letter]:
    booking = load_booking(booking_id)
    if booking is None or booking.report_dispute_resolved_at is None:
        return []
    mentor_absent = booking.report_dispute_outcome == NoShowParty.MENTOR.value
    return booking_letters(
        booking,
        [*participants(booking), *admins()],
        lambda c: f"No-show dispute decided: booking {booking.id}, {c['start']}",
        "report_dispute_resolved",
        mentor_absent=mentor_absent,
        **(_strike_count(booking) if mentor_absent else {}),
    )


MONEY_COMPOSERS: dict[Kind, Composer] = {
    Kind.PAYMENT_RECEIPT: _payment_receipt,
    Kind.REFUND_RECEIPT: _refund_receipt,
    Kind.NO_SHOW_REPORTED: _no_show_reported,
    Kind.REPORT_DISPUTE_OPENED: _report_dispute_opened,
    Kind.REPORT_DISPUTE_RESOLVED: _report_dispute_resolved,
}
