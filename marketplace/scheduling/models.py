"""A mentor's availability: one schedule per profile, its weekly intervals, and per-date overrides.

Times are mentor-local wall times kept as zero-padded ``HH:MM`` strings: they compare correctly as text on
every database (so the CHECKs below hold on PostgreSQL and SQLite alike) and can say ``24:00`` for the end
of the day, which a ``Time`` column cannot.
"""

from __future__ import annotations

from datetime import date
from zoneinfo import ZoneInfo

from sqlalchemy import CheckConstraint, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from marketplace.core.models import TimestampMixin
from marketplace.core.time import utcnow
from marketplace.extensions import Model


class AvailabilitySchedule(TimestampMixin, Model):
    __tablename__ = "availability_schedules"
    __table_args__ = (
        CheckConstraint(
            "buffer_minutes >= 0 AND min_notice_minutes >= 0 AND horizon_days >= 1", name="settings_in_range"
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    profile_id: Mapped[int] = mapped_column(ForeignKey("mentor_profiles.id", ondelete="CASCADE"), unique=True)
    timezone: Mapped[str] = mapped_column(String(64))
    buffer_minutes: Mapped[int]
    min_notice_minutes: Mapped[int]
    horizon_days: Mapped[int]

    weekly: Mapped[list[RecurringInterval]] = relationship(
        cascade="all, delete-orphan",
        lazy="selectin",
        order_by="[RecurringInterval.weekday, RecurringInterval.start]",
    )
    overrides: Mapped[list[DateOverride]] = relationship(
        cascade="all, delete-orphan", lazy="selectin", order_by="DateOverride.day"
    )

    def local_today(self) -> date:
        """Today where the mentor is: overrides are mentor-local dates, so "past" is judged there."""
        return utcnow().astimezone(ZoneInfo(self.timezone)).date()

    @property
    def upcoming_overrides(self) -> list[DateOverride]:
        """Overrides from the mentor's today on; earlier ones can no longer affect a bookable slot."""
        today = self.local_today()
        return [override for override in self.overrides if override.day >= today]

    def override_on(self, day: date) -> DateOverride | None:
        return next((override for override in self.overrides if override.day == day), None)


class RecurringInterval(Model):
    """A recurring range; no uniqueness here, so a PUT may delete and re-insert the same rows in one flush."""

    __tablename__ = "availability_weekly_intervals"
    __table_args__ = (
        CheckConstraint("weekday BETWEEN 0 AND 6", name="weekday_range"),
        CheckConstraint("start_time < end_time", name="start_before_end"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    schedule_id: Mapped[int] = mapped_column(
        ForeignKey("availability_schedules.id", ondelete="CASCADE"), index=True
    )
    weekday: Mapped[int]
    start: Mapped[str] = mapped_column("start_time", String(5))
    end: Mapped[str] = mapped_column("end_time", String(5))


class DateOverride(Model):
    """Replaces the weekly intervals on one mentor-local date; no intervals means a day off."""

    __tablename__ = "availability_overrides"
    __table_args__ = (UniqueConstraint("schedule_id", "day"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    schedule_id: Mapped[int] = mapped_column(ForeignKey("availability_schedules.id", ondelete="CASCADE"))
    day: Mapped[date]

    # Joined, so the schedule's selectin load of overrides brings their intervals in the same query.
    intervals: Mapped[list[OverrideInterval]] = relationship(
        cascade="all, delete-orphan", lazy="joined", order_by="OverrideInterval.start"
    )


class OverrideInterval(Model):
    __tablename__ = "availability_override_intervals"
    __table_args__ = (CheckConstraint("start_time < end_time", name="start_before_end"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    override_id: Mapped[int] = mapped_column(
        ForeignKey("availability_overrides.id", ondelete="CASCADE"), index=True
    )
    start: Mapped[str] = mapped_column("start_time", String(5))
    end: Mapped[str] = mapped_column("end_time", String(5))
