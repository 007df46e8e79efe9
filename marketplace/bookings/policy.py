"""Money and deadline rules of a booking. Pure: no Flask, no database."""

from __future__ import annotations

from datetime import datetime, timedelta


def session_price_cents(hourly_rate_cents: int, duration_minutes: int) -> int:
    """Mentors set an hourly rate; a session costs its share of it, rounded half up to the cent."""
    return (hourly_rate_cents * duration_minutes + 30) // 60


def change_deadline(start: datetime, full_refund_hours: int) -> datetime:
    """Until this instant a learner may cancel with a full refund, or anyone may reschedule."""
    return start - timedelta(hours=full_refund_hours)


def refund_cents(
    *, paid_cents: int, cancelled_by_mentor: bool, now: datetime, start: datetime, full_refund_hours: int
) -> int:
    """Full refund when the mentor cancels or the learner cancels in time; nothing after the deadline."""
    if cancelled_by_mentor or now <= change_deadline(start, full_refund_hours):
        return paid_cents
    return 0


def may_reschedule(*, now: datetime, start: datetime, full_refund_hours: int) -> bool:
    return now <= change_deadline(start, full_refund_hours)
