"""What was mailed, and which reminders are due: the rows that make sending idempotent and sweepable."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from marketplace.core.time import utcnow
from marketplace.extensions import Model


class EmailStatus(enum.StrEnum):
    PENDING = "pending"  # not sent yet; free to claim (first try, or after a temporary failure)
    SENDING = "sending"  # claimed by a worker at `claimed_at`; taken over only after the lease
    SENT = "sent"
    FAILED = "failed"  # refused for good (5xx), unrenderable, or out of retries: listed for admins to retry


class SentEmail(Model):
    """One message to one recipient, claimed before it goes to SMTP and marked after: the idempotency key.

    A redelivered or retried task finds its row and sends nothing more. Only a crash between the SMTP
    server accepting the message and the `sent` commit can send it twice (after the lease); the
    Message-ID is derived from the key, so a recipient's mail client still sees one message.
    """

    __tablename__ = "sent_emails"
    __table_args__ = (UniqueConstraint("kind", "object_id", "recipient", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(40))
    object_id: Mapped[int]
    recipient: Mapped[str] = mapped_column(String(254))
    # Distinguishes repeats of one kind on one object: a booking's SEQUENCE, a payment attempt.
    version: Mapped[int] = mapped_column(default=0)
    status: Mapped[str] = mapped_column(String(16), default=EmailStatus.PENDING.value, index=True)
    attempts: Mapped[int] = mapped_column(default=0)
    claimed_at: Mapped[datetime | None]
    sent_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ReminderStatus(enum.StrEnum):
    PENDING = "pending"
    CLAIMED = "claimed"  # handed to a send task by the sweep
    SENT = "sent"  # handed to the mailer; its sent_emails row tells how the delivery went
    SKIPPED = "skipped"  # found due only after the session had started (the system was down)


class Reminder(Model):
    """A reminder email due at `due_at` for one participant of a confirmed booking; beat sweeps due rows."""

    __tablename__ = "reminders"
    __table_args__ = (
        UniqueConstraint("booking_id", "user_id", "offset_minutes"),
        Index("ix_reminders_status_due_at", "status", "due_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    booking_id: Mapped[int] = mapped_column(ForeignKey("bookings.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    offset_minutes: Mapped[int]
    due_at: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(16), default=ReminderStatus.PENDING.value)
    claimed_at: Mapped[datetime | None]
    sent_at: Mapped[datetime | None]
