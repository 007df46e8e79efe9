from __future__ import annotations

from marketplace.core.celery import task
from marketplace.core.db import unit_of_work
from marketplace.payments import service


@task("payments.process_event")
def process_event(event_id: str) -> str | None:
    with unit_of_work():
        return service.process_event(event_id)


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
