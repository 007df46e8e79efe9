"""Periodic work run by `celery -A workers beat`. Each entry names a task in its module's tasks.py."""

from __future__ import annotations

from collections.abc import Mapping
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
    "finish-accepted-captures": {"task": "payments.finish_accepted_captures", "schedule": 300.0},
    "refresh-payout-accounts": {"task": "payments.refresh_payout_accounts", "schedule": 900.0},
}


def beat_settings(config: Mapping[str, Any]) -> dict[str, Any]:
    """Celery settings that make beat safe to run twice, when there is a Redis to hold its lock.

    celery-redbeat keeps the schedule (with each entry's last run) in Redis and lets only the beat that holds
    its lock send anything; another beat started beside it blocks on the lock, ready to take over once the
    lock lapses (BEAT_LOCK_TIMEOUT_SECONDS after the active beat last renewed it). The active beat renews it
    on every tick, and ticks at least six times per timeout. Without Redis (the embedded default) beat keeps
    Celery's own scheduler and its schedule file: run one beat only.
    """
    redis_url = config.get("REDIS_URL")
    if not redis_url:
        return {}
    lock_timeout = int(config["BEAT_LOCK_TIMEOUT_SECONDS"])
    return {
        "beat_scheduler": "redbeat.RedBeatScheduler",
        "beat_max_loop_interval": max(1, lock_timeout // 6),
        "redbeat_redis_url": redis_url,
        "redbeat_redis_options": {"socket_connect_timeout": 3, "socket_timeout": 5},
        "redbeat_key_prefix": "marketplace:beat",
        "redbeat_lock_timeout": lock_timeout,
    }
