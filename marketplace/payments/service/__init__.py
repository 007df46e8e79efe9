"""Payment operations, in four parts: Stripe events (`events`), reconciliation (`reconcile`), refunds and
retried payments (`refunds`), and the mentor earnings ledger (`ledger`). Each flushes; the request or task commits. Callers use the names
below: `from marketplace.payments import service`."""

from __future__ import annotations

from marketplace.payments.service.approval import accept_booking
from marketplace.payments.service.events import (
    MAX_RETRY_DELAY,
    NOT_OURS,
    PROCESS_EVENTS_TASK,
    payment_events,
    process_event,
    receive_webhook,
    record_failure,
    redeliver_unprocessed,
    replay_event,
    settle_paid_booking,
)
from marketplace.payments.service.ledger import earnings_of, earnings_report, sync_ledger
from marketplace.payments.service.reconcile import (
    RECONCILE_GRACE,
    RECONCILE_WINDOW,
    reconcile_one,
    reconcile_payments,
    unsettled_holds,
)
from marketplace.payments.service.refunds import (
    CANCEL_RELEASED_INTENT_TASK,
    REFUND_DUPLICATE_TASK,
    cancel_released_intent,
    execute_refund,
    on_booking_cancelled,
    on_hold_released,
    refund_duplicate_now,
    released_intent,
    retry_payment,
)

__all__ = [
    "CANCEL_RELEASED_INTENT_TASK",
    "MAX_RETRY_DELAY",
    "NOT_OURS",
    "PROCESS_EVENTS_TASK",
    "RECONCILE_GRACE",
    "RECONCILE_WINDOW",
    "REFUND_DUPLICATE_TASK",
    "accept_booking",
    "cancel_released_intent",
    "earnings_of",
    "earnings_report",
    "execute_refund",
    "on_booking_cancelled",
    "on_hold_released",
    "payment_events",
    "process_event",
    "receive_webhook",
    "reconcile_one",
    "reconcile_payments",
    "record_failure",
    "redeliver_unprocessed",
    "refund_duplicate_now",
    "released_intent",
    "replay_event",
    "retry_payment",
    "settle_paid_booking",
    "sync_ledger",
    "unsettled_holds",
]
