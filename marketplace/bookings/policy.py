"""Money and deadline rules of a booking. Pure: no Flask, no database."""

from __future__ import annotations

from dataclasses import dataclass
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


def reschedule_refusal(
    now: datetime, start: datetime, notice_hours: int | None, default_hours: int
) -> str | None:
    """Why a session starting at `start` cannot be moved now, or None. Moves need the mentor's
    `notice_hours` of notice, or `default_hours` (the full-refund deadline) when they set none."""
    hours = default_hours if notice_hours is None else notice_hours
    if now <= change_deadline(start, hours):
        return None
    return f"This session can be rescheduled until {hours} hours before it starts."


@dataclass(frozen=True)
class CancellationTerms:
    """What cancelling a paid session now does: the preview a learner sees and the cancellation itself."""

    allowed: bool
    refund_cents: int
    reason: str


def cancellation_terms(
    *,
    paid_cents: int,
    cancelled_by_mentor: bool,
    now: datetime,
    start: datetime,
    full_refund_hours: int,
    notice_hours: int,
) -> CancellationTerms:
    """The refund policy plus the mentor's minimum notice, which binds the learner only (a mentor who cannot
    come must be able to say so, and refunds in full)."""
    if cancelled_by_mentor:
        return CancellationTerms(
            True, paid_cents, "Cancelled by the mentor: the learner is refunded in full."
        )
    if notice_hours and now > start - timedelta(hours=notice_hours):
        return CancellationTerms(
            False, 0, f"This mentor asks for {notice_hours} hours' notice to cancel; it is too late now."
        )
    refund = refund_cents(
        paid_cents=paid_cents,
        cancelled_by_mentor=False,
        now=now,
        start=start,
        full_refund_hours=full_refund_hours,
    )
    if refund:
        return CancellationTerms(True, refund, f"At least {full_refund_hours} hours ahead: a full refund.")
    return CancellationTerms(True, 0, f"Less than {full_refund_hours} hours ahead: no refund.")
