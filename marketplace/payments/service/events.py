"""Stripe events: webhook intake and processing (`reconcile` asks Stripe about the events that never came).

Stripe may deliver an event twice, late, or out of order. Events are stored once by id and processed by a
worker through the outbox; every booking change they cause is a compare-and-swap on the booking's state, so
a repeat or a reordering is a no-op rather than a second transition.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from flask import current_app
from sqlalchemy import Select, or_, select

from marketplace.bookings import approval, signals, state_changes
from marketplace.bookings import service as bookings
from marketplace.bookings.models import Booking, BookingStatus, RefundStatus
from marketplace.core import outbox
from marketplace.core.db import insert_unless_exists
from marketplace.core.errors import Conflict, NotFound
from marketplace.core.time import utcnow
from marketplace.extensions import db
from marketplace.payments import intents
from marketplace.payments.gateway import STRIPE_ID, verify_webhook
from marketplace.payments.models import EventState, IssuedIntent, StripeEvent
from marketplace.payments.service.connect import CONNECT_HANDLERS
from marketplace.payments.service.ledger import sync_ledger
from marketplace.payments.service.refunds import (
    locked_booking,
    on_hold_released,
    refund_duplicate,
    refunded_by_admins,
)

log = logging.getLogger(__name__)

PROCESS_EVENTS_TASK = "payments.process_events"
NOT_OURS = "ignored: not ours"
# Failed events are retried at most this far apart (the delay doubles after each failure up to here).
MAX_RETRY_DELAY = timedelta(hours=1)
MAX_ROW_ID = 2**31 - 1  # the largest integer key the databases hold
_DECIMAL = re.compile(r"[0-9]{1,10}")


# --- intake ----------------------------------------------------------------------------------------


def receive_webhook(payload: bytes, signature: str | None) -> bool:
    """Verify, store once, queue for a worker. False for an event id seen before.

    The stored event is its own outbox row: until a worker sets `processed_at`, `redeliver_unprocessed`
    (beat) hands it to the workers again, so a crash or a broker outage after the commit loses nothing.
    One statement, so the webhook route runs it without a transaction around it.
    """
    event = verify_webhook(payload, signature, current_app.config["STRIPE_WEBHOOK_SECRET"])
    stored = insert_unless_exists(
        StripeEvent, id=event["id"], type=event["type"], payload=event, received_at=utcnow()
    )
    if stored:
        outbox.publish_batched_after_commit(PROCESS_EVENTS_TASK, event["id"])
    return stored


def redeliver_unprocessed(limit: int = 500) -> int:
    """Queue again the stored events no worker has processed after a grace period, each once its backoff
    after a failure has passed; parked events wait for an admin."""
    now = utcnow()
    ids = db.session.scalars(
        select(StripeEvent.id)
        .where(
            StripeEvent.processed_at.is_(None),
            StripeEvent.parked_at.is_(None),
            StripeEvent.received_at <= now - outbox.SWEEP_GRACE,
            or_(StripeEvent.next_attempt_at.is_(None), StripeEvent.next_attempt_at <= now),
        )
        .order_by(StripeEvent.received_at)
        .limit(limit)
    ).all()
    if ids:
        outbox.publish_after_commit(PROCESS_EVENTS_TASK, items=ids)
    return len(ids)


def record_failure(event_id: str, error: str) -> bool:
    """Count a failed attempt at an event: retry later, with a doubling delay, or park it after
    `PAYMENT_EVENT_MAX_ATTEMPTS` failures. True when this failure parked it."""
    event = db.session.scalar(
        select(StripeEvent).where(StripeEvent.id == event_id).with_for_update(key_share=True)
    )
    if event is None or event.processed_at is not None or event.parked_at is not None:
        return False
    now = utcnow()
    event.attempts += 1
    event.last_error = error[:500]
    if event.attempts >= int(current_app.config["PAYMENT_EVENT_MAX_ATTEMPTS"]):
        event.parked_at = now
        event.next_attempt_at = None
        log.error("stripe event %s parked after %s failed attempts: %s", event_id, event.attempts, error)
        return True
    delay = int(current_app.config["PAYMENT_EVENT_RETRY_SECONDS"]) * 2 ** (event.attempts - 1)
    event.next_attempt_at = now + min(timedelta(seconds=delay), MAX_RETRY_DELAY)
    return False


def payment_events(state: EventState) -> Select[StripeEvent]:
    """Stored events in one state, the most recent first (oldest first for those still to process)."""
    stmt = select(StripeEvent)
    if state is EventState.FAILED:
        return stmt.where(StripeEvent.processed_at.is_(None), StripeEvent.parked_at.is_not(None)).order_by(
            StripeEvent.parked_at.desc(), StripeEvent.id
        )
    if state is EventState.PENDING:
        return stmt.where(StripeEvent.processed_at.is_(None), StripeEvent.parked_at.is_(None)).order_by(
            StripeEvent.received_at, StripeEvent.id
        )
    return stmt.where(StripeEvent.processed_at.is_not(None)).order_by(
        StripeEvent.processed_at.desc(), StripeEvent.id
    )


def replay_event(event_id: str) -> StripeEvent:
    """Give a parked (or still pending) event a fresh set of attempts, starting now."""
    event = None
    if STRIPE_ID.fullmatch(event_id):
        event = db.session.scalar(
            select(StripeEvent).where(StripeEvent.id == event_id).with_for_update(key_share=True)
        )
    if event is None:
        raise NotFound("No such payment event.")
    if event.processed_at is not None:
        raise Conflict("This event was processed already; there is nothing to replay.")
    event.attempts = 0
    event.parked_at = None
    event.next_attempt_at = None
    db.session.flush()
    outbox.publish_after_commit(PROCESS_EVENTS_TASK, items=[event.id])
    return event


# --- processing ------------------------------------------------------------------------------------


def process_event(event_id: str) -> str | None:
    """Act on a stored event once; None when it was already processed, is parked, or was never stored.

    An event with a body no handler can read is recorded as ignored rather than retried: it would fail
    the same way every time.
    """
    event = db.session.scalar(
        select(StripeEvent).where(StripeEvent.id == event_id).with_for_update(key_share=True)
    )
    if event is None or event.processed_at is not None or event.parked_at is not None:
        return None
    handler = _HANDLERS.get(event.type)
    connect_handler = CONNECT_HANDLERS.get(event.type)
    obj = _event_object(event.payload)
    if handler is None and connect_handler is None:
        outcome = "ignored"
    elif obj is None:
        outcome = "ignored: malformed event"
    elif connect_handler is not None:
        # A Connect event names the connected account it happened in at the top level.
        account = event.payload.get("account")
        outcome = connect_handler(obj, account if isinstance(account, str) else None)
    else:
        assert handler is not None
        outcome = handler(obj)
    event.processed_at = utcnow()
    event.next_attempt_at = None
    event.outcome = outcome
    return outcome


def _event_object(payload: Any) -> dict[str, Any] | None:
    data = payload.get("data") if isinstance(payload, dict) else None
    obj = data.get("object") if isinstance(data, dict) else None
    return obj if isinstance(obj, dict) else None


def _stripe_id(value: Any) -> str | None:
    return value if isinstance(value, str) and STRIPE_ID.fullmatch(value) else None


def _booking_id(value: Any) -> int | None:
    """A booking id as metadata carries it (a decimal string), if it can name a row."""
    if not isinstance(value, str) or not _DECIMAL.fullmatch(value):
        return None
    number = int(value)
    return number if 0 < number <= MAX_ROW_ID else None


def _cents(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _issued_for(intent_id: Any) -> int | None:
    """The booking this deployment opened the PaymentIntent for; None for anyone else's intent."""
    intent_id = _stripe_id(intent_id)
    if intent_id is None:
        return None
    return db.session.scalar(select(IssuedIntent.booking_id).where(IssuedIntent.id == intent_id))


