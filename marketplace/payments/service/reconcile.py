"""Reconciliation: asking Stripe about lapsed holds no webhook settled, so a lost webhook never loses a paid
booking; and withdrawing holds a crash left without a PaymentIntent.

One short unit per booking (`run_in_unit`, retried on its own), and Stripe asked with no transaction open: a
booking whose unit fails is counted and left for the next run, and holds up nobody.
"""

from __future__ import annotations

import logging
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, or_, select

from marketplace.bookings import state_changes
from marketplace.bookings.models import Booking, BookingStatus
from marketplace.core.db import run_in_unit
from marketplace.core.time import utcnow
from marketplace.extensions import db
from marketplace.payments.gateway import Intent, PaymentProviderUnavailable, PaymentRejected, gateway
from marketplace.payments.service.events import settle_paid_booking
from marketplace.payments.service.refunds import locked_booking

log = logging.getLogger(__name__)

# Lapsed holds are left this long for an in-flight webhook before reconciliation asks Stripe itself.
RECONCILE_GRACE = timedelta(minutes=2)
RECONCILE_WINDOW = timedelta(hours=24)
_CANCELLABLE_INTENT = {
    "requires_payment_method",
    "requires_confirmation",
    "requires_action",
    "requires_capture",
}


def _unsettled(now: datetime) -> tuple[Any, ...]:
    return (
        Booking.payment_intent_id.is_not(None),
        Booking.payment_reconciled_at.is_(None),
        or_(
            (Booking.status == BookingStatus.PENDING_PAYMENT.value)
            & (Booking.hold_expires_at <= now - RECONCILE_GRACE),
            (Booking.status == BookingStatus.EXPIRED.value) & (Booking.updated_at >= now - RECONCILE_WINDOW),
        ),
    )


def unsettled_holds(now: datetime, limit: int = 100) -> list[int]:
    """Lapsed holds no webhook settled, oldest first."""
    return list(
        db.session.scalars(select(Booking.id).where(*_unsettled(now)).order_by(Booking.id).limit(limit))
    )


def reconcile_payments(limit: int = 100) -> dict[str, int]:
    """Ask Stripe about lapsed holds no webhook settled, so a lost webhook never loses a paid booking; and
    withdraw holds a crash left without a PaymentIntent. Returns how many ended how.

    One short unit per booking, retried on its own: one that fails (a deadlock past its retries, a Stripe
    error) is counted and left for the next run, and neither rolls back nor holds up the others. Stripe is
    asked with no transaction open; the answer is applied under the locks after checking the booking again.
    """
    now = utcnow()
    counts: Counter[str] = Counter()
    for booking_id in run_in_unit(unsettled_holds, now, limit):
        try:
            counts[reconcile_one(booking_id, now)] += 1
        except Exception:
            log.exception("reconciling booking %s failed; the next run tries again", booking_id)
            counts["failed"] += 1
    for booking_id in run_in_unit(state_changes.unopened_holds, now - RECONCILE_GRACE):
        try:
            counts["withdrawn"] += run_in_unit(state_changes.withdraw_unopened_hold, booking_id)
        except Exception:
            log.exception("withdrawing hold %s failed; the next run tries again", booking_id)
            counts["failed"] += 1
    return {outcome: count for outcome, count in counts.items() if count}


def _intent_to_check(booking_id: int, now: datetime) -> str | None:
    return db.session.scalar(
        select(Booking.payment_intent_id).where(Booking.id == booking_id, *_unsettled(now))
    )


def reconcile_one(booking_id: int, now: datetime) -> str:
    """Read the booking's intent, ask Stripe about it (cancelling one still unpaid), apply the answer."""
    intent_id = run_in_unit(_intent_to_check, booking_id, now)
    if intent_id is None:
        return "settled meanwhile"
    try:
        intent: Intent = gateway().retrieve_intent(intent_id)
        if intent.status in _CANCELLABLE_INTENT:
            intent = gateway().cancel_intent(intent.id)
    except PaymentProviderUnavailable:
        return "provider unavailable"
    except PaymentRejected:
        return "rejected"
    if intent.status == "processing":
        return "processing"
    return run_in_unit(_apply_reconciled, booking_id, intent_id, intent.status, now)


def _apply_reconciled(booking_id: int, intent_id: str, status: str, now: datetime) -> str:
    booking = locked_booking(
        (Booking.id == booking_id) & (Booking.payment_intent_id == intent_id) & and_(*_unsettled(now))
    )
    if booking is None:
        return "settled meanwhile"
    booking.payment_reconciled_at = utcnow()
    if status == "succeeded":
        return settle_paid_booking(booking)
    state_changes.expire_lapsed_holds(mentor_id=booking.mentor_id)
    return "expired"
