"""Celery tasks of notifications: each re-reads its rows and is safe to run twice (see service.deliver).

The send tasks retry what a retry can fix (SMTP deferring or away, the database restarting, the broker away)
with exponential backoff; when the retries run out, what is still unsent is recorded as failed.
"""

from __future__ import annotations

from typing import Any

from marketplace.core.celery import TRANSIENT_ERRORS, task
from marketplace.notifications import reminders, service
from marketplace.notifications.messages import Kind


@task(service.SEND_EMAIL_TASK, bind=True, autoretry_for=TRANSIENT_ERRORS)
def send_email(self: Any, kind: str, object_id: int, version: int = 0) -> int:
    try:
        return service.deliver(Kind(kind), object_id, version)
    except TRANSIENT_ERRORS as exc:
        if self.request.retries >= self.max_retries:
            service.give_up(Kind(kind), object_id, version, str(exc))
        raise


@task(reminders.SEND_REMINDER_TASK, bind=True, autoretry_for=TRANSIENT_ERRORS)
def send_reminder(self: Any, reminder_id: int) -> bool:
    try:
        return service.send_reminder(reminder_id)
    except TRANSIENT_ERRORS as exc:
        if self.request.retries >= self.max_retries:
            service.give_up(Kind.REMINDER, reminder_id, 0, str(exc))
        raise


# Run every minute by beat; overlapping runs take disjoint rows, so no retry is needed: the next run goes on.
@task("notifications.sweep_reminders", max_retries=0)
def sweep_reminders() -> int:
    return reminders.sweep()
