"""Payment reactions to booking events."""

from __future__ import annotations

from typing import Any

from marketplace.bookings import signals
from marketplace.payments import service


def _refund_after_cancel(booking_id: int, **_: Any) -> None:
    service.on_booking_cancelled(booking_id)


def connect() -> None:
    signals.booking_cancelled.connect(_refund_after_cancel)
