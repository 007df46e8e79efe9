"""Requests to mentors who confirm bookings: the learner's card is authorized (a PaymentIntent with
`capture_method=manual`), charged when the mentor accepts, and released when they decline or let the deadline
pass, so nothing is ever charged for a request that was not accepted.

The card is charged on accept rather than at the session: card networks let an authorization lapse after
about 7 days, and the window to answer (`bookings.approval.confirmation_window`) is capped below that, so
every authorization is captured or released while it is still good, however far ahead the session is. An
accepted request is then paid like any booking, and cancelling it later is refunded by the policy.
"""

from __future__ import annotations

from marketplace.accounts.models import User
from marketplace.bookings import approval, state_changes
from marketplace.bookings import service as bookings
from marketplace.bookings.models import Booking, BookingStatus
from marketplace.core.db import commit_before_network_call, run_in_unit
from marketplace.core.errors import Conflict, ServiceUnavailable
from marketplace.core.time import utcnow
from marketplace.extensions import db
from marketplace.payments.gateway import (
    PaymentProviderUnavailable,
    PaymentRejected,
    StripeGateway,
    request_gateway,
)
from marketplace.payments.service.events import settle_paid_booking
from marketplace.payments.service.refunds import locked_booking

UNREACHABLE = "The payment provider cannot be reached; nothing was charged yet. Please accept again shortly."


def accept_booking(user: User, booking_id: int) -> Booking:
    """The mentor says yes: the authorization is captured (once: an idempotency key per booking, and a
    repeat of an accept already captured only finishes it), then the booking is confirmed as any paid one.

    The acceptance is recorded and committed first, so a racing decline, withdrawal or expiry loses; Stripe
    is then called with no transaction open, and its answer applied in a short unit of its own.
    """
    booking = bookings.get_booking(user, booking_id)
    accepted_before = booking.mentor_accepted_at is not None and booking.is_mentor(user)
    if accepted_before and booking.state is BookingStatus.CONFIRMED:
        return booking
    if not (accepted_before and booking.state is BookingStatus.AWAITING_MENTOR):  # else: finish its capture
        approval.check_answerable(user, booking)
    if not state_changes.claim_acceptance(booking.id, utcnow()):
        db.session.refresh(booking)
        if booking.mentor_accepted_at is not None and booking.state is BookingStatus.CONFIRMED:
            return booking  # a racing accept of the same mentor finished first
        raise Conflict("This request was declined, withdrawn or expired meanwhile.")
    intent_id = booking.payment_intent_id
    commit_before_network_call()
    if intent_id is None:
        raise Conflict("This request has no payment to charge.")
    try:
        outcome = finish_capture(request_gateway(), booking_id, intent_id)
    except PaymentProviderUnavailable as exc:
        raise ServiceUnavailable(UNREACHABLE) from exc
    if outcome == "expired":
        raise Conflict("The card's authorization was released; nothing was charged and the request expired.")
    if outcome != "confirmed":
        raise Conflict(f"The card could not be charged ({outcome}); nothing was charged.")
    return bookings.get_booking(user, booking_id)


def finish_capture(stripe: StripeGateway, booking_id: int, intent_id: str) -> str:
    """Capture an accepted request's authorization (once: the key per booking) and apply the answer: the
    booking confirmed (`confirmed`), or expired with its learner told when the authorization is gone
    (`expired`), or the intent's status when it is neither. Call with no transaction open.

    Stripe refuses a capture that already happened: the intent is read instead."""
    try:
        intent = stripe.capture_intent(intent_id, f"booking:{booking_id}:capture")
    except PaymentRejected:
        intent = stripe.retrieve_intent(intent_id)
    if intent.status == "canceled":
        run_in_unit(_expire_lapsed_authorization, booking_id)
        return "expired"
    if intent.status != "succeeded":
        return intent.status
    run_in_unit(_settle_captured, booking_id)
    return "confirmed"


def _settle_captured(booking_id: int) -> str | None:
    booking = locked_booking(Booking.id == booking_id)
    return None if booking is None else settle_paid_booking(booking)


def _expire_lapsed_authorization(booking_id: int) -> bool:
    booking = locked_booking(Booking.id == booking_id)
    return booking is not None and state_changes.expire_request(booking)
