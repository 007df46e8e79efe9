"""Receivers that ask for the messages of the money lifecycle (`money`), inside the sender's transaction.

Each asks for its message under a key naming the one fact it reports (this booking's payment, this refund,
this report, this dispute), so a redelivered event or a signal sent twice for the same fact sends one mail.
"""

from __future__ import annotations

from typing import Any

from marketplace.bookings import signals
from marketplace.bookings.models import Booking
from marketplace.extensions import db
from marketplace.notifications.letters import Kind
from marketplace.notifications.service import request_email


def on_booking_confirmed(booking_id: int, **_: Any) -> None:
    """A booking is confirmed only once it is paid: the learner's receipt (one per booking)."""
    request_email(Kind.PAYMENT_RECEIPT, booking_id)


def on_refund_succeeded(booking_id: int, *, admin_refund_id: int | None = None, **_: Any) -> None:
    request_email(Kind.REFUND_RECEIPT, booking_id, version=admin_refund_id or 0)


def on_no_show(booking_id: int, **_: Any) -> None:
    """A no-show settled by a report tells the absent party; one settled by an admin tells everyone."""
    booking = db.session.get(Booking, booking_id)
    if booking is None:
        return
    if booking.report_dispute_resolved_at is not None:
        request_email(Kind.REPORT_DISPUTE_RESOLVED, booking_id)
    else:
        request_email(Kind.NO_SHOW_REPORTED, booking_id)


def on_no_show_disputed(booking_id: int, **_: Any) -> None:
    request_email(Kind.REPORT_DISPUTE_OPENED, booking_id)


def connect() -> None:
    signals.booking_confirmed.connect(on_booking_confirmed)
    signals.refund_succeeded.connect(on_refund_succeeded)
    signals.booking_no_show.connect(on_no_show)
    signals.no_show_disputed.connect(on_no_show_disputed)
