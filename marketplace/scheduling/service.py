"""Availability operations, and the rules the slot engine reads. Each flushes; the request commits."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, time
from typing import Any

from sqlalchemy import bindparam, select

from marketplace.accounts.models import Role, User
from marketplace.core.errors import Forbidden, NotFound, Unprocessable
from marketplace.extensions import db
from marketplace.mentors.calendar_version import bump_calendar_versions
from marketplace.mentors.models import MentorProfile
from marketplace.scheduling import slots
from marketplace.scheduling.models import (
    AvailabilitySchedule,
    DateOverride,
    OverrideInterval,
    RecurringInterval,
)


def _own_profile(user: User, *, for_update: bool = False) -> MentorProfile:
    if not user.has_role(Role.MENTOR):
        raise Forbidden("Only mentor accounts have availability.")
    stmt = select(MentorProfile).where(MentorProfile.user_id == user.id)
    if for_update:
        # Every write to a mentor's availability locks their profile row first, so on PostgreSQL two
        # concurrent first PUTs (or POSTs of one date) queue instead of failing on a unique constraint.
        # SQLite writers are already serialized by BEGIN IMMEDIATE and ignore FOR UPDATE.
        stmt = stmt.with_for_update(of=MentorProfile, key_share=True)
    profile: MentorProfile | None = db.session.scalar(stmt)
    if profile is None:
        raise NotFound("Create your mentor profile first (PUT /api/v1/me/mentor-profile).")
    return profile


def _schedule_of(profile: MentorProfile) -> AvailabilitySchedule | None:
    return db.session.scalar(
        select(AvailabilitySchedule).where(AvailabilitySchedule.profile_id == profile.id)
    )


def _require_schedule(profile: MentorProfile) -> AvailabilitySchedule:
    schedule = _schedule_of(profile)
    if schedule is None:
        raise NotFound("You have no availability yet: PUT /api/v1/me/availability first.")
    return schedule


def own_availability(user: User) -> AvailabilitySchedule:
    return _require_schedule(_own_profile(user))


def save_availability(user: User, data: dict[str, Any]) -> AvailabilitySchedule:
    """Create or replace the weekly intervals and settings in one flush; date overrides are kept."""
    profile = _own_profile(user, for_update=True)
    schedule = _schedule_of(profile)
    if schedule is None:
        schedule = AvailabilitySchedule(profile_id=profile.id)
        db.session.add(schedule)
    schedule.timezone = data["timezone"]
    schedule.buffer_minutes = data["buffer_minutes"]
    schedule.min_notice_minutes = data["min_notice_minutes"]
    schedule.horizon_days = data["horizon_days"]
    # In the order a later load gives (the relationships' order_by), so this response matches a GET.
    ordered = sorted(data["weekly"], key=lambda interval: (interval["weekday"], interval["start"]))
    schedule.weekly = [RecurringInterval(**interval) for interval in ordered]
    db.session.flush()
    bump_calendar_versions([profile.id])
    return schedule


def save_override(user: User, data: dict[str, Any]) -> DateOverride:
    """Set the intervals of one date, replacing any override already there."""
    profile = _own_profile(user, for_update=True)
    schedule = _require_schedule(profile)
    today = schedule.local_today()
    if data["day"] < today:
        raise Unprocessable("The date has passed.", {"date": [f"Use {today.isoformat()} or later."]})
    override = schedule.override_on(data["day"])
    if override is None:
        override = DateOverride(day=data["day"])
        schedule.overrides.append(override)
    ordered = sorted(data["intervals"], key=lambda interval: interval["start"])
    override.intervals = [OverrideInterval(**interval) for interval in ordered]
    db.session.flush()
    bump_calendar_versions([profile.id])
    return override


def delete_override(user: User, day: date) -> None:
    profile = _own_profile(user, for_update=True)
    schedule = _require_schedule(profile)
    override = schedule.override_on(day)
    if override is None:
        raise NotFound(f"No override on {day.isoformat()}.")
    schedule.overrides.remove(override)
    db.session.flush()
    bump_calendar_versions([profile.id])


def _wall(value: str) -> time:
    """slots.py writes the end of the day as 00:00 (the following midnight); we store it as 24:00."""
    return time(0, 0) if value == "24:00" else time.fromisoformat(value)


def rules_for(profile: MentorProfile) -> slots.AvailabilityRules | None:
    """What the slot engine needs to list or check a mentor's slots; None when nothing is bookable
    (no schedule saved, or no session length offered)."""
    return load_rules(profile.id, profile.session_minutes)


# Built once: on the slots listing's miss path, building and keying a statement per call costs about as
# much as running it.
_SCHEDULE_WITH_WEEKLY = (
    select(
        AvailabilitySchedule.id,
        AvailabilitySchedule.timezone,
        AvailabilitySchedule.buffer_minutes,
        AvailabilitySchedule.min_notice_minutes,
        AvailabilitySchedule.horizon_days,
        RecurringInterval.weekday,
        RecurringInterval.start,
        RecurringInterval.end,
    )
    .outerjoin(RecurringInterval, RecurringInterval.schedule_id == AvailabilitySchedule.id)
    .where(AvailabilitySchedule.profile_id == bindparam("profile_id"))
    .order_by(RecurringInterval.weekday, RecurringInterval.start)
)
_OVERRIDES = (
    select(DateOverride.day, OverrideInterval.start, OverrideInterval.end)
    .outerjoin(OverrideInterval, OverrideInterval.override_id == DateOverride.id)
    .where(DateOverride.schedule_id == bindparam("schedule_id"), DateOverride.day >= bindparam("since"))
    .order_by(DateOverride.day, OverrideInterval.start)
)


def load_rules(
    profile_id: int, session_minutes: Sequence[int], overrides_from: date = date.min
) -> slots.AvailabilityRules | None:
    """:func:`rules_for` from plain rows, without loading the profile: two queries (the schedule with
    its weekly intervals, then the overrides with theirs). `overrides_from` leaves out earlier dates,
    which no start from now on can fall on."""
    if not session_minutes:
        return None
    rows = db.session.execute(_SCHEDULE_WITH_WEEKLY, {"profile_id": profile_id}).all()
    if not rows:
        return None
    settings = rows[0]
    overrides: dict[date, list[slots.LocalInterval]] = {}
    for day, start, end in db.session.execute(
        _OVERRIDES, {"schedule_id": settings.id, "since": overrides_from}
    ):
        intervals = overrides.setdefault(day, [])
        if start is not None:  # an override without intervals is a day off
            intervals.append(slots.LocalInterval(_wall(start), _wall(end)))
    return slots.AvailabilityRules(
        timezone=settings.timezone,
        weekly=tuple(
            slots.WeeklyInterval(row.weekday, _wall(row.start), _wall(row.end))
            for row in rows
            if row.weekday is not None
        ),
        overrides={day: tuple(intervals) for day, intervals in overrides.items()},
        buffer_minutes=settings.buffer_minutes,
        min_notice_minutes=settings.min_notice_minutes,
        horizon_days=settings.horizon_days,
        session_minutes=tuple(sorted(session_minutes)),
    )
