"""Beat sweeps that close the gaps a crash or a lost webhook leaves in the money's way:

- `finish_accepted_captures`: a request the mentor accepted whose capture never happened (the process died,
  or Stripe failed, between the acceptance and the capture) is captured now, or, when its authorization is
  gone, expired with the slot freed and its learner told (`booking_expired`).
- `refresh_payout_accounts`: mentors' Connect accounts are read again from Stripe, in case an
  `account.updated` was lost; a mentor whose account became able to receive transfers is paid at once for the
  sessions that waited.

Each item is a short unit of its own (`run_in_unit`), Stripe is called with no transaction open, and one item
that fails is logged and left for the next run without holding up the others.
"""

from __future__ import annotations

import logging
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select

from marketplace.bookings.models import Booking, BookingStatus
from marketplace.core.db import run_in_unit
from marketplace.core.time import utcnow
from marketplace.extensions import db
from marketplace.payments.gateway import ConnectedAccount, gateway
from marketplace.payments.models import PayoutAccount
from marketplace.payments.service.approval import finish_capture
from marketplace.payments.service.connect import apply_account_state
from marketplace.payments.service.transfers import transfer_settled

log = logging.getLogger(__name__)

FINISH_CAPTURES_TASK = "payments.finish_accepted_captures"

# An accept in flight finishes its own capture within seconds; the sweep leaves it this long.
CAPTURE_GRACE = timedelta(minutes=5)
# Accounts not yet able to receive transfers are read again this often (a finished onboarding whose
# webhook was lost), and enabled ones once a day (a disabled account whose webhook was lost).
ONBOARDING_REFRESH = timedelta(minutes=30)
ENABLED_REFRESH = timedelta(days=1)


def accepted_uncaptured(now: datetime, limit: int = 100) -> list[int]:
    """Requests accepted more than `CAPTURE_GRACE` ago and still awaiting their capture."""
    return list(
        db.session.scalars(
            select(Booking.id)
            .where(*_accepted_uncaptured(now))
            .order_by(Booking.mentor_accepted_at, Booking.id)
            .limit(limit)
        )
    )


def _accepted_uncaptured(now: datetime) -> tuple[Any, ...]:
    return (
        Booking.status == BookingStatus.AWAITING_MENTOR.value,
        Booking.mentor_accepted_at <= now - CAPTURE_GRACE,
        Booking.payment_intent_id.is_not(None),
    )


def _intent_to_capture(booking_id: int, now: datetime) -> str | None:
    return db.session.scalar(
        select(Booking.payment_intent_id).where(Booking.id == booking_id, *_accepted_uncaptured(now))
    )


def finish_accepted_captures(limit: int = 100) -> dict[str, int]:
    """Capture what accepts left uncaptured; counts per outcome (`confirmed`, `expired`, an intent status
    to look at again next run, `failed`)."""
    now = utcnow()
    outcomes: Counter[str] = Counter()
    for booking_id in run_in_unit(accepted_uncaptured, now, limit):
        try:
            intent_id = run_in_unit(_intent_to_capture, booking_id, now)
            outcome = finish_capture(gateway(), booking_id, intent_id) if intent_id else "settled meanwhile"
        except Exception:
            log.exception("capture of accepted request %s not finished; the next run tries again", booking_id)
            outcome = "failed"
        outcomes[outcome] += 1
    return dict(outcomes)


def accounts_to_refresh(now: datetime, limit: int = 100) -> list[str]:
    """Accounts whose state may be stale, the longest unrefreshed first."""
    return list(
        db.session.scalars(
            select(PayoutAccount.stripe_account_id)
            .where(
                or_(
                    (PayoutAccount.transfers_enabled.is_(False) | PayoutAccount.payouts_enabled.is_(False))
                    & (PayoutAccount.updated_at <= now - ONBOARDING_REFRESH),
                    PayoutAccount.updated_at <= now - ENABLED_REFRESH,
                )
            )
            .order_by(PayoutAccount.updated_at, PayoutAccount.id)
            .limit(limit)
        )
    )


def _store_refreshed(state: ConnectedAccount) -> int | None:
    """Apply the account's state as Stripe tells it now; the mentor's id when it just became able to
    receive transfers."""
    account = db.session.scalar(
        select(PayoutAccount)
        .where(PayoutAccount.stripe_account_id == state.id)
        .with_for_update(key_share=True)
    )
    if account is None:
        return None
    was_enabled = account.transfers_enabled
    apply_account_state(account, state)
    return account.mentor_id if state.transfers_enabled and not was_enabled else None


def refresh_payout_accounts(limit: int = 100) -> dict[str, int]:
    """Read possibly stale accounts again from Stripe and pay the mentors whose accounts became enabled."""
    outcomes: Counter[str] = Counter()
    for account_id in run_in_unit(accounts_to_refresh, utcnow(), limit):
        try:
            enabled_mentor = run_in_unit(_store_refreshed, gateway().retrieve_account(account_id))
        except Exception:
            log.exception("payout account %s not refreshed; the next run tries again", account_id)
            outcomes["failed"] += 1
            continue
        outcomes["refreshed"] += 1
        if enabled_mentor is not None:
            outcomes["enabled"] += 1
            outcomes["transferred"] += transfer_settled(mentor_id=enabled_mentor)["transferred"]
    return dict(outcomes)
