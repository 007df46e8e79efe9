"""Periodic booking upkeep, run by beat: expiry and completion are guarded UPDATEs, so overlapping runs are
harmless. Each sweep takes one mentor at a time, in a short unit of its own (retried after a lost race), so
one mentor's failure neither rolls back nor holds up the others.

Also keeping the mentors' `next_available_at` true, after every calendar change (queued through the outbox
by `mentors.calendar_version.bump_calendar_versions`) and on a beat sweep, since time passing moves it too. The first free slot is
computed here, by the listing's own path: mentors sit below bookings and cannot compute it themselves. The
task names keep their `mentors.` prefix, the names outbox rows and the beat schedule already carry.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from marketplace.bookings import state_changes
from marketplace.bookings.availability import service as availability
from marketplace.core.celery import task
from marketplace.core.db import run_in_unit
from marketplace.core.time import utcnow
from marketplace.mentors import calendar_version

log = logging.getLogger(__name__)
SWEEP_BATCH = 200


def sweep_per_mentor(
    mentors: Callable[[datetime], list[int]], move: Callable[[datetime, int], list[int]]
) -> int:
    """Run `move(now, mentor_id)` for each mentor `mentors(now)` names, each in its own unit; the count moved."""
    now, moved = utcnow(), 0
    for mentor_id in run_in_unit(mentors, now):
        try:
            moved += len(run_in_unit(move, now, mentor_id))
        except Exception:
            log.exception("sweep %s failed for mentor %s; its next run tries again", move.__name__, mentor_id)
    return moved


@task("bookings.expire_lapsed_holds", max_retries=0)
def expire_lapsed_holds() -> int:
    return sweep_per_mentor(state_changes.mentors_with_lapsed_holds, state_changes.expire_lapsed_holds)


@task("bookings.complete_finished", max_retries=0)
def complete_finished() -> int:
    return sweep_per_mentor(state_changes.mentors_with_finished_sessions, state_changes.complete_finished)


@task(calendar_version.REFRESH_TASK)
def refresh_next_available(profile_id: int) -> bool:
    return run_in_unit(_refresh, profile_id)


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
        batch = run_in_unit(calendar_version.stale_next_available, now, after_id, SWEEP_BATCH)
        for profile_id in batch:
            refreshed += run_in_unit(_refresh, profile_id)
        if len(batch) < SWEEP_BATCH:
            return refreshed
        after_id = batch[-1]