def _our_booking_for_intent(obj: dict[str, Any]) -> Booking | None:
    """The booking a PaymentIntent pays for, locked, when the intent is this deployment's; else None.

    Three facts must agree: our deployment marker in its metadata, the booking id beside it, and our own
    record of having opened this intent for that booking. Any other intent is someone else's payment (a
    product sharing the Stripe account), and nothing is done to it.
    """
    metadata = obj.get("metadata")
    if not isinstance(metadata, dict) or metadata.get(intents.DEPLOYMENT_KEY) != intents.deployment_id():
        return None
    booking_id = _booking_id(metadata.get("booking_id"))
    if booking_id is None or _issued_for(obj.get("id")) != booking_id:
        return None
    return locked_booking(Booking.id == booking_id)


def _current_booking_for_intent(obj: dict[str, Any]) -> Booking | str:
    """Our booking when `obj` is its current PaymentIntent; otherwise the outcome that ignores the event."""
    booking = _our_booking_for_intent(obj)
    if booking is None:
        return NOT_OURS
    if obj["id"] != booking.payment_intent_id:
        return "ignored: not the current intent"
    return booking


def _our_booking_for_charge(obj: dict[str, Any]) -> Booking | None:
    """The booking behind a charge or dispute, by the PaymentIntent it belongs to, when that intent is ours."""
    booking_id = _issued_for(obj.get("payment_intent"))
    return None if booking_id is None else locked_booking(Booking.id == booking_id)


