"""The mentor earnings ledger: append-only entries derived from each booking's money facts."""

from __future__ import annotations

import logging
from typing import Any

from flask import current_app
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from marketplace.accounts.models import User
from marketplace.bookings.models import Booking, RefundStatus
from marketplace.core import outbox
from marketplace.extensions import db
from marketplace.mentors.service import own_profile
from marketplace.payments.models import DISPUTE_LOST, AdminRefund, EarningEntry, EarningKind, MentorTransfer

log = logging.getLogger(__name__)

REVERSE_TRANSFER_TASK = "payments.reverse_transfer"


def _mentor_share(amount_cents: int) -> int:
    fee = round(amount_cents * int(current_app.config["PLATFORM_FEE_PERCENT"]) / 100)
    return amount_cents - fee


def sync_ledger(booking: Booking) -> None:
    """Add whichever ledger entries the booking's money facts call for and the ledger lacks.

    Derived from the booking, not from the event at hand, so events arriving in any order (a dispute before
    the payment, a refund before the confirmation) end with the same entries. A new negative entry on a
    booking already transferred to its mentor takes that much back from the transfer (`REVERSE_TRANSFER_TASK`,
    after the commit: no Stripe call under the event's locks).
    """
    if booking.confirmed_at is None:
        return
    refunded = (booking.refund_amount_cents or 0) if booking.refund_status == RefundStatus.SUCCEEDED else 0
    wanted = {EarningKind.SESSION.value: _mentor_share(booking.price_cents)}
    if refunded:
        wanted[EarningKind.REFUND_REVERSAL.value] = -_mentor_share(refunded)
    by_admins = db.session.execute(
        select(AdminRefund.id, AdminRefund.amount_cents).where(
            AdminRefund.booking_id == booking.id, AdminRefund.status == RefundStatus.SUCCEEDED.value
        )
    ).all()
    for refund_id, amount in by_admins:
        wanted[admin_refund_kind(refund_id)] = -_mentor_share(amount)
        refunded += amount
    # A dispute holds the payout while open; only a lost one takes the money, like a refund of what is left.
    if booking.dispute_outcome == DISPUTE_LOST and booking.price_cents > refunded:
        wanted[EarningKind.DISPUTE_REVERSAL.value] = -_mentor_share(booking.price_cents - refunded)
    present = set(db.session.scalars(select(EarningEntry.kind).where(EarningEntry.booking_id == booking.id)))
    reduced = False
    for kind, amount in wanted.items():
        if kind not in present and amount:
            reduced |= _add_entry(booking, kind, amount) and amount < 0
    transferred = select(MentorTransfer.id).where(MentorTransfer.booking_id == booking.id)
    if reduced and db.session.scalar(transferred) is not None:
        outbox.enqueue(REVERSE_TRANSFER_TASK, booking_id=booking.id)


def admin_refund_kind(refund_id: int) -> str:
    """One entry per admin refund (a booking may have several): the kind names the refund."""
    return f"{EarningKind.ADMIN_REFUND.value}:{refund_id}"


def _add_entry(booking: Booking, kind: str, amount_cents: int) -> bool:
    try:
        with db.session.begin_nested():
            db.session.add(
                EarningEntry(
                    mentor_id=booking.mentor_id,
                    booking_id=booking.id,
                    kind=kind,
                    amount_cents=amount_cents,
                    currency=booking.currency,
                )
            )
    except IntegrityError:
        log.info("earning entry %s for booking %s already recorded", kind, booking.id)
        return False
    return True


def earnings_of(user: User) -> dict[str, Any]:
    profile = own_profile(user)
    entries = db.session.scalars(
        select(EarningEntry)
        .where(EarningEntry.mentor_id == profile.id)
        .order_by(EarningEntry.created_at.desc(), EarningEntry.id.desc())
        .limit(200)
    ).all()
    return {"balances": _totals(EarningEntry.mentor_id == profile.id), "entries": entries}


def earnings_report() -> list[dict[str, Any]]:
    """What the platform owes each mentor, per currency: the basis for settling by transfers."""
    return _totals(None, EarningEntry.mentor_id)


def _totals(condition: Any, *group_by: Any) -> list[dict[str, Any]]:
    columns = (*group_by, EarningEntry.currency)
    stmt = select(
        *columns,
        func.sum(EarningEntry.amount_cents).label("balance_cents"),
        func.sum(EarningEntry.amount_cents)
        .filter(EarningEntry.payout_reference.is_(None))
        .label("unpaid_cents"),
        func.count().label("entries"),
    )
    if condition is not None:
        stmt = stmt.where(condition)
    rows = db.session.execute(stmt.group_by(*columns).order_by(*columns))
    return [
        {
            **{column.key: getattr(row, column.key) for column in columns},
            "balance_cents": int(row.balance_cents or 0),
            "unpaid_cents": int(row.unpaid_cents or 0),
            "entries": row.entries,
        }
        for row in rows
    ]
