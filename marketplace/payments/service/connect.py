"""Mentor payouts with Stripe Connect: Express accounts, onboarding links, what a mentor sees of their payouts,
and the Connect events that keep it current (`account.updated`, `transfer.*`, `payout.paid`/`payout.failed`).
Transfers and reversals are in `transfers`.

As everywhere in payments: Stripe is called with no transaction open, under an idempotency key, and its answer
is applied in a short unit of its own (`run_in_unit`) that checks again what it changes.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select

from marketplace.accounts.models import User
from marketplace.core.db import commit_before_network_call, insert_unless_exists, run_in_unit
from marketplace.core.errors import ServiceUnavailable, Unprocessable
from marketplace.core.time import utcnow
from marketplace.extensions import db
from marketplace.mentors.service import own_profile
from marketplace.payments import intents
from marketplace.payments.gateway import (
    STRIPE_ID,
    ConnectedAccount,
    PaymentProviderUnavailable,
    PaymentRejected,
    connected_account,
    request_gateway,
)
from marketplace.payments.models import (
    AccountStatus,
    ConnectPayout,
    EarningEntry,
    MentorTransfer,
    PayoutAccount,
)

log = logging.getLogger(__name__)

NOT_OURS = "ignored: not ours"


# --- onboarding ------------------------------------------------------------------------------------


def _account_of(mentor_id: int) -> PayoutAccount | None:
    return db.session.scalar(select(PayoutAccount).where(PayoutAccount.mentor_id == mentor_id))


def onboarding_link(user: User, return_url: str, refresh_url: str) -> dict[str, Any]:
    """A fresh, single-use onboarding link for the asking mentor's Express account (made on the first call).

    Every call checks who asks (a mentor, for their own account): the refresh URL Stripe sends a browser to
    when a link expired or was used ends up here too, so nobody gets a link to someone else's account.
    """
    profile = own_profile(user)
    account = _account_of(profile.id)
    account_id = account.stripe_account_id if account else None
    # Two first calls at once make one account; the email keeps the key unique to this person should
    # mentor ids ever be reused (a database restored or rebuilt against the same Stripe account).
    key = f"mentor:{profile.id}:{hashlib.sha256(user.email.encode()).hexdigest()[:16]}:account"
    mentor_id = profile.id
    commit_before_network_call()
    try:
        if account_id is None:
            made = request_gateway().create_account(
                metadata={intents.DEPLOYMENT_KEY: intents.deployment_id(), "mentor_id": str(mentor_id)},
                idempotency_key=key,
            )
            account_id = run_in_unit(_store_account, mentor_id, made)
        link = request_gateway().onboarding_link(
            account_id=account_id, refresh_url=refresh_url, return_url=return_url
        )
    except PaymentProviderUnavailable as exc:
        raise ServiceUnavailable("The payment provider cannot be reached; please try again shortly.") from exc
    except PaymentRejected as exc:
        raise Unprocessable(f"The payment provider refused the onboarding link: {exc}") from exc
    return {"url": link.url, "expires_at": datetime.fromtimestamp(link.expires_at, UTC)}


def _store_account(mentor_id: int, made: ConnectedAccount) -> str:
    """Record the new account; a concurrent first call recorded one already (the same, by its key)."""
    insert_unless_exists(
        PayoutAccount,
        mentor_id=mentor_id,
        stripe_account_id=made.id,
        charges_enabled=made.charges_enabled,
        payouts_enabled=made.payouts_enabled,
        transfers_enabled=made.transfers_enabled,
        details_submitted=made.details_submitted,
        requirements_due=made.requirements_due,
        disabled_reason=made.disabled_reason,
        created_at=utcnow(),
        updated_at=utcnow(),
    )
    return (
        db.session.scalar(select(PayoutAccount.stripe_account_id).where(PayoutAccount.mentor_id == mentor_id))
        or made.id
    )


def payouts_of(user: User) -> dict[str, Any]:
    """The asking mentor's account state, money on its way and the transfers made to them."""
    profile = own_profile(user)
    account = _account_of(profile.id)
    transfers = db.session.scalars(
        select(MentorTransfer)
        .where(MentorTransfer.mentor_id == profile.id)
        .order_by(MentorTransfer.created_at.desc(), MentorTransfer.id.desc())
        .limit(200)
    ).all()
    transferred = db.session.scalar(
        select(func.sum(MentorTransfer.amount_cents - MentorTransfer.amount_reversed_cents)).where(
            MentorTransfer.mentor_id == profile.id
        )
    )
    paid_out = 0
    payouts: list[ConnectPayout] = []
    if account is not None:
        paid_out = (
            db.session.scalar(
                select(func.sum(ConnectPayout.amount_cents)).where(
                    ConnectPayout.payout_account_id == account.id, ConnectPayout.status == "paid"
                )
            )
            or 0
        )
        payouts = list(
            db.session.scalars(
                select(ConnectPayout)
                .where(ConnectPayout.payout_account_id == account.id)
                .order_by(ConnectPayout.updated_at.desc())
                .limit(50)
            )
        )
    pending = db.session.scalar(
        select(func.sum(EarningEntry.amount_cents)).where(
            EarningEntry.mentor_id == profile.id, EarningEntry.payout_reference.is_(None)
        )
    )
    return {
        "account_status": account.status if account else AccountStatus.NONE.value,
        "charges_enabled": bool(account and account.charges_enabled),
        "payouts_enabled": bool(account and account.payouts_enabled),
        "requirements_due": list(account.requirements_due) if account else [],
        "disabled_reason": account.disabled_reason if account else None,
        "currency": profile.currency,
        "balance_cents": int(transferred or 0) - int(paid_out),
        "pending_cents": max(int(pending or 0), 0),
        "transfers": transfers,
        "payouts": payouts,
    }