def _on_intent_succeeded(obj: dict[str, Any]) -> str:
    booking = _our_booking_for_intent(obj)
    if booking is None:
        return NOT_OURS
    intent_id = obj["id"]
    if intent_id != booking.payment_intent_id:
        # A PaymentIntent replaced by a retry was paid after all.
        if booking.state is BookingStatus.PENDING_PAYMENT:
            booking.payment_intent_id = intent_id
        else:
            amount = _cents(obj.get("amount_received")) or _cents(obj.get("amount"))
            refund_duplicate(intent_id, amount, booking.id)
            return "refunded: duplicate payment"
    return settle_paid_booking(booking)


def settle_paid_booking(booking: Booking) -> str:
    """Money for this booking arrived: confirm it, or revive it if its hold lapsed and the slot is free,
    or refund it in full when the slot was taken meanwhile, the learner had cancelled, or the mentor no
    longer takes bookings (suspended: the hold is cancelled now if it was not yet).

    The caller holds the mentor's calendar lock (`locked_booking`), so the mentor's status cannot change
    between this check and the confirmation."""
    if booking.state is BookingStatus.PENDING_PAYMENT and not state_changes.mentor_takes_bookings(
        booking.mentor_id
    ):
        state_changes.release_unpaid_hold(booking.id, bookings.MENTOR_UNAVAILABLE)
    if state_changes.confirm_paid_booking(booking.id):
        sync_ledger(booking)
        return "confirmed"
    db.session.refresh(booking)
    if booking.state in (BookingStatus.CONFIRMED, BookingStatus.COMPLETED, BookingStatus.NO_SHOW):
        return "already confirmed"
    if booking.state is BookingStatus.EXPIRED and state_changes.revive_paid_booking(booking.id):
        sync_ledger(booking)
        return "confirmed after expiry"
    if booking.refund_status == RefundStatus.NONE.value:
        booking.refund_amount_cents = booking.price_cents
        booking.refund_status = RefundStatus.PENDING.value
        outbox.enqueue("payments.execute_refund", booking_id=booking.id)
        signals.late_payment_refunded.send(booking.id)
    return "refunded: slot no longer held"


def _on_intent_authorized(obj: dict[str, Any]) -> str:
    """A card authorized for a mentor who confirms requests (`amount_capturable_updated`)."""
    booking = _current_booking_for_intent(obj)
    if isinstance(booking, str):
        return booking
    if obj.get("status") != "requires_capture":
        return f"ignored: intent {obj.get('status')}"
    return hold_for_mentor(booking)


