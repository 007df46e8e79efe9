"""Periodic booking upkeep, run by beat: expiry and completion are each a single guarded UPDATE, so
overlapping runs are harmless.

Also keeping the mentors' `next_available_at` true, after every calendar change (queued through the outbox
by `mentors.calendar_version.bump_calendar_versions`) and on a beat sweep, since time passing moves it too. The first free slot is
computed here, by the listing's own path: mentors sit below bookings and cannot compute it themselves. The
task names keep their `mentors.` prefix, the names outbox rows and the beat schedule already carry.
"""

from __future__ import annotations

from marketplace.bookings import state_changes
from marketplace.bookings.availability import service as availability
from marketplace.core.celery import task
from marketplace.core.db import unit_of_work
from marketplace.core.time import utcnow
from marketplace.mentors import calendar_version

SWEEP_BATCH = 200


@task("bookings.expire_lapsed_holds", max_retries=0)
def expire_lapsed_holds() -> int:
    with unit_of_work():
        return len(state_changes.expire_lapsed_holds())


@task("bookings.complete_finished", max_retries=0)
def complete_finished() -> int:
    with unit_of_work():
        return len(state_changes.complete_finished())


@task(calendar_version.REFRESH_TASK)
def refresh_next_available(profile_id: int) -> bool:
    with unit_of_work():
        return _refresh(profile_id)


def _refresh(profile_id: int) -> bool:
    """Recompute with the listing's own path; stored only if the calendar did not move meanwhile."""
    version = calendar_version.version_of(profile_id)
    if version is None:
        return False
    return calendar_version.set_next_available(
        profile_id, version, availability.first_free_start(profile_id, utcnow())
    )


# Every 15 minutes; one transaction per mentor keeps row locks short, and an overlapping run only repeats
# work, so no retry. The time limits cover a sweep over tens of thousands of mentors.
@task("mentors.refresh_stale_next_available", max_retries=0, soft_time_limit=600, time_limit=660)
def refresh_stale_next_available() -> int:
    now, after_id, refreshed = utcnow(), 0, 0
    while True:
        with unit_of_work():
            batch = calendar_version.stale_next_available(now, after_id, SWEEP_BATCH)
        for profile_id in batch:
            with unit_of_work():
                refreshed += _refresh(profile_id)
        if len(batch) < SWEEP_BATCH:
            return refreshed
        after_id = batch[-1]
