"""Bookings and their state machine; and the one order in which every path locks rows.

Lock order (every request, task, sweep and CLI command takes row locks in this order, and only this order):

1. the unit's own bookkeeping row, if it has one: the `stripe_events` row being processed (one per unit);
2. `mentor_profiles`: the mentor's calendar (`state_changes.lock_mentor_calendar`), several in id order;
3. `users`: the learner (`state_changes.lock_learner`), to count their unpaid holds;
4. `bookings`: in id order (`transition`, `transition_all`, `payments`' `locked_booking`);
5. rows hanging off a booking or a mentor (reminders, earning entries, issued intents, outbox rows, a
   mentor's transfers and payout account): inserted or updated last, never locked first.

Every explicit lock is `FOR NO KEY UPDATE`, the lock an UPDATE that keeps the key takes: lockers of one row
still queue behind each other, but inserting a row that references it (a booking's learner, a reminder's
user, an earning's mentor) takes only `FOR KEY SHARE`, which does not wait for it. So foreign keys add no
edge to the wait graph, and the order above is all there is to keep. A deadlock or serialization failure
that still happens (the exclusion constraint between uncommitted rows) re-runs the whole unit of work
(`core.db`). No network call (Stripe, SMTP, the broker) is made while any of these locks is held.
"""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from marketplace.accounts.models import User
from marketplace.core.models import TimestampMixin
from marketplace.core.time import utcnow
from marketplace.extensions import Model
from marketplace.mentors.models import MentorProfile


class BookingStatus(enum.StrEnum):
    PENDING_PAYMENT = "pending_payment"
    # The learner's card is authorized (not charged) and the mentor, who requires confirmation, decides.
    AWAITING_MENTOR = "awaiting_mentor"
    DECLINED = "declined"
    CONFIRMED = "confirmed"
    COMPLETED = "completed"
    NO_SHOW = "no_show"
    EXPIRED = "expired"
    CANCELLED = "cancelled"


# A booking in one of these states owns its time: the database refuses another live one overlapping it.
LIVE_STATUSES = (
    BookingStatus.PENDING_PAYMENT.value,
    BookingStatus.AWAITING_MENTOR.value,
    BookingStatus.CONFIRMED.value,
)
# Live only until `hold_expires_at` (the payment hold, or the mentor's deadline to answer a request).
HELD_STATUSES = (BookingStatus.PENDING_PAYMENT.value, BookingStatus.AWAITING_MENTOR.value)

# The booking state machine: every status change goes through `bookings.state_changes.transition`, which takes
# the states allowed to move to its target from here. A booking is born `pending_payment`.
TRANSITIONS: dict[BookingStatus, frozenset[BookingStatus]] = {
    BookingStatus.PENDING_PAYMENT: frozenset(
        {
            BookingStatus.CONFIRMED,
            BookingStatus.EXPIRED,
            BookingStatus.CANCELLED,
            BookingStatus.AWAITING_MENTOR,
        }
    ),
    # Card authorized: the mentor accepts (captured), declines, or lets the deadline pass (released);
    # the learner may withdraw the request (released).
    BookingStatus.AWAITING_MENTOR: frozenset(
        {
            BookingStatus.CONFIRMED,
            BookingStatus.DECLINED,
            BookingStatus.EXPIRED,
            BookingStatus.CANCELLED,
        }
    ),
    BookingStatus.CONFIRMED: frozenset(
        {BookingStatus.COMPLETED, BookingStatus.NO_SHOW, BookingStatus.CANCELLED}
    ),
    # Paid after the hold lapsed: confirmed after all if the time is still free (the database decides).
    BookingStatus.EXPIRED: frozenset({BookingStatus.CONFIRMED}),
    BookingStatus.COMPLETED: frozenset(),
    BookingStatus.NO_SHOW: frozenset(),
    BookingStatus.CANCELLED: frozenset(),
    BookingStatus.DECLINED: frozenset(),
}


def sources_of(target: BookingStatus) -> frozenset[BookingStatus]:
    """The states the table lets move to `target`."""
    return frozenset(state for state, targets in TRANSITIONS.items() if target in targets)


