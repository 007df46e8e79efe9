"""Payment operations: Stripe events (`events`), reconciliation (`reconcile`), refunds and retried payments
(`refunds`), the mentor earnings ledger (`ledger`), mentor payout accounts (`connect`) and the transfers that
pay mentors (`transfers`). Each flushes; the request or task commits. Callers use the names
below: `from marketplace.payments import service`."""

from __future__ import annotations

from marketplace.payments.service.approval import accept_booking
from marketplace.payments.service.connect import onboarding_link, payouts_of
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
from marketplace.payments.service.ledger import (
    REVERSE_TRANSFER_TASK,
    earnings_of,
    earnings_report,
    sync_ledger,
)
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
from marketplace.payments.service.sweeps import (
    FINISH_CAPTURES_TASK,
    finish_accepted_captures,
    refresh_payout_accounts,
)
from marketplace.payments.service.transfers import (
    make_transfer,
    refused_transfers,
    reverse_transfer,
    transfer_settled,
)

__all__ = [
    "CANCEL_RELEASED_INTENT_TASK",
    "FINISH_CAPTURES_TASK",
    "MAX_RETRY_DELAY",
    "NOT_OURS",
    "PROCESS_EVENTS_TASK",
    "RECONCILE_GRACE",
    "RECONCILE_WINDOW",
    "REFUND_DUPLICATE_TASK",
    "REVERSE_TRANSFER_TASK",
    "accept_booking",
    "cancel_released_intent",
    "earnings_of",
    "earnings_report",
    "execute_refund",
    "finish_accepted_captures",
    "make_transfer",
    "on_booking_cancelled",
    "on_hold_released",
    "onboarding_link",
    "payment_events",
    "payouts_of",
    "process_event",
    "receive_webhook",
    "reconcile_one",
    "reconcile_payments",
    "record_failure",
    "redeliver_unprocessed",
    "refresh_payout_accounts",
    "refund_duplicate_now",
    "refused_transfers",
    "released_intent",
    "replay_event",
    "retry_payment",
    "reverse_transfer",
    "settle_paid_booking",
    "sync_ledger",
    "transfer_settled",
    "unsettled_holds",
]
