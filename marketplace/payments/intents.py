"""Opening PaymentIntents for bookings: for a new hold (the `payment_needed` signal) and a retried payment."""

from __future__ import annotations

from flask import current_app

from marketplace.bookings.models import Booking
from marketplace.core.errors import ServiceUnavailable, Unprocessable
from marketplace.extensions import db
from marketplace.payments.gateway import PaymentProviderUnavailable, PaymentRejected, gateway
from marketplace.payments.models import IssuedIntent

# The metadata key that names the deployment which opened a PaymentIntent (`PAYMENTS_DEPLOYMENT_ID`).
DEPLOYMENT_KEY = "marketplace"


def deployment_id() -> str:
    return str(current_app.config["PAYMENTS_DEPLOYMENT_ID"])


def open_for(booking: Booking) -> None:
    """Give a held booking a fresh PaymentIntent for its price.

    Called inside the booking's transaction: when Stripe cannot be reached the caller gets 503 and the
    transaction (with its hold) rolls back, so no slot is ever held without a way to pay for it. The intent
    is marked as this deployment's and recorded, which is what lets its events be acted on.
    """
    attempt = booking.payment_attempts + 1
    try:
        intent = gateway().create_intent(
            amount=booking.price_cents,
            currency=booking.currency,
            metadata={
                DEPLOYMENT_KEY: deployment_id(),
                "booking_id": str(booking.id),
                "mentor_id": str(booking.mentor_id),
                "learner_id": str(booking.learner_id),
                "description": f"Mentoring session #{booking.id}, {booking.duration_minutes} min",
            },
            idempotency_key=f"booking:{booking.id}:intent:{attempt}",
        )
    except PaymentProviderUnavailable as exc:
        raise ServiceUnavailable(
            "The payment provider cannot be reached; the slot was not held. Please try again shortly."
        ) from exc
    except PaymentRejected as exc:
        raise Unprocessable(f"The payment provider refused this booking: {exc}") from exc
    db.session.add(IssuedIntent(id=intent.id, booking_id=booking.id))
    booking.payment_intent_id = intent.id
    booking.payment_client_secret = intent.client_secret
    booking.payment_attempts = attempt
    booking.last_payment_error = None
