from __future__ import annotations

from marketplace.core import outbox
from marketplace.core.celery import task
from marketplace.core.db import unit_of_work


@task("outbox.relay_pending", max_retries=0)
def relay_pending() -> int:
    with unit_of_work():
        return outbox.relay_pending()
