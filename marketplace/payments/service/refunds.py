"""Refunds, released holds' PaymentIntents and retried payments: the calls to Stripe that move money back
or replace an intent, each made once (idempotency keys) and never while a row lock is held."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import select

from marketplace.accounts.models import User
from marketplace.bookings import service as bookings
from marketplace.bookings import state_changes
from marketplace.bookings.models import Booking, BookingStatus, RefundStatus
from marketplace.core import outbox
from marketplace.core.celery import TransientError
from marketplace.core.errors import Conflict, Forbidden
from marketplace.extensions import db
from marketplace.payments import intents
from marketplace.payments.gateway import PaymentProviderUnavailable, PaymentRejected, gateway
from marketplace.payments.service.ledger import sync_ledger

log = logging.getLogger(__name__)

CANCEL_RELEASED_INTENT_TASK = "payments.cancel_released_intent"


def locked_booking(condition: Any) -> Booking | None:
    """The booking, locked for this transaction after its mentor's calendar, or None.

    Mentor first, then booking: the lock order of bookings/models.py, so a payment racing a reschedule
    or a new hold of the same mentor waits instead of deadlocking. `condition` is checked again under
    the lock: a sweep that chose the booking earlier sees whether it still qualifies.
    """
    found = db.session.execute(select(Booking.id, Booking.mentor_id).where(condition)).first()
    if found is None:
        return None
    state_changes.lock_mentor_calendar(found.mentor_id)
    return db.session.scalar(
        select(Booking).where(Booking.id == found.id, condition).with_for_update(of=Booking, key_share=True)
    )


def refund_duplicate(intent_id: str, amount: int, booking_id: int) -> None:
    """A second payment for a booking already settled (an intent it replaced was paid too): give it back."""
    if amount <= 0:
        return
    log.warning("refunding payment %s in full: duplicate payment for booking %s", intent_id, booking_id)
    try:
        gateway().refund(
            intent_id=intent_id, amount=amount, idempotency_key=f"intent:{intent_id}:orphan-refund"
        )
    except PaymentProviderUnavailable as exc:
        raise TransientError(str(exc)) from exc


def execute_refund(booking_id: int) -> str | None:
    """Carry out the refund the cancellation policy recorded, once (Stripe's idempotency key backs it up)."""
    booking = locked_booking(Booking.id == booking_id)
    if booking is None or booking.refund_status != RefundStatus.PENDING.value or booking.refund_reference:
        return None
    if not booking.payment_intent_id or not booking.refund_amount_cents:
        booking.refund_status = RefundStatus.NONE.value
        return "nothing to refund"
    try:
        result = gateway().refund(
            intent_id=booking.payment_intent_id,
            amount=booking.refund_amount_cents,
            idempotency_key=f"booking:{booking.id}:refund",
        )
    except PaymentProviderUnavailable as exc:
        raise TransientError(str(exc)) from exc
    except PaymentRejected as exc:
        booking.refund_status = RefundStatus.FAILED.value
        log.error("refund of booking %s refused: %s", booking.id, exc)
        return "refused"
    booking.refund_reference = result.id
    if result.status == "succeeded":
        booking.refund_status = RefundStatus.SUCCEEDED.value
        sync_ledger(booking)
    return result.status


def on_booking_cancelled(booking_id: int) -> None:
    """A paid booking gets the refund its cancellation recorded; an unpaid hold has its intent cancelled."""
    booking = db.session.get(Booking, booking_id)
    if booking is None:
        return
    if booking.refund_status == RefundStatus.PENDING.value:
        outbox.enqueue("payments.execute_refund", booking_id=booking_id)
    elif booking.confirmed_at is None:
        on_hold_released(booking_id)


def on_hold_released(booking_id: int) -> None:
    """An unpaid hold was cancelled or lapsed: cancel its PaymentIntent at Stripe after the commit, so it can
    no longer be paid (and no lock is held while Stripe answers)."""
    outbox.enqueue(CANCEL_RELEASED_INTENT_TASK, booking_id=booking_id)


def released_intent(booking_id: int) -> str | None:
    """The PaymentIntent of a hold let go unpaid (cancelled or expired), if it has one."""
    return db.session.scalar(
        select(Booking.payment_intent_id).where(
            Booking.id == booking_id,
            Booking.status.in_((BookingStatus.CANCELLED.value, BookingStatus.EXPIRED.value)),
            Booking.confirmed_at.is_(None),
        )
    )


def cancel_released_intent(intent_id: str) -> str:
    """Cancel a released hold's PaymentIntent at Stripe; call it with no transaction open.

    One already paid, processing or cancelled cannot be cancelled, and that is fine: a payment that lands
    on a released hold is refunded in full when its event arrives (`settle_paid_booking`).
    """
    try:
        intent = gateway().cancel_intent(intent_id)
    except PaymentRejected:
        return "not cancellable"
    except PaymentProviderUnavailable as exc:
        raise TransientError(str(exc)) from exc
    return intent.status


def retry_payment(user: User, booking_id: int) -> Booking:
    """A fresh PaymentIntent for a held booking, e.g. after a declined card; the old one is cancelled."""
    booking = bookings.get_booking(user, booking_id)
    if not booking.is_learner(user):
        raise Forbidden("Only the learner pays for a booking.")
    if not booking.can_pay(user):
        raise Conflict("Only a booking still held for payment can be paid.")
    if booking.payment_intent_id:
        try:
            gateway().cancel_intent(booking.payment_intent_id)
        except PaymentRejected as exc:
            # Typically it succeeded or is processing: the webhook will settle the booking.
            raise Conflict("The current payment can no longer be replaced; wait for it to settle.") from exc
        except PaymentProviderUnavailable:
            pass
    intents.open_for(booking)
    db.session.flush()
    return booking
