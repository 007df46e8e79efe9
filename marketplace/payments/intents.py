"""Opening PaymentIntents for bookings. Imports no booking service, so bookings can call it."""

from __future__ import annotations

from marketplace.bookings.models import Booking
from marketplace.core.errors import ServiceUnavailable, Unprocessable
from marketplace.payments.gateway import PaymentProviderUnavailable, PaymentRejected, gateway


def open_for(booking: Booking) -> None:
    """Give a held booking a fresh PaymentIntent for its price.

    Called inside the booking's transaction: when Stripe cannot be reached the caller gets 503 and the
    transaction (with its hold) rolls back, so no slot is ever held without a way to pay for it.
    """
    attempt = booking.payment_attempts + 1
    try:
        intent = gateway().create_intent(
            amount=booking.price_cents,
            currency=booking.currency,
            metadata={
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
    booking.payment_intent_id = intent.id
    booking.payment_client_secret = intent.client_secret
    booking.payment_attempts = attempt
    booking.last_payment_error = None
