from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from marketplace.core.time import utcnow
from marketplace.extensions import db


class StripeEvent(db.Model):
    """Every webhook event, stored once by its Stripe id before anything acts on it."""

    __tablename__ = "stripe_events"

    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    type: Mapped[str] = mapped_column(String(100), index=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    processed_at: Mapped[datetime | None]
    outcome: Mapped[str | None] = mapped_column(String(255))


class EarningKind(enum.StrEnum):
    SESSION = "session"
    REFUND_REVERSAL = "refund_reversal"
    DISPUTE_REVERSAL = "dispute_reversal"


class EarningEntry(db.Model):
    """An append-only ledger of what the platform owes each mentor, in the booking's currency.

    A paid booking adds its price less the platform fee; a refund or a dispute adds a negative entry for the
    mentor's share of it. One entry per booking and kind, so replays cannot double-count. `payout_reference`
    stays empty until a transfer (Stripe Connect, later) settles the entry.
    """

    __tablename__ = "earning_entries"
    __table_args__ = (UniqueConstraint("booking_id", "kind"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    mentor_id: Mapped[int] = mapped_column(ForeignKey("mentor_profiles.id", ondelete="RESTRICT"), index=True)
    booking_id: Mapped[int] = mapped_column(ForeignKey("bookings.id", ondelete="RESTRICT"))
    kind: Mapped[str] = mapped_column(String(32))
    amount_cents: Mapped[int]
    currency: Mapped[str] = mapped_column(String(3))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    payout_reference: Mapped[str | None] = mapped_column(String(255))
