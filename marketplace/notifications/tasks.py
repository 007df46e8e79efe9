"""Celery tasks of notifications: each re-reads its rows and is safe to run twice (see service.deliver)."""

from __future__ import annotations

from marketplace.core.celery import task
from marketplace.notifications import reminders, service
from marketplace.notifications.messages import Kind


@task(service.SEND_EMAIL_TASK)
def send_email(kind: str, object_id: int, version: int = 0) -> int:
    return service.deliver(Kind(kind), object_id, version)


@task(reminders.SEND_REMINDER_TASK)
def send_reminder(reminder_id: int) -> bool:
    return service.send_reminder(reminder_id)


# Run every minute by beat; overlapping runs take disjoint rows, so no retry is needed: the next run goes on.
@task("notifications.sweep_reminders", max_retries=0)
def sweep_reminders() -> int:
    return reminders.sweep()
