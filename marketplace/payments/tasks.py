"""Payment tasks. Each database step is a unit of its own (`run_in_unit`: retried after a lost race), and no
Stripe call is made inside one."""

from __future__ import annotations

import logging

from celery.exceptions import SoftTimeLimitExceeded

from marketplace.core.celery import task
from marketplace.core.db import read_only_transactions, run_in_unit
from marketplace.payments import service

log = logging.getLogger(__name__)


@task(service.PROCESS_EVENTS_TASK, max_retries=0)
def process_events(items: list[str]) -> int:
    """Stored events, batched by webhook intake or the redelivery sweep, each in its own transaction.

    One that fails does not hold up the others: its failure is counted, and `redeliver_unprocessed` (beat)
    queues it again after a backoff, until it is parked for an admin. Returns how many were processed now.
    """
    processed = 0
    for event_id in items:
        try:
            processed += run_in_unit(service.process_event, event_id) is not None
        except SoftTimeLimitExceeded:
            _record_failure(event_id, "timed out")
            raise
        except Exception as exc:
            log.exception("stripe event %s not processed; the redelivery sweep will try again", event_id)
            _record_failure(event_id, f"{exc.__class__.__name__}: {exc}")
    return processed


def _record_failure(event_id: str, error: str) -> None:
    try:
        run_in_unit(service.record_failure, event_id, error)
    except Exception:  # the event stays unprocessed and is retried; only the count is lost
        log.exception("failure of stripe event %s not recorded", event_id)


def _released_intent(booking_id: int) -> str | None:
    with read_only_transactions():
        return service.released_intent(booking_id)


@task(service.CANCEL_RELEASED_INTENT_TASK)
def cancel_released_intent(booking_id: int) -> str:
    """Read the released hold's intent in a transaction of its own, then call Stripe with none open."""
    intent_id = run_in_unit(_released_intent, booking_id)
    return service.cancel_released_intent(intent_id) if intent_id else "nothing to cancel"


@task("payments.execute_refund")
def execute_refund(booking_id: int) -> str | None:
    return service.execute_refund(booking_id)


@task(service.REFUND_DUPLICATE_TASK)
def refund_duplicate(intent_id: str, amount: int, booking_id: int) -> str:
    return service.refund_duplicate_now(intent_id, amount, booking_id)


@task("payments.reconcile", max_retries=0)
def reconcile() -> dict[str, int]:
    return service.reconcile_payments()


@task("payments.redeliver_unprocessed", max_retries=0)
def redeliver_unprocessed() -> int:
    return run_in_unit(service.redeliver_unprocessed)


@task("payments.transfer_settled", max_retries=0)
def transfer_settled() -> dict[str, int]:
    """Beat: pay mentors for settled sessions, one booking per unit, Stripe called between units."""
    return service.transfer_settled()


@task(service.REVERSE_TRANSFER_TASK)
def reverse_transfer(booking_id: int) -> str:
    return service.reverse_transfer(booking_id)


@task(service.FINISH_CAPTURES_TASK, max_retries=0)
def finish_accepted_captures() -> dict[str, int]:
    """Beat: capture accepted requests whose capture did not happen, or expire them if it no longer can."""
    return service.finish_accepted_captures()


@task("payments.refresh_payout_accounts", max_retries=0)
def refresh_payout_accounts() -> dict[str, int]:
    """Beat: read mentors' possibly stale Connect accounts again; pay those just enabled."""
    return service.refresh_payout_accounts()
