"""Refunds, released holds' PaymentIntents and retried payments: the calls to Stripe that move money back
or replace an intent, each made once (idempotency keys) and never while a row lock is held."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select

from marketplace.accounts.models import User
from marketplace.bookings import service as bookings
from marketplace.bookings import signals, state_changes
from marketplace.bookings.models import Booking, BookingStatus, RefundStatus
from marketplace.core import outbox
from marketplace.core.celery import TransientError
from marketplace.core.db import commit_before_network_call, run_in_unit
from marketplace.core.errors import Conflict, Forbidden, ServiceUnavailable, Unprocessable
from marketplace.extensions import db
from marketplace.payments import intents
from marketplace.payments.gateway import (
    PaymentProviderUnavailable,
    PaymentRejected,
    RefundResult,
    gateway,
    request_gateway,
)
from marketplace.payments.models import DISPUTE_LOST, AdminRefund
from marketplace.payments.service.ledger import sync_ledger

log = logging.getLogger(__name__)

CANCEL_RELEASED_INTENT_TASK = "payments.cancel_released_intent"
REFUND_DUPLICATE_TASK = "payments.refund_duplicate"


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
    """A second payment for a booking already settled (an intent it replaced was paid too): give it back,
    after the commit (`REFUND_DUPLICATE_TASK`), since no Stripe call is made while the event's locks are held."""
    if amount > 0:
        outbox.enqueue(REFUND_DUPLICATE_TASK, intent_id=intent_id, amount=amount, booking_id=booking_id)


def refund_duplicate_now(intent_id: str, amount: int, booking_id: int) -> str:
    """The task's half of `refund_duplicate`: call with no transaction open."""
    log.warning("refunding payment %s in full: duplicate payment for booking %s", intent_id, booking_id)
    try:
        result = gateway().refund(
            intent_id=intent_id, amount=amount, idempotency_key=f"intent:{intent_id}:orphan-refund"
        )
    except PaymentProviderUnavailable as exc:
        raise TransientError(str(exc)) from exc
    return result.status


@dataclass(frozen=True)
class RefundToMake:
    intent_id: str
    amount: int
    idempotency_key: str


def _refund_pending(booking_id: int) -> Any:
    return (
        (Booking.id == booking_id)
        & (Booking.refund_status == RefundStatus.PENDING.value)
        & Booking.refund_reference.is_(None)
    )


def refunded_by_admins(booking_id: int) -> int:
    """What admins refunded of the booking, or are refunding now."""
    total = db.session.scalar(
        select(func.coalesce(func.sum(AdminRefund.amount_cents), 0)).where(
            AdminRefund.booking_id == booking_id,
            AdminRefund.status.in_((RefundStatus.PENDING.value, RefundStatus.SUCCEEDED.value)),
        )
    )
    return int(total or 0)


def left_to_refund(booking: Booking, by_policy: int = 0) -> int:
    """What is left of the booking's payment to give back after `by_policy` and the admins' refunds; nothing
    once a chargeback was lost (the card network took it all back already)."""
    if booking.dispute_outcome == DISPUTE_LOST:
        return 0
    return max(0, booking.price_cents - by_policy - refunded_by_admins(booking.id))


def refund_to_make(booking_id: int) -> RefundToMake | None:
    """What `execute_refund` must ask Stripe for; None when nothing (one with nothing to pay back is closed).

    The policy's refund (the full price for a mentor's cancellation or absence) is cut to what is left to
    refund, so an admin's earlier partial refund or a lost chargeback is never paid back a second time."""
    booking = db.session.scalar(select(Booking).where(_refund_pending(booking_id)))
    if booking is None:
        return None
    amount = min(booking.refund_amount_cents or 0, left_to_refund(booking))
    if not booking.payment_intent_id or amount != booking.refund_amount_cents:
        locked = locked_booking(_refund_pending(booking_id))
        if locked is None:
            return None
        locked.refund_amount_cents = amount
        if not booking.payment_intent_id or not amount:
            locked.refund_status = RefundStatus.NONE.value
            return None
    assert booking.payment_intent_id is not None
    return RefundToMake(booking.payment_intent_id, amount, f"booking:{booking.id}:refund")


def record_refund(booking_id: int, result: RefundResult | None, refused: str | None = None) -> str | None:
    """Apply Stripe's answer to a refund, under the booking's locks, if the refund is still pending."""
    booking = locked_booking(_refund_pending(booking_id))
    if booking is None:
        return None
    if result is None:
        booking.refund_status = RefundStatus.FAILED.value
        log.error("refund of booking %s refused: %s", booking.id, refused)
        return "refused"
    booking.refund_reference = result.id
    if result.status == "succeeded":
        booking.refund_status = RefundStatus.SUCCEEDED.value
        sync_ledger(booking)
        signals.refund_succeeded.send(booking.id)
    return result.status


def execute_refund(booking_id: int) -> str | None:
    """Carry out the refund the cancellation policy recorded, once (Stripe's idempotency key backs it up).

    Three steps, and no lock held while Stripe answers: read what to refund (a unit), ask Stripe with no
    transaction open, apply the answer (a unit that checks the refund is still pending). The pending refund
    itself was written with the cancellation, so a crash between the steps leaves it to be tried again.
    """
    refund = run_in_unit(refund_to_make, booking_id)
    if refund is None:
        return None
    try:
        result = gateway().refund(
            intent_id=refund.intent_id, amount=refund.amount, idempotency_key=refund.idempotency_key
        )
    except PaymentProviderUnavailable as exc:
        raise TransientError(str(exc)) from exc
    except PaymentRejected as exc:
        return run_in_unit(record_refund, booking_id, None, str(exc))
    return run_in_unit(record_refund, booking_id, result)


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
    """The PaymentIntent of a hold or request let go unpaid (cancelled, expired or declined), if it has one."""
    return db.session.scalar(
        select(Booking.payment_intent_id).where(
            Booking.id == booking_id,
            Booking.status.in_(
                (BookingStatus.CANCELLED.value, BookingStatus.EXPIRED.value, BookingStatus.DECLINED.value)
            ),
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
    """A fresh PaymentIntent for a held booking, e.g. after a declined card; the old one is cancelled.

    Read and checked first, then that transaction ends (`commit_before_network_call`), so Stripe is called
    with no transaction open; the new intent is stored only if the booking still waits for this attempt.
    """
    booking = bookings.get_booking(user, booking_id)
    if not booking.is_learner(user):
        raise Forbidden("Only the learner pays for a booking.")
    if not booking.can_pay(user):
        raise Conflict("Only a booking still held for payment can be paid.")
    current_intent, wanted = booking.payment_intent_id, intents.intent_request(booking)
    commit_before_network_call()
    if current_intent:
        try:
            request_gateway().cancel_intent(current_intent)
        except PaymentRejected as exc:
            # Typically it succeeded or is processing: the webhook will settle the booking.
            raise Conflict("The current payment can no longer be replaced; wait for it to settle.") from exc
        except PaymentProviderUnavailable:
            pass
    try:
        intent = intents.create_at_stripe(wanted)
    except PaymentProviderUnavailable as exc:
        raise ServiceUnavailable("The payment provider cannot be reached; please try again shortly.") from exc
    except PaymentRejected as exc:
        raise Unprocessable(f"The payment provider refused this booking: {exc}") from exc
    if not run_in_unit(intents.store, wanted, intent):
        raise Conflict("The booking changed meanwhile; reload it and try again.")
    return bookings.get_booking(user, booking_id)
