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
    taken = [(EarningKind.SESSION.value, 0)]  # what each money fact took from the price, in a fixed order
    if refunded:
        taken.append((EarningKind.REFUND_REVERSAL.value, refunded))
    by_admins = db.session.execute(
        select(AdminRefund.id, AdminRefund.amount_cents)
        .where(AdminRefund.booking_id == booking.id, AdminRefund.status == RefundStatus.SUCCEEDED.value)
        .order_by(AdminRefund.id)
    ).all()
    for refund_id, amount in by_admins:
        taken.append((admin_refund_kind(refund_id), amount))
        refunded += amount
    # A dispute holds the payout while open; only a lost one takes the money, like a refund of what is left.
    if booking.dispute_outcome == DISPUTE_LOST and booking.price_cents > refunded:
        taken.append((EarningKind.DISPUTE_REVERSAL.value, booking.price_cents - refunded))
    present = dict(
        db.session.execute(
            select(EarningEntry.kind, EarningEntry.amount_cents).where(EarningEntry.booking_id == booking.id)
        ).all()
    )
    # Each new entry brings the booking's total to the share of what is kept so far, so the entries always
    # add up to the share of what the platform kept: no cent is lost or gained to rounding, however many.
    taken_so_far = sum(amount for kind, amount in taken if kind in present)
    balance = sum(present.values())
    reduced = False
    for kind, amount in taken:
        if kind in present:
            continue
        taken_so_far += amount
        entry = _mentor_share(max(booking.price_cents - taken_so_far, 0)) - balance
        if entry and _add_entry(booking, kind, entry):
            balance += entry
            reduced |= entry < 0
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
