"""Opening PaymentIntents for bookings: for a new hold (the `payment_needed` signal) and a retried payment.

Stripe is never called while a row lock (or SQLite's write lock) is held. The hold is committed first; the
intent is then made with no transaction open, under an idempotency key naming the booking and the attempt
(a repeat returns the same intent), with the request's short timeout (`STRIPE_REQUEST_TIMEOUT_SECONDS`) and no
retry; finally it is stored in a short transaction that checks the booking is still waiting for exactly this
attempt. When Stripe cannot make it, the hold is withdrawn and the client gets 503 (or 422 when Stripe
refuses), so no slot stays held without a way to pay for it; a hold left without an intent by a crash in
between is withdrawn by reconciliation (`withdraw_orphaned_holds`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from flask import current_app
from sqlalchemy import update

from marketplace.bookings import state_changes
from marketplace.bookings.models import Booking, BookingStatus
from marketplace.core.db import rows_matched, run_in_unit
from marketplace.core.errors import ServiceUnavailable, Unprocessable
from marketplace.core.time import utcnow
from marketplace.extensions import db
from marketplace.payments.gateway import Intent, PaymentProviderUnavailable, PaymentRejected, request_gateway
from marketplace.payments.models import IssuedIntent

# The metadata key that names the deployment which opened a PaymentIntent (`PAYMENTS_DEPLOYMENT_ID`).
DEPLOYMENT_KEY = "marketplace"
NOT_HELD = "The payment provider cannot be reached; the slot was not held. Please try again shortly."


def transfer_group(booking_id: int) -> str:
    """Ties a booking's PaymentIntent, its charge and the transfer to the mentor together at Stripe."""
    return f"booking-{booking_id}"


def deployment_id() -> str:
    return str(current_app.config["PAYMENTS_DEPLOYMENT_ID"])


@dataclass(frozen=True)
class IntentRequest:
    """What Stripe is asked for, read from the booking before the call (no row is held meanwhile)."""

    booking_id: int
    attempt: int
    amount: int
    currency: str
    metadata: dict[str, str]
    transfer_group: str
    # "manual" for a mentor who confirms requests: the card is only authorized until they accept.
    capture_method: str = "automatic"

    @property
    def idempotency_key(self) -> str:
        return f"booking:{self.booking_id}:intent:{self.attempt}"


def intent_request(booking: Booking) -> IntentRequest:
    return IntentRequest(
        booking_id=booking.id,
        attempt=booking.payment_attempts + 1,
        amount=booking.price_cents,
        currency=booking.currency,
        metadata={
            DEPLOYMENT_KEY: deployment_id(),
            "booking_id": str(booking.id),
            "mentor_id": str(booking.mentor_id),
            "learner_id": str(booking.learner_id),
            "description": f"Mentoring session #{booking.id}, {booking.duration_minutes} min",
        },
        transfer_group=transfer_group(booking.id),
        capture_method="manual" if booking.mentor.requires_confirmation else "automatic",
    )


def create_at_stripe(wanted: IntentRequest) -> Intent:
    """Call with no transaction open. Raises the gateway's two exceptions."""
    return request_gateway().create_intent(
        amount=wanted.amount,
        currency=wanted.currency,
        metadata=wanted.metadata,
        transfer_group=wanted.transfer_group,
        idempotency_key=wanted.idempotency_key,
        capture_method=wanted.capture_method,
    )


def store(wanted: IntentRequest, intent: Intent) -> bool:
    """Record `intent` on its booking if the booking still waits for this attempt's intent; True if it did.

    One compare-and-swap UPDATE: the only lock it takes is the booking's row, briefly.
    """
    stored = rows_matched(
        update(Booking)
        .where(
            Booking.id == wanted.booking_id,
            Booking.status == BookingStatus.PENDING_PAYMENT.value,
            Booking.payment_attempts == wanted.attempt - 1,
        )
        .values(
            payment_intent_id=intent.id,
            payment_client_secret=intent.client_secret,
            payment_attempts=wanted.attempt,
            last_payment_error=None,
            updated_at=utcnow(),
        )
        .execution_options(synchronize_session=False)
    )
    if stored != 1:
        return False
    db.session.add(IssuedIntent(id=intent.id, booking_id=wanted.booking_id))
    db.session.flush()
    return True


def _store_for_new_hold(wanted: IntentRequest, intent: Intent) -> bool:
    if not store(wanted, intent):
        return False
    state_changes.announce_hold(wanted.booking_id)
    return True


def opener_for_new_hold(booking_id: int) -> Callable[[], None]:
    """What to run once the new hold has committed: read now (the booking is in the session already),
    so the call after the commit needs no transaction of its own before Stripe's."""
    wanted = intent_request(db.session.get_one(Booking, booking_id))
    return partial(open_for_new_hold, wanted)


def open_for_new_hold(wanted: IntentRequest) -> None:
    """Give a just committed hold its PaymentIntent; called with no lock held (see the module's docstring)."""
    try:
        intent = create_at_stripe(wanted)
    except PaymentProviderUnavailable as exc:
        run_in_unit(state_changes.withdraw_unopened_hold, wanted.booking_id)
        raise ServiceUnavailable(NOT_HELD) from exc
    except PaymentRejected as exc:
        run_in_unit(state_changes.withdraw_unopened_hold, wanted.booking_id)
        raise Unprocessable(f"The payment provider refused this booking: {exc}") from exc
    if not run_in_unit(_store_for_new_hold, wanted, intent):
        raise ServiceUnavailable(NOT_HELD)  # withdrawn meanwhile (it took longer than reconciliation waits)
