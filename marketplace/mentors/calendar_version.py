"""A mentor's calendar version: one number that moves whenever their free slots may have changed.

Every operation that can change what `free_slots` lists for a mentor (availability, date overrides, the
session lengths offered, the vetting status, and every booking insert, status change or move) calls
`bump_calendar_versions()`. Slot listings are cached under the version (bookings/availability/routes.py),
so no cached list outlives the calendar it was computed from; each bump also queues
`mentors.refresh_next_available` through the outbox, so `next_available_at` follows the calendar.

`bump_calendar_versions()` only notes the ids. The bump (`calendar_version + 1`) and the outbox rows are
written as the transaction commits, inside it, once per mentor and transaction, in id order. A savepoint
rolled back after a bump keeps the note: one bump too many costs a cache miss, one too few would serve stale
slots. The bumped row is also the mentor's calendar lock (`bookings.state_changes.lock_mentor_calendar`),
which every booking change takes before its bookings, so by the commit the row is the transaction's already and
locks are taken in one order everywhere (mentor, then bookings).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import event, or_, select, update
from sqlalchemy.orm import Session

from marketplace.core import outbox
from marketplace.core.db import rows_matched
from marketplace.extensions import db
from marketplace.mentors.models import MentorProfile
from marketplace.mentors.vetting import VettingStatus

REFRESH_TASK = "mentors.refresh_next_available"
_TOUCHED = "calendar_touched"
# Derived columns, not edits by the mentor: `updated_at` (shown, and the vetting queue's order) stays.
_NOT_A_PROFILE_EDIT = {"updated_at": MentorProfile.updated_at}


def bump_calendar_versions(profile_ids: Iterable[int]) -> None:
    """Bump these mentors' calendar versions when the current transaction commits."""
    db.session.info.setdefault(_TOUCHED, set()).update(profile_ids)


@event.listens_for(Session, "before_commit")
def _bump_touched(session: Session) -> None:
    if session.in_nested_transaction():  # a savepoint being released: the real commit comes later
        return
    touched = session.info.pop(_TOUCHED, None)
    if not touched:
        return
    ids = sorted(touched)
    session.execute(
        update(MentorProfile)
        .where(MentorProfile.id.in_(ids))
        .values(calendar_version=MentorProfile.calendar_version + 1, **_NOT_A_PROFILE_EDIT)
        .execution_options(synchronize_session=False)  # the commit expires loaded profiles anyway
    )
    for profile_id in ids:
        outbox.enqueue(REFRESH_TASK, profile_id=profile_id)


@event.listens_for(Session, "after_soft_rollback")
def _forget_touched(session: Session, previous_transaction: Any) -> None:
    if not previous_transaction.nested:
        session.info.pop(_TOUCHED, None)


def version_of(profile_id: int) -> int | None:
    return db.session.scalar(select(MentorProfile.calendar_version).where(MentorProfile.id == profile_id))


def set_next_available(profile_id: int, version: int, value: datetime | None) -> bool:
    """Store `value` if the calendar is still at `version`; False when it moved meanwhile, in which
    case the bump that moved it has queued a fresher refresh (so a slow, older one cannot win)."""
    matched = rows_matched(
        update(MentorProfile)
        .where(MentorProfile.id == profile_id, MentorProfile.calendar_version == version)
        .values(next_available_at=value, **_NOT_A_PROFILE_EDIT)
        .execution_options(synchronize_session=False)
    )
    return matched == 1


def stale_next_available(now: datetime, after_id: int, limit: int) -> list[int]:
    """Approved mentors, by id from `after_id` on, whose `next_available_at` has passed or who have none:
    time passing changes their first free slot without any write (it passes, or a day enters the horizon)."""
    return list(
        db.session.scalars(
            select(MentorProfile.id)
            .where(
                MentorProfile.id > after_id,
                MentorProfile.vetting_status == VettingStatus.APPROVED.value,
                or_(MentorProfile.next_available_at.is_(None), MentorProfile.next_available_at < now),
            )
            .order_by(MentorProfile.id)
            .limit(limit)
        )
    )
