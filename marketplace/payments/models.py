from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from marketplace.core.time import utcnow
from marketplace.extensions import Model


class StripeEvent(Model):
    """Every webhook event, stored once by its Stripe id before anything acts on it.

    Until processed it is retried by the redelivery sweep, each failure pushing `next_attempt_at` further
    out; after `PAYMENT_EVENT_MAX_ATTEMPTS` failures it is parked (`parked_at`) until an admin replays it.
    """

    __tablename__ = "stripe_events"

    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    type: Mapped[str] = mapped_column(String(100), index=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    processed_at: Mapped[datetime | None]
    outcome: Mapped[str | None] = mapped_column(String(255))
    # Failed processing attempts since it was received or last replayed.
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(String(500))
    next_attempt_at: Mapped[datetime | None]
    parked_at: Mapped[datetime | None] = mapped_column(index=True)

    @property
    def state(self) -> str:
        if self.processed_at is not None:
            return EventState.PROCESSED.value
        if self.parked_at is not None:
            return EventState.FAILED.value
        return EventState.PENDING.value

    @property
    def object_id(self) -> str | None:
        """The id of the Stripe object the event is about (its payload is not shown: it holds secrets)."""
        data = self.payload.get("data") if isinstance(self.payload, dict) else None
        obj = data.get("object") if isinstance(data, dict) else None
        found = obj.get("id") if isinstance(obj, dict) else None
        return found if isinstance(found, str) else None


class EventState(enum.StrEnum):
    PENDING = "pending"
    PROCESSED = "processed"
    FAILED = "failed"


class IssuedIntent(Model):
    """Every PaymentIntent this deployment opened, and the booking it pays for.

    Proof that an intent is ours: an event about any intent not listed here (another product on the same
    Stripe account, a forged booking id) is stored and ignored, never refunded or changed at Stripe. A
    booking's earlier intents (replaced after a declined card) stay listed, so a late payment of one is
    still recognised.
    """

    __tablename__ = "issued_intents"

    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    booking_id: Mapped[int] = mapped_column(ForeignKey("bookings.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class EarningKind(enum.StrEnum):
    SESSION = "session"
    REFUND_REVERSAL = "refund_reversal"
    DISPUTE_REVERSAL = "dispute_reversal"
    ADMIN_REFUND = "admin_refund"


# Stripe's status of a dispute closed in the cardholder's favour: the money is gone.
DISPUTE_LOST = "lost"


class EarningEntry(Model):
    """An append-only ledger of what the platform owes each mentor, in the booking's currency.

    A paid booking adds its price less the platform fee; a refund, an admin's refund (`admin_refund:<id>`, one
    per refund) or a lost dispute adds a negative entry for the mentor's share of it. One entry per booking and
    kind, so replays cannot double-count. `payout_reference` names the Stripe Transfer that paid the entry to
    the mentor (`MentorTransfer`), once one did.
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


class PayoutAccount(Model):
    """A mentor's Stripe Express account, made on their first onboarding request; its state as the last
    `account.updated` told it. Connect events about any account not listed here are not ours."""

    __tablename__ = "payout_accounts"

    id: Mapped[int] = mapped_column(primary_key=True)
    mentor_id: Mapped[int] = mapped_column(ForeignKey("mentor_profiles.id", ondelete="RESTRICT"), unique=True)
    stripe_account_id: Mapped[str] = mapped_column(String(255), unique=True)
    charges_enabled: Mapped[bool] = mapped_column(default=False)
    payouts_enabled: Mapped[bool] = mapped_column(default=False)
    # The `transfers` capability is active: transfers to the account can be made.
    transfers_enabled: Mapped[bool] = mapped_column(default=False)
    details_submitted: Mapped[bool] = mapped_column(default=False)
    requirements_due: Mapped[list[str]] = mapped_column(JSON, default=list)
    disabled_reason: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    @property
    def status(self) -> str:
        """`enabled` (transfers and payouts work), `restricted` (submitted, but Stripe wants more) or
        `onboarding` (the mentor has not finished Stripe's form)."""
        if self.transfers_enabled and self.payouts_enabled:
            return AccountStatus.ENABLED.value
        if self.details_submitted:
            return AccountStatus.RESTRICTED.value
        return AccountStatus.ONBOARDING.value


class AccountStatus(enum.StrEnum):
    NONE = "none"
    ONBOARDING = "onboarding"
    RESTRICTED = "restricted"
    ENABLED = "enabled"


class MentorTransfer(Model):
    """The one Stripe Transfer that paid a mentor for a settled booking (idempotency key per booking), and
    how much of it was reversed after refunds or a lost dispute."""

    __tablename__ = "mentor_transfers"

    id: Mapped[int] = mapped_column(primary_key=True)
    booking_id: Mapped[int] = mapped_column(ForeignKey("bookings.id", ondelete="RESTRICT"), unique=True)
    mentor_id: Mapped[int] = mapped_column(ForeignKey("mentor_profiles.id", ondelete="RESTRICT"), index=True)
    stripe_transfer_id: Mapped[str] = mapped_column(String(255), unique=True)
    amount_cents: Mapped[int]
    amount_reversed_cents: Mapped[int] = mapped_column(default=0)
    currency: Mapped[str] = mapped_column(String(3))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ConnectPayout(Model):
    """A payout from a mentor's connected account to their bank, as `payout.paid`/`payout.failed` told it."""

    __tablename__ = "connect_payouts"

    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    payout_account_id: Mapped[int] = mapped_column(
        ForeignKey("payout_accounts.id", ondelete="CASCADE"), index=True
    )
    amount_cents: Mapped[int]
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(16))
    failure_message: Mapped[str | None] = mapped_column(String(500))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class AdminRefund(Model):
    """A refund an admin made by hand: who, how much, why, and what Stripe answered.

    Written (pending) before Stripe is asked, so a refund in flight already counts against what is left to
    refund; `request_key` (the request's Idempotency-Key) makes a repeated request the same refund.
    """

    __tablename__ = "admin_refunds"
    __table_args__ = (UniqueConstraint("booking_id", "request_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    booking_id: Mapped[int] = mapped_column(ForeignKey("bookings.id", ondelete="RESTRICT"), index=True)
    admin_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    request_key: Mapped[str] = mapped_column(String(255))
    amount_cents: Mapped[int]
    reason: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    refund_reference: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class RefusedTransfer(Model):
    """A settled booking whose transfer the provider refused (the mentor's account disabled, the platform's
    balance short, ...): parked with the provider's reason for the admins to see, and tried again by the
    transfer sweep after a doubling delay until it goes through, when the row is deleted."""

    __tablename__ = "refused_transfers"

    booking_id: Mapped[int] = mapped_column(ForeignKey("bookings.id", ondelete="CASCADE"), primary_key=True)
    mentor_id: Mapped[int] = mapped_column(ForeignKey("mentor_profiles.id", ondelete="CASCADE"), index=True)
    attempts: Mapped[int] = mapped_column(default=1)
    reason: Mapped[str] = mapped_column(String(500))
    first_refused_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_refused_at: Mapped[datetime] = mapped_column(default=utcnow)
    next_attempt_at: Mapped[datetime] = mapped_column(index=True)
