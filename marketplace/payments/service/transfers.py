"""Transfers to mentors (Stripe Connect, separate charges and transfers: the learner pays the platform, the
platform transfers the mentor's share of each settled session) and their reversals after refunds or a lost
dispute. Accounts, onboarding and Connect events are in `connect`.

As everywhere in payments: Stripe is called with no transaction open, under an idempotency key, and its answer
is applied in a short unit of its own (`run_in_unit`) that checks again what it changes.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import Select, and_, delete, exists, func, or_, select, update

from marketplace.bookings.models import Booking, BookingStatus, NoShowParty, RefundStatus
from marketplace.core import outbox
from marketplace.core.celery import TransientError
from marketplace.core.db import insert_unless_exists, run_in_unit
from marketplace.core.time import utcnow
from marketplace.extensions import db
from marketplace.payments import intents
from marketplace.payments.gateway import (
    PaymentProviderUnavailable,
    PaymentRejected,
    TransferResult,
    gateway,
)
from marketplace.payments.models import (
    EarningEntry,
    MentorTransfer,
    PayoutAccount,
    RefusedTransfer,
)
from marketplace.payments.service.ledger import REVERSE_TRANSFER_TASK

log = logging.getLogger(__name__)

# A refused transfer is tried again after this, doubling with each refusal up to a day.
FIRST_TRANSFER_RETRY = timedelta(minutes=15)
MAX_TRANSFER_RETRY = timedelta(days=1)


# --- transfers of settled sessions -----------------------------------------------------------------


def _settled(now: datetime) -> tuple[Any, ...]:
    """A booking whose money is the mentor's: the session completed (or the learner did not come, or cancelled
    a paid session too late for a full refund: the mentor keeps the share the ledger kept), the report window after its end (`PAYOUT_DELAY_HOURS`) passed, no dispute open (a chargeback, or the parties'
    reports against each other: `Booking.disputed`), no refund on its way, and some share left to pay."""
    share_left = (
        select(EarningEntry.booking_id)
        .group_by(EarningEntry.booking_id)
        .having(func.sum(EarningEntry.amount_cents) > 0)
    )
    return (
        or_(
            Booking.status == BookingStatus.COMPLETED.value,
            and_(
                Booking.status == BookingStatus.NO_SHOW.value,
                Booking.no_show_party == NoShowParty.LEARNER.value,
            ),
            and_(Booking.status == BookingStatus.CANCELLED.value, Booking.confirmed_at.is_not(None)),
        ),
        Booking.end_at <= now - timedelta(hours=int(current_app.config["PAYOUT_DELAY_HOURS"])),
        or_(Booking.disputed_at.is_(None), Booking.dispute_closed_at.is_not(None)),
        or_(Booking.report_dispute_at.is_(None), Booking.report_dispute_resolved_at.is_not(None)),
        Booking.payment_intent_id.is_not(None),
        Booking.refund_status != RefundStatus.PENDING.value,
        Booking.id.in_(share_left),
        ~exists().where(MentorTransfer.booking_id == Booking.id),
        ~exists().where(RefusedTransfer.booking_id == Booking.id, RefusedTransfer.next_attempt_at > now),
    )


def bookings_to_transfer(now: datetime, limit: int = 200, mentor_id: int | None = None) -> list[int]:
    """Settled bookings not yet transferred whose mentor can receive transfers now (of one mentor, if given);
    the others wait (their mentors keep earning) and are picked up by the first sweep after their account is
    enabled."""
    mentor = () if mentor_id is None else (Booking.mentor_id == mentor_id,)
    return list(
        db.session.scalars(
            select(Booking.id)
            .join(PayoutAccount, PayoutAccount.mentor_id == Booking.mentor_id)
            .where(PayoutAccount.transfers_enabled.is_(True), *mentor, *_settled(now))
            .order_by(Booking.end_at, Booking.id)
            .limit(limit)
        )
    )


@dataclass(frozen=True)
class TransferToMake:
    booking_id: int
    mentor_id: int
    amount: int
    currency: str
    destination: str
    intent_id: str
    refusals: int = 0

    @property
    def idempotency_key(self) -> str:
        """One key per booking; a retry after a refusal gets a key of its own, since Stripe answers a key it
        saw with its first answer, the refusal, for a day (`make_transfer` looks for a transfer first)."""
        key = f"booking:{self.booking_id}:transfer:{self.intent_id}"
        return f"{key}:retry-{self.refusals}" if self.refusals else key


def transfer_to_make(booking_id: int) -> TransferToMake | None:
    """What to transfer for the booking (its ledger's net share), if it still qualifies."""
    found = db.session.execute(
        select(Booking, PayoutAccount.stripe_account_id)
        .join(PayoutAccount, PayoutAccount.mentor_id == Booking.mentor_id)
        .where(Booking.id == booking_id, PayoutAccount.transfers_enabled.is_(True), *_settled(utcnow()))
    ).first()
    if found is None:
        return None
    booking, destination = found
    share = db.session.scalar(
        select(func.sum(EarningEntry.amount_cents)).where(EarningEntry.booking_id == booking_id)
    )
    refusals = db.session.scalar(
        select(RefusedTransfer.attempts).where(RefusedTransfer.booking_id == booking_id)
    )
    return TransferToMake(
        booking.id,
        booking.mentor_id,
        int(share or 0),
        booking.currency,
        destination,
        str(booking.payment_intent_id),
        refusals or 0,
    )


def make_transfer(booking_id: int) -> str:
    """Transfer a settled booking's share to its mentor, once: read (a unit), ask Stripe with no transaction
    open (the idempotency key makes a repeat after a crash return the same transfer), record (a unit). A
    refusal parks the booking with Stripe's reason (`RefusedTransfer`) until its retry is due."""
    wanted = run_in_unit(transfer_to_make, booking_id)
    if wanted is None or wanted.amount <= 0:
        return "nothing to transfer"
    try:
        made = _create_transfer(wanted)
    except PaymentProviderUnavailable as exc:
        raise TransientError(str(exc)) from exc
    except PaymentRejected as exc:
        run_in_unit(_park_refused, wanted, str(exc))
        log.warning("transfer for booking %s refused (%s); tried again later", booking_id, exc)
        return "refused"
    if made is None:
        return "no charge to transfer from"
    run_in_unit(_record_transfer, wanted, made.id, made.amount_reversed)
    return made.id


def _create_transfer(wanted: TransferToMake) -> TransferResult | None:
    """Stripe's transfer of the booking's share from its charge; a retry after a refusal first looks for one
    an earlier attempt made (its answer lost), since its new key would not find it."""
    charge = gateway().charge_of(wanted.intent_id)
    if charge is None:
        return None
    group = intents.transfer_group(wanted.booking_id)
    made = (
        gateway().transfer_from(transfer_group=group, source_transaction=charge) if wanted.refusals else None
    )
    return made or gateway().create_transfer(
        amount=wanted.amount,
        currency=wanted.currency,
        destination=wanted.destination,
        source_transaction=charge,
        transfer_group=group,
        metadata={intents.DEPLOYMENT_KEY: intents.deployment_id(), "booking_id": str(wanted.booking_id)},
        idempotency_key=wanted.idempotency_key,
    )


def _park_refused(wanted: TransferToMake, reason: str) -> None:
    """Record a refusal: the reason for the admins, the next try after a doubling delay."""
    now = utcnow()
    parked = db.session.get(RefusedTransfer, wanted.booking_id, with_for_update={"key_share": True})
    if parked is None:
        parked = RefusedTransfer(booking_id=wanted.booking_id, mentor_id=wanted.mentor_id, attempts=0,
                                 first_refused_at=now)  # fmt: skip
        db.session.add(parked)
    parked.attempts += 1
    parked.reason = reason[:500]
    parked.last_refused_at = now
    parked.next_attempt_at = now + min(FIRST_TRANSFER_RETRY * 2 ** (parked.attempts - 1), MAX_TRANSFER_RETRY)


def refused_transfers() -> Select[RefusedTransfer]:
    """The parked transfers, for the admins: the most recently refused first."""
    return select(RefusedTransfer).order_by(
        RefusedTransfer.last_refused_at.desc(), RefusedTransfer.booking_id
    )


def _record_transfer(wanted: TransferToMake, transfer_id: str, amount_reversed: int) -> None:
    insert_unless_exists(
        MentorTransfer,
        booking_id=wanted.booking_id,
        mentor_id=wanted.mentor_id,
        stripe_transfer_id=transfer_id,
        amount_cents=wanted.amount,
        amount_reversed_cents=amount_reversed,
        currency=wanted.currency,
        created_at=utcnow(),
    )
    db.session.execute(delete(RefusedTransfer).where(RefusedTransfer.booking_id == wanted.booking_id))
    _point_entries_at(wanted.booking_id, transfer_id)
    # A refund or dispute recorded while Stripe was making the transfer found no transfer to reverse yet.
    if reversal_to_make(wanted.booking_id) is not None:
        outbox.enqueue(REVERSE_TRANSFER_TASK, booking_id=wanted.booking_id)


def _point_entries_at(booking_id: int, transfer_id: str) -> None:
    db.session.execute(
        update(EarningEntry)
        .where(EarningEntry.booking_id == booking_id, EarningEntry.payout_reference.is_(None))
        .values(payout_reference=transfer_id)
        .execution_options(synchronize_session=False)
    )


def transfer_settled(limit: int = 200, mentor_id: int | None = None) -> dict[str, int]:
    """The beat sweep: one transfer per settled booking, each in units of its own; one that fails waits for
    the next sweep without holding up the others."""
    outcomes: Counter[str] = Counter()
    for booking_id in run_in_unit(bookings_to_transfer, utcnow(), limit, mentor_id):
        try:
            made = make_transfer(booking_id)
        except TransientError:
            log.exception("transfer for booking %s not made; the next sweep tries again", booking_id)
            made = "failed"
        outcomes["transferred" if made.startswith("tr_") else made] += 1
    return {
        "transferred": outcomes["transferred"],
        "failed": outcomes["failed"],
        "refused": outcomes["refused"],
    }


# --- reversals -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReversalToMake:
    transfer_id: str
    amount: int
    reversed_total: int


def reversal_to_make(booking_id: int) -> ReversalToMake | None:
    """How much of the booking's transfer to take back so that what stays with the mentor is the ledger's
    net share (after refunds, in proportion, and a lost dispute); None when nothing more."""
    transfer = db.session.scalar(select(MentorTransfer).where(MentorTransfer.booking_id == booking_id))
    if transfer is None:
        return None
    owed = db.session.scalar(
        select(func.sum(EarningEntry.amount_cents)).where(EarningEntry.booking_id == booking_id)
    )
    target = min(max(transfer.amount_cents - max(int(owed or 0), 0), 0), transfer.amount_cents)
    if target <= transfer.amount_reversed_cents:
        return None
    return ReversalToMake(transfer.stripe_transfer_id, target - transfer.amount_reversed_cents, target)


def reverse_transfer(booking_id: int) -> str:
    """Reverse what a refund or lost dispute took from a transferred booking; Stripe with no transaction open."""
    wanted = run_in_unit(reversal_to_make, booking_id)
    if wanted is None:
        return "nothing to reverse"
    try:
        gateway().reverse_transfer(
            wanted.transfer_id,
            amount=wanted.amount,
            idempotency_key=f"transfer:{wanted.transfer_id}:reversed-to:{wanted.reversed_total}",
        )
    except PaymentProviderUnavailable as exc:
        raise TransientError(str(exc)) from exc
    run_in_unit(_record_reversal, booking_id, wanted)
    return f"reversed {wanted.amount}"


def _record_reversal(booking_id: int, done: ReversalToMake) -> None:
    db.session.execute(
        update(MentorTransfer)
        .where(
            MentorTransfer.booking_id == booking_id,
            MentorTransfer.amount_reversed_cents < done.reversed_total,
        )
        .values(amount_reversed_cents=done.reversed_total)
        .execution_options(synchronize_session=False)
    )
    _point_entries_at(booking_id, done.transfer_id)
