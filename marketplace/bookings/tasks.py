"""Periodic booking upkeep, run by beat. Each task is a single guarded UPDATE, so overlapping runs are harmless."""

from __future__ import annotations

from marketplace.bookings import service
from marketplace.core.celery import task
from marketplace.core.db import unit_of_work


@task("bookings.expire_lapsed_holds", max_retries=0)
def expire_lapsed_holds() -> int:
    with unit_of_work():
        return len(service.expire_lapsed_holds())


@task("bookings.complete_finished", max_retries=0)
def complete_finished() -> int:
    with unit_of_work():
        return len(service.complete_finished())
