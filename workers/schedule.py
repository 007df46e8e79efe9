"""Periodic work run by `celery -A workers beat`. Each entry names a task in its module's tasks.py."""

from __future__ import annotations

from typing import Any

BEAT_SCHEDULE: dict[str, dict[str, Any]] = {
    "relay-outbox": {"task": "outbox.relay_pending", "schedule": 30.0},
    "expire-lapsed-holds": {"task": "bookings.expire_lapsed_holds", "schedule": 60.0},
    "complete-finished-sessions": {"task": "bookings.complete_finished", "schedule": 300.0},
    "reconcile-payments": {"task": "payments.reconcile", "schedule": 300.0},
    "transfer-settled-sessions": {"task": "payments.transfer_settled", "schedule": 900.0},
    "redeliver-webhook-events": {"task": "payments.redeliver_unprocessed", "schedule": 60.0},
    "send-due-reminders": {"task": "notifications.sweep_reminders", "schedule": 60.0},
    "refresh-stale-next-available": {"task": "mentors.refresh_stale_next_available", "schedule": 900.0},
}
