"""Requests to mentors who confirm bookings (`requires_confirmation`): the mentor's answers that need no
payment call. Accepting charges the held card, so it lives in the payments module (`payments.service.approval`).
"""

from __future__ import annotations

from datetime import timedelta

from flask import current_app

from marketplace.accounts.models import User
from marketplace.bookings.models import Booking
from marketplace.bookings.service import get_booking
from marketplace.bookings.state_changes import decline_request
from marketplace.core.errors import Conflict, Forbidden

# Card networks let an authorization lapse after about 7 days. The card is charged when the mentor accepts,
# not at the session, so an authorization lives at most as long as the window to answer: capped below that,
# every authorization is captured or released while it is still good, however far ahead the session is.
MAX_CONFIRMATION_WINDOW = timedelta(days=6)


def confirmation_window() -> timedelta:
    """How long a mentor has to answer an authorized request (the deadline is never past its start)."""
    configured = timedelta(hours=int(current_app.config["CONFIRMATION_WINDOW_HOURS"]))
    return min(configured, MAX_CONFIRMATION_WINDOW)


def check_answerable(user: User, booking: Booking) -> None:
    """403 for anyone but the booking's mentor, 409 once the request is no longer theirs to answer."""
    if not booking.is_mentor(user):
        raise Forbidden("Only the mentor of a booking can accept or decline it.")
    if not booking.can_answer(user):
        raise Conflict(f"A booking that is {booking.status} is not waiting for your answer.")


def decline_booking(user: User, booking_id: int, reason: str | None) -> Booking:
    """The mentor says no: the slot is free at once and the card's authorization is released after the
    commit, so nothing is charged."""
    booking = get_booking(user, booking_id)
    check_answerable(user, booking)
    if not decline_request(booking, reason):
        raise Conflict("This request was accepted, withdrawn or expired meanwhile.")
    return booking