class NoShowParty(enum.StrEnum):
    MENTOR = "mentor"
    LEARNER = "learner"


class RefundStatus(enum.StrEnum):
    NONE = "none"
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class Booking(TimestampMixin, Model):
    __tablename__ = "bookings"
    __table_args__ = (
        CheckConstraint("end_at > start_at", name="ends_after_start"),
        CheckConstraint("blocked_until >= end_at", name="buffer_not_negative"),
        CheckConstraint("price_cents >= 0", name="price_not_negative"),
        Index("ix_bookings_mentor_start", "mentor_id", "start_at"),
        Index("ix_bookings_learner_status", "learner_id", "status"),
        Index("ix_bookings_status_hold", "status", "hold_expires_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    mentor_id: Mapped[int] = mapped_column(ForeignKey("mentor_profiles.id", ondelete="RESTRICT"))
    learner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    status: Mapped[str] = mapped_column(String(24), default=BookingStatus.PENDING_PAYMENT.value)
    start_at: Mapped[datetime]
    end_at: Mapped[datetime]
    # End plus the mentor's buffer when booked: the range [start_at, blocked_until) is what no other live
    # booking of the mentor may overlap.
    blocked_until: Mapped[datetime]
    duration_minutes: Mapped[int]
    topic: Mapped[str] = mapped_column(Text)
    price_cents: Mapped[int]
    currency: Mapped[str] = mapped_column(String(3))
    hold_expires_at: Mapped[datetime]
    # RFC 5545 SEQUENCE: bumped on every change a calendar must pick up (reschedule, cancel).
    sequence: Mapped[int] = mapped_column(default=0)
    confirmed_at: Mapped[datetime | None]
    cancelled_at: Mapped[datetime | None]
    cancelled_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    cancel_reason: Mapped[str | None] = mapped_column(Text)
    refund_amount_cents: Mapped[int | None]
    refund_status: Mapped[str] = mapped_column(String(16), default=RefundStatus.NONE.value)
    payment_intent_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    payment_client_secret: Mapped[str | None] = mapped_column(String(255))
    # How many PaymentIntents this booking has had: a new one is made when a learner retries after a decline.
    payment_attempts: Mapped[int] = mapped_column(default=0)
    last_payment_error: Mapped[str | None] = mapped_column(String(500))
    refund_reference: Mapped[str | None] = mapped_column(String(255))
    # A Stripe dispute (chargeback): opened, and closed with Stripe's status (`won`, `lost`, ...).
    disputed_at: Mapped[datetime | None]
    dispute_closed_at: Mapped[datetime | None]
    dispute_outcome: Mapped[str | None] = mapped_column(String(32))
    # The party found absent (`NoShowParty`) once a no-show is settled: by one report, or by an admin.
    no_show_party: Mapped[str | None] = mapped_column(String(16))
    # Both parties reported each other: the admins decide (`report_dispute_outcome`); no money moves meanwhile.
    report_dispute_at: Mapped[datetime | None]
    report_dispute_resolved_at: Mapped[datetime | None]
    report_dispute_outcome: Mapped[str | None] = mapped_column(String(16))
    # Set once reconciliation has asked Stripe about a lapsed hold and acted on the answer.
    payment_reconciled_at: Mapped[datetime | None]
    # Set when the mentor accepts a request (before its card is charged): from then on it can no longer be
    # declined, withdrawn or left to expire, so one answer wins.
    mentor_accepted_at: Mapped[datetime | None]
    # When the card was authorized for a mentor who confirms requests (the booking became awaiting_mentor).
    authorized_at: Mapped[datetime | None]

    mentor: Mapped[MentorProfile] = relationship(lazy="joined")
    learner: Mapped[User] = relationship(foreign_keys=[learner_id], lazy="joined")

    @property
    def state(self) -> BookingStatus:
        return BookingStatus(self.status)

    @property
    def disputed(self) -> bool:
        """An open dispute of either kind: a chargeback at Stripe, or reports against each other. Nothing is
        paid out or refunded by policy while it is open."""
        chargeback = self.disputed_at is not None and self.dispute_closed_at is None
        reports = self.report_dispute_at is not None and self.report_dispute_resolved_at is None
        return chargeback or reports

    @property
    def is_live(self) -> bool:
        return self.status in LIVE_STATUSES

    def can_move_to(self, target: BookingStatus) -> bool:
        return target in TRANSITIONS[self.state]

    def is_learner(self, user: User) -> bool:
        return user.id == self.learner_id

    def is_mentor(self, user: User) -> bool:
        return user.id == self.mentor.user_id

    def is_participant(self, user: User) -> bool:
        return self.is_learner(user) or self.is_mentor(user)

    def can_view(self, user: User) -> bool:
        return self.is_participant(user) or user.has_role("admin")

    # Each `can_*` answers whether `user` may do it now: both their part in the booking and its state.

    def can_cancel(self, user: User) -> bool:
        return self.is_participant(user) and self.can_move_to(BookingStatus.CANCELLED)

    def can_reschedule(self, user: User) -> bool:
        """A move keeps the status: any booking that holds its time can be moved."""
        return self.is_participant(user) and self.is_live

    def can_report_no_show(self, user: User, absent: NoShowParty) -> bool:
        """Only the other party reports someone absent: a confirmed session, or (a dispute) one settled as the
        reporter's own absence. The window is checked with the clock by the service."""
        reporter_is_other = self.is_learner(user) if absent is NoShowParty.MENTOR else self.is_mentor(user)
        reporter = NoShowParty.LEARNER if absent is NoShowParty.MENTOR else NoShowParty.MENTOR
        counter_report = self.state is BookingStatus.NO_SHOW and self.no_show_party == reporter.value
        return reporter_is_other and (self.state is BookingStatus.CONFIRMED or counter_report)

    def can_review(self, user: User) -> bool:
        return self.is_learner(user) and self.state is BookingStatus.COMPLETED

    def can_answer(self, user: User) -> bool:
        """The mentor accepts or declines a request while it awaits them and their deadline has not passed."""
        return (
            self.is_mentor(user)
            and self.state is BookingStatus.AWAITING_MENTOR
            and self.hold_expires_at > utcnow()
        )

    def can_pay(self, user: User) -> bool:
        """The learner pays for a hold that is still held (a fresh PaymentIntent after a declined card)."""
        return (
            self.is_learner(user)
            and self.state is BookingStatus.PENDING_PAYMENT
            and self.hold_expires_at > utcnow()
        )

    @property
    def payment(self) -> dict[str, object]:
        return {
            "provider": "stripe",
            "payment_intent_id": self.payment_intent_id,
            "client_secret": self.payment_client_secret
            if self.state is BookingStatus.PENDING_PAYMENT
            else None,
            "last_error": self.last_payment_error,
        }

    @property
    def refund(self) -> dict[str, object] | None:
        if self.refund_amount_cents is None:
            return None
        return {"amount_cents": self.refund_amount_cents, "status": self.refund_status}


class Review(Model):
    __tablename__ = "reviews"
    __table_args__ = (CheckConstraint("rating BETWEEN 1 AND 5", name="rating_range"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    booking_id: Mapped[int] = mapped_column(ForeignKey("bookings.id", ondelete="CASCADE"), unique=True)
    mentor_id: Mapped[int] = mapped_column(ForeignKey("mentor_profiles.id", ondelete="CASCADE"), index=True)
    learner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    rating: Mapped[int]
    comment: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class NoShowReport(Model):
    """One party's report that the other did not come: at most one per booking and absent party."""

    __tablename__ = "no_show_reports"
    __table_args__ = (UniqueConstraint("booking_id", "absent_party"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    booking_id: Mapped[int] = mapped_column(ForeignKey("bookings.id", ondelete="CASCADE"), index=True)
    reporter_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    absent_party: Mapped[str] = mapped_column(String(16))
    note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class CalendarFeed(Model):
    """A mentor's private subscription URL; only a hash of its secret is kept, so rotating is the way back."""

    __tablename__ = "calendar_feeds"
    __table_args__ = (UniqueConstraint("token_hash"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    mentor_id: Mapped[int] = mapped_column(ForeignKey("mentor_profiles.id", ondelete="CASCADE"), unique=True)
    token_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
