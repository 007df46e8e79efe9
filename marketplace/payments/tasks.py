from __future__ import annotations

import logging

from celery.exceptions import SoftTimeLimitExceeded

from marketplace.core.celery import task
from marketplace.core.db import unit_of_work
from marketplace.payments import service

log = logging.getLogger(__name__)


@task(service.PROCESS_EVENTS_TASK, max_retries=0)
def process_events(items: list[str]) -> int:
    """Stored events, batched by webhook intake or the redelivery sweep, each in its own transaction.

    One that fails does not hold up the others: it stays unprocessed, and `redeliver_unprocessed` (beat)
    queues it again. Returns how many were processed now.
    """
    processed = 0
    for event_id in items:
        try:
            with unit_of_work():
                processed += service.process_event(event_id) is not None
        except SoftTimeLimitExceeded:
            raise
        except Exception:
            log.exception("stripe event %s not processed; the redelivery sweep will try again", event_id)
    return processed


@task("payments.execute_refund")
def execute_refund(booking_id: int) -> str | None:
    with unit_of_work():
        return service.execute_refund(booking_id)


@task("payments.reconcile", max_retries=0)
def reconcile() -> dict[str, int]:
    with unit_of_work():
        return service.reconcile_payments()


@task("payments.redeliver_unprocessed", max_retries=0)
def redeliver_unprocessed() -> int:
    with unit_of_work():
        return service.redeliver_unprocessed()