# --- Connect events --------------------------------------------------------------------------------


def on_account_updated(obj: dict[str, Any], _account: str | None) -> str:
    account_id = obj.get("id")
    account = db.session.scalar(
        select(PayoutAccount).where(PayoutAccount.stripe_account_id == account_id).with_for_update(key_share=True)
    ) if isinstance(account_id, str) and STRIPE_ID.fullmatch(account_id) else None  # fmt: skip
    if account is None:
        return NOT_OURS
    apply_account_state(account, connected_account(obj))
    return f"account {account.status}"


def apply_account_state(account: PayoutAccount, state: ConnectedAccount) -> None:
    """Keep what Stripe says of the account (an `account.updated`, or the account read again)."""
    account.charges_enabled = state.charges_enabled
    account.payouts_enabled = state.payouts_enabled
    account.transfers_enabled = state.transfers_enabled
    account.details_submitted = state.details_submitted
    account.requirements_due = state.requirements_due
    account.disabled_reason = state.disabled_reason
    account.updated_at = utcnow()


def on_transfer_changed(obj: dict[str, Any], _account: str | None) -> str:
    """`transfer.*`: ours when we recorded the transfer; keeps the reversed amount Stripe reports."""
    transfer = db.session.scalar(
        select(MentorTransfer).where(MentorTransfer.stripe_transfer_id == obj.get("id")).with_for_update(key_share=True)
    ) if isinstance(obj.get("id"), str) else None  # fmt: skip
    if transfer is None:
        return NOT_OURS
    reversed_now = obj.get("amount_reversed")
    if isinstance(reversed_now, int) and reversed_now > transfer.amount_reversed_cents:
        transfer.amount_reversed_cents = min(reversed_now, transfer.amount_cents)
    return "recorded transfer"


def on_payout(obj: dict[str, Any], account_id: str | None) -> str:
    """`payout.paid`/`payout.failed` of a connected account we made (the event's top-level `account`)."""
    account = db.session.scalar(
        select(PayoutAccount).where(PayoutAccount.stripe_account_id == account_id)
    ) if account_id and STRIPE_ID.fullmatch(account_id) else None  # fmt: skip
    payout_id, amount = obj.get("id"), obj.get("amount")
    if account is None or not isinstance(payout_id, str) or not STRIPE_ID.fullmatch(payout_id):
        return NOT_OURS
    if not isinstance(amount, int) or isinstance(amount, bool):
        return "ignored: malformed event"
    status = "paid" if obj.get("status") == "paid" else "failed"
    failure = str(obj["failure_message"])[:500] if obj.get("failure_message") else None
    payout = db.session.get(ConnectPayout, payout_id)
    if payout is None:
        payout = ConnectPayout(id=payout_id, payout_account_id=account.id)
        db.session.add(payout)
    payout.amount_cents = amount
    payout.currency = str(obj.get("currency", ""))[:3].upper()
    payout.status = status
    payout.failure_message = failure
    payout.updated_at = utcnow()
    return f"payout {status}"


CONNECT_HANDLERS = {
    "account.updated": on_account_updated,
    "transfer.created": on_transfer_changed,
    "transfer.updated": on_transfer_changed,
    "transfer.reversed": on_transfer_changed,
    "payout.paid": on_payout,
    "payout.failed": on_payout,
}
