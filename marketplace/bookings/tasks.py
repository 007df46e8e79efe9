"""Periodic booking upkeep, run by beat. Each task is a single guarded UPDATE, so overlapping runs are harmless."""

from __future__ import annotations

from celery import shared_task

from marketplace.bookings import service
from marketplace.core.db import unit_of_work


@shared_task(name="bookings.expire_lapsed_holds", acks_late=True, time_limit=60)
def expire_lapsed_holds() -> int:
    with unit_of_work():
        return len(service.expire_lapsed_holds())


@shared_task(name="bookings.complete_finished", acks_late=True, time_limit=60)
def complete_finished() -> int:
    with unit_of_work():
        return len(service.complete_finished())