def hold_for_mentor(booking: Booking) -> str:
    """The card is authorized: the request waits for its mentor, holding the slot. One whose hold was let go
    meanwhile (cancelled, expired, or its mentor suspended) has its authorization released instead."""
    if booking.state is BookingStatus.PENDING_PAYMENT and not state_changes.mentor_takes_bookings(
        booking.mentor_id
    ):
        state_changes.release_unpaid_hold(booking.id, bookings.MENTOR_UNAVAILABLE)  # releases it too
        return "released: mentor unavailable"
    if state_changes.await_mentor(booking.id, utcnow(), approval.confirmation_window()):
        return "awaiting mentor"
    db.session.refresh(booking)
    if booking.state in (BookingStatus.AWAITING_MENTOR, BookingStatus.CONFIRMED):
        return f"ignored: booking {booking.status}"
    on_hold_released(booking.id)
    return "released: slot no longer held"


def _on_intent_failed(obj: dict[str, Any]) -> str:
    booking = _current_booking_for_intent(obj)
    if isinstance(booking, str):
        return booking
    if booking.state is not BookingStatus.PENDING_PAYMENT:
        return f"ignored: booking {booking.status}"
    error = obj.get("last_payment_error")
    error = error if isinstance(error, dict) else {}
    booking.last_payment_error = str(error.get("message") or error.get("code") or "The payment failed.")[:500]
    signals.payment_failed.send(booking.id)
    return "recorded failure"


def _on_intent_canceled(obj: dict[str, Any]) -> str:
    booking = _current_booking_for_intent(obj)
    if isinstance(booking, str):
        return booking
    if state_changes.release_unpaid_hold(booking.id, "The payment was cancelled."):
        return "released hold"
    return f"ignored: booking {booking.status}"


def _on_charge_refunded(obj: dict[str, Any]) -> str:
    booking = _our_booking_for_charge(obj)
    if booking is None:
        return NOT_OURS
    # Stripe counts every refund of the charge; those admins made are recorded by their own rows.
    refunded = _cents(obj.get("amount_refunded")) - refunded_by_admins(booking.id)
    if refunded <= 0:
        return "ignored: refunded by an admin"
    booking.refund_amount_cents = max(booking.refund_amount_cents or 0, refunded)
    booking.refund_status = RefundStatus.SUCCEEDED.value
    sync_ledger(booking)
    signals.refund_succeeded.send(booking.id)
    return "recorded refund"


def _on_dispute_created(obj: dict[str, Any]) -> str:
    booking = _our_booking_for_charge(obj)
    if booking is None:
        return NOT_OURS
    if booking.disputed_at is None:
        booking.disputed_at = utcnow()
        sync_ledger(booking)
        signals.booking_disputed.send(booking.id)
    return "flagged dispute"


def _on_dispute_closed(obj: dict[str, Any]) -> str:
    """The dispute is over: the booking is no longer held for it; a lost one takes the mentor's share."""
    booking = _our_booking_for_charge(obj)
    if booking is None:
        return NOT_OURS
    status = obj.get("status")
    outcome = status[:32] if isinstance(status, str) and status else "closed"
    if booking.dispute_closed_at is None:
        booking.disputed_at = booking.disputed_at or utcnow()
        booking.dispute_closed_at = utcnow()
        booking.dispute_outcome = outcome
        sync_ledger(booking)
    return f"closed dispute: {booking.dispute_outcome}"


_HANDLERS: dict[str, Callable[[dict[str, Any]], str]] = {
    "payment_intent.succeeded": _on_intent_succeeded,
    "payment_intent.amount_capturable_updated": _on_intent_authorized,
    "payment_intent.payment_failed": _on_intent_failed,
    "payment_intent.canceled": _on_intent_canceled,
    "charge.refunded": _on_charge_refunded,
    "charge.dispute.created": _on_dispute_created,
    "charge.dispute.closed": _on_dispute_closed,
}
