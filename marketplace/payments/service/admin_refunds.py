"""Refunds an admin makes by hand: any amount up to what was paid less what was refunded already, with a
reason, once per request (its `Idempotency-Key`), recorded with who made it and why.

Like every refund, in three steps with no lock held while Stripe answers: the refund is written (pending)
under the booking's locks and committed, so a second one cannot overdraw the booking meanwhile; Stripe is
asked with an idempotency key per refund row; its answer is applied in a unit of its own.
"""

from __future__ import annotations

from sqlalchemy import select

from marketplace.accounts.models import User
from marketplace.bookings import signals
from marketplace.bookings.models import Booking, RefundStatus
from marketplace.core.db import commit_before_network_call, run_in_unit
from marketplace.core.errors import Conflict, NotFound, ServiceUnavailable, Unprocessable
from marketplace.extensions import db
from marketplace.payments.gateway import PaymentProviderUnavailable, PaymentRejected, request_gateway
from marketplace.payments.models import AdminRefund
from marketplace.payments.service.ledger import sync_ledger
from marketplace.payments.service.refunds import left_to_refund, locked_booking

_COUNTED = (RefundStatus.PENDING.value, RefundStatus.SUCCEEDED.value)


def refundable_cents(booking: Booking) -> int:
    """What was paid for the booking less every refund made or under way (and nothing after a lost
    chargeback)."""
    if booking.confirmed_at is None or not booking.payment_intent_id:
        return 0
    by_policy = booking.refund_amount_cents or 0 if booking.refund_status in _COUNTED else 0
    return left_to_refund(booking, by_policy)


def refunds_of(booking_id: int) -> list[AdminRefund]:
    return list(
        db.session.scalars(
            select(AdminRefund).where(AdminRefund.booking_id == booking_id).order_by(AdminRefund.id)
        )
    )


def refund_by_admin(
    admin: User, booking_id: int, amount_cents: int, reason: str, request_key: str
) -> Booking:
    """Refund `amount_cents` of the booking to its learner; a repeat of `request_key` continues the same refund."""
    booking = locked_booking(Booking.id == booking_id)
    if booking is None:
        raise NotFound("No such booking.")
    refund = db.session.scalar(
        select(AdminRefund).where(
            AdminRefund.booking_id == booking_id, AdminRefund.request_key == request_key
        )
    )
    if refund is None:
        if booking.confirmed_at is None or not booking.payment_intent_id:
            raise Conflict("Only a paid booking can be refunded.")
        left = refundable_cents(booking)
        if amount_cents > left:
            raise Unprocessable(
                f"At most {left} cents of this booking are left to refund.",
                {"amount_cents": [f"Must be at most {left}."]},
            )
        refund = AdminRefund(
            booking_id=booking.id,
            admin_id=admin.id,
            request_key=request_key,
            amount_cents=amount_cents,
            reason=reason,
            status=RefundStatus.PENDING.value,
        )
        db.session.add(refund)
        db.session.flush()
    if refund.status == RefundStatus.SUCCEEDED.value:
        return booking
    refund_id, intent_id, amount = refund.id, booking.payment_intent_id, refund.amount_cents
    assert intent_id is not None  # checked with the refund's creation
    commit_before_network_call()
    try:
        result = request_gateway().refund(
            intent_id=intent_id, amount=amount, idempotency_key=f"admin-refund:{refund_id}"
        )
    except PaymentProviderUnavailable as exc:
        run_in_unit(_record, booking_id, refund_id, RefundStatus.FAILED.value, None)
        raise ServiceUnavailable("The payment provider cannot be reached; retry with the same key.") from exc
    except PaymentRejected as exc:
        run_in_unit(_record, booking_id, refund_id, RefundStatus.FAILED.value, None)
        raise Unprocessable(f"The payment provider refused the refund: {exc}") from exc
    status = RefundStatus.SUCCEEDED.value if result.status == "succeeded" else RefundStatus.PENDING.value
    run_in_unit(_record, booking_id, refund_id, status, result.id)
    found = db.session.get(Booking, booking_id)
    assert found is not None
    return found


def _record(booking_id: int, refund_id: int, status: str, reference: str | None) -> None:
    """Apply Stripe's answer under the booking's locks (booking first, then the row hanging off it)."""
    booking = locked_booking(Booking.id == booking_id)
    refund = db.session.get(AdminRefund, refund_id)
    if booking is None or refund is None or refund.status == RefundStatus.SUCCEEDED.value:
        return
    refund.status = status
    refund.refund_reference = reference or refund.refund_reference
    db.session.flush()
    if status == RefundStatus.SUCCEEDED.value:
        sync_ledger(booking)
        signals.refund_succeeded.send(booking.id, admin_refund_id=refund.id)
