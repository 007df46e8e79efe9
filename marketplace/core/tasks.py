from __future__ import annotations

from marketplace.core import outbox
from marketplace.core.celery import task
from marketplace.core.db import run_in_unit


# Every 30 s by beat. One unit (`run_in_unit`): a lost race runs the sweep again; its rows are locked with
# SKIP LOCKED, so it waits for no other sweeper, and a row published twice is absorbed by its consumer.
@task("outbox.relay_pending", max_retries=0)
def relay_pending() -> int:
    return run_in_unit(outbox.relay_pending)
