"""Listing a mentor's free slots: the queries, then `scheduling.slots.free_slots`.

Booking a slot (`bookings.service`) checks it with the same busy ranges and the same rules, so every slot
listed here can be booked.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import BindParameter, Row, bindparam, or_, select

from marketplace.bookings.models import HELD_STATUSES, Booking, BookingStatus
from marketplace.core.errors import NotFound, Unprocessable
from marketplace.core.time import utcnow
from marketplace.extensions import db
from marketplace.mentors.models import MentorProfile
from marketplace.mentors.vetting import VettingStatus
from marketplace.scheduling.service import load_rules
from marketplace.scheduling.slots import AvailabilityRules, Slot, SlotProblem, free_slots

SLOT_PROBLEM_MESSAGES = {
    SlotProblem.NOT_OFFERED_LENGTH: "The mentor does not offer sessions of this length.",
    SlotProblem.IN_THE_PAST: "This time is in the past.",
    SlotProblem.TOO_SOON: "This time is sooner than the mentor's minimum notice.",
    SlotProblem.BEYOND_HORIZON: "This time is further ahead than the mentor takes bookings.",
    SlotProblem.OUTSIDE_AVAILABILITY: "This time is not one of the mentor's slots.",
    SlotProblem.BUSY: "This slot is no longer free.",
}

DEFAULT_SLOT_DAYS = 14


def live_clause(now: datetime | BindParameter[datetime]) -> Any:
    """Live and still holding its time: confirmed, or an unpaid hold or a request awaiting its mentor whose
    time (`hold_expires_at`) has not run out."""
    return or_(
        Booking.status == BookingStatus.CONFIRMED.value,
        Booking.status.in_(HELD_STATUSES) & (Booking.hold_expires_at > now),
    )


# Built once, as it runs on every slots listing that misses the cache.
_BUSY = select(Booking.start_at, Booking.blocked_until).where(
    Booking.mentor_id == bindparam("mentor_id"),
    live_clause(bindparam("now")),
    Booking.start_at < bindparam("end"),
    Booking.blocked_until > bindparam("start"),
)


def blocking_intervals(
    mentor_id: int, start: datetime, end: datetime, now: datetime, exclude_id: int | None = None
) -> list[tuple[datetime, datetime]]:
    """The mentor's busy ranges (each booking widened by its buffer) that reach into [start, end)."""
    stmt = _BUSY if exclude_id is None else _BUSY.where(Booking.id != exclude_id)
    params = {"mentor_id": mentor_id, "start": start, "end": end, "now": now}
    return [(start, end) for start, end in db.session.execute(stmt, params)]


@dataclass(frozen=True)
class SlotQuery:
    """A slots request resolved against the mentor's row: everything its answer depends on, so `key`
    names the answer (the calendar version stands for the data, the minute for time passing)."""

    mentor_id: int
    calendar_version: int
    session_minutes: tuple[int, ...]
    first: date
    last: date
    duration: int
    zone: ZoneInfo
    now: datetime

    @property
    def key(self) -> str:
        return (
            f"{self.mentor_id}:{self.calendar_version}:{self.first}:{self.last}:{self.duration}:"
            f"{self.zone.key}:{self.now:%Y-%m-%dT%H:%M}"
        )


# Built once: a statement built per request costs more to build and to key than to run.
_SLOT_HEAD = select(
    MentorProfile.vetting_status, MentorProfile.session_minutes, MentorProfile.calendar_version
).where(MentorProfile.id == bindparam("mentor_id"))


def _public_mentor_row(mentor_id: int) -> Row[str, list[int], int] | None:
    """What listing slots needs of the mentor's row, None unless the mentor is public. Core on the
    session's connection: on a cache hit this is the request's only query, and the ORM layer would cost
    more than running it."""
    row = db.session.connection().execute(_SLOT_HEAD, {"mentor_id": mentor_id}).first()
    return row if row is not None and row.vetting_status == VettingStatus.APPROVED.value else None


def resolve_slot_query(
    mentor_id: int, first: date | None, last: date | None, zone: ZoneInfo, duration_minutes: int | None
) -> SlotQuery:
    """One query (a few columns of the mentor's row): 404 unless public, 422 for a length not offered;
    [first, last] defaults to two weeks from today in `zone`."""
    row = _public_mentor_row(mentor_id)
    if row is None:
        raise NotFound("No such mentor.")
    offered = row.session_minutes or []
    duration = duration_minutes or (60 if 60 in offered else min(offered, default=60))
    if duration not in offered:
        raise Unprocessable(
            SLOT_PROBLEM_MESSAGES[SlotProblem.NOT_OFFERED_LENGTH], {"duration": [f"Offered: {offered}."]}
        )
    now = utcnow()
    first = first or now.astimezone(zone).date()
    last = last or first + timedelta(days=DEFAULT_SLOT_DAYS - 1)
    return SlotQuery(mentor_id, row.calendar_version, tuple(offered), first, last, duration, zone, now)


def _rules_from_now(
    mentor_id: int, session_minutes: Sequence[int], now: datetime
) -> AvailabilityRules | None:
    # No start from `now` on lies on a local date before yesterday's UTC date, whatever the zone.
    return load_rules(mentor_id, session_minutes, overrides_from=now.date() - timedelta(days=1))


def slots_for(query: SlotQuery) -> list[Slot]:
    """The free slots `query` asks for: three more queries (rules, busy ranges), then `free_slots`."""
    rules = _rules_from_now(query.mentor_id, query.session_minutes, query.now)
    if rules is None:
        return []
    window_start = datetime.combine(query.first, time(0), query.zone)
    window_end = datetime.combine(query.last + timedelta(days=1), time(0), query.zone)
    margin = timedelta(days=1)
    busy = blocking_intervals(query.mentor_id, window_start - margin, window_end + margin, query.now)
    return free_slots(rules, busy, query.now, window_start, window_end, query.duration)


def list_free_slots(
    mentor_id: int, first: date | None, last: date | None, zone: ZoneInfo, duration_minutes: int | None
) -> list[Slot]:
    """Free slots of a public mentor on the dates [first, last] of `zone`'s calendar (two weeks by default).

    The same computation `create_booking` checks against, so every slot listed can be booked.
    """
    return slots_for(resolve_slot_query(mentor_id, first, last, zone, duration_minutes))


def first_free_start(mentor_id: int, now: datetime) -> datetime | None:
    """The start of the first free slot of the mentor's shortest session within their horizon, as the
    listing computes it; None when there is none or the mentor is not public."""
    row = _public_mentor_row(mentor_id)
    if row is None:
        return None
    rules = _rules_from_now(mentor_id, row.session_minutes, now)
    if rules is None:
        return None
    end = now + timedelta(days=rules.horizon_days, minutes=1)  # past the horizon, where free_slots stops
    busy = blocking_intervals(mentor_id, now, end + timedelta(days=1), now)
    found = free_slots(rules, busy, now, now, end, rules.session_minutes[0])
    return found[0].start if found else None
