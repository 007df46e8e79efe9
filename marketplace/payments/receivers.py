"""Payment reactions to booking and vetting events."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from marketplace.bookings import service as bookings
from marketplace.bookings import signals, state_changes
from marketplace.bookings.models import RefundStatus
from marketplace.mentors.signals import vetting_transition
from marketplace.mentors.vetting import VettingStatus
from marketplace.payments import intents, service
from marketplace.payments.service.admin_refunds import refunds_of


def _open_intent_for_hold(booking_id: int, **_: Any) -> Callable[[], None]:
    return intents.opener_for_new_hold(booking_id)


def _refund_after_cancel(booking_id: int, **_: Any) -> None:
    service.on_booking_cancelled(booking_id)


def _refund_mentor_no_show(booking_id: int, **_: Any) -> None:
    service.on_booking_cancelled(booking_id)  # the same step: a pending refund is made after the commit


def _cancel_intent_of_lapsed_hold(booking_id: int, **_: Any) -> None:
    service.on_hold_released(booking_id)


def _release_holds_of_suspended_mentor(profile_id: int, *, to_status: str, **_: Any) -> None:
    """Nothing of a suspended mentor may be paid for: their unpaid holds are cancelled with the suspension."""
    if to_status == VettingStatus.SUSPENDED.value:
        state_changes.cancel_unpaid_holds(profile_id, bookings.MENTOR_UNAVAILABLE)


def _manual_refunds(booking_id: int, **_: Any) -> list[signals.ManualRefund]:
    return [
        signals.ManualRefund(
            refund.id,
            refund.amount_cents,
            refund.reason,
            refund.refund_reference,
            refund.status == RefundStatus.SUCCEEDED.value,
        )
        for refund in refunds_of(booking_id)
    ]


def connect() -> None:
    signals.payment_needed.connect(_open_intent_for_hold)
    signals.booking_cancelled.connect(_refund_after_cancel)
    signals.booking_no_show.connect(_refund_mentor_no_show)
    signals.booking_expired.connect(_cancel_intent_of_lapsed_hold)
    signals.booking_declined.connect(_cancel_intent_of_lapsed_hold)
    vetting_transition.connect(_release_holds_of_suspended_mentor)
    signals.manual_refunds_wanted.connect(_manual_refunds)
