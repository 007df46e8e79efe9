"""The transactional outbox: work that must follow a commit is written as a row inside that commit.

`enqueue()` adds a row to the current transaction. Once the transaction commits, `relay_committed()` hands the
rows it wrote to Celery; if the broker is down the rows simply stay unpublished and the beat task
`outbox.relay_pending` publishes them later. A crash or a Redis outage therefore delays work but never loses
it, and nothing is published for a transaction that rolled back. Delivery is at least once: consumers take
ids, re-read rows and guard on state, so a repeat does no harm.

`publish_batched_after_commit()` is for hot paths whose own rows are their outbox (stored webhook events):
after the commit the item goes to `BatchRelay`, a thread of the process that publishes one message per
task for all the items committed meanwhile, so the request neither waits on the broker nor pays for a
message per item.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, cast

from celery import Celery
from flask import current_app
from kombu.exceptions import OperationalError
from sqlalchemy import JSON, String, Table, event, insert, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from marketplace.core.time import utcnow
from marketplace.extensions import Model, db

log = logging.getLogger(__name__)

_PENDING = "outbox_pending"
_BATCHED = -1  # the message id of a batched item in the pending list: it has no row of its own
_COMMITTED = "outbox_committed"
# Rows younger than this are left to the request that wrote them, so the sweep rarely publishes twice.
SWEEP_GRACE = timedelta(seconds=20)


class OutboxMessage(Model):
    __tablename__ = "outbox_messages"

    id: Mapped[int] = mapped_column(primary_key=True)
    task: Mapped[str] = mapped_column(String(120))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    published_at: Mapped[datetime | None] = mapped_column(index=True)
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(String(500))


def enqueue(task: str, **payload: Any) -> int:
    """Schedule `task(**payload)` to run after the current transaction commits, and only then."""
    table = cast(Table, OutboxMessage.__table__)
    row = {"task": task, "payload": payload, "created_at": utcnow(), "attempts": 0}
    message_id: int = db.session.connection().execute(insert(table).returning(table.c.id), row).scalar_one()
    db.session.info.setdefault(_PENDING, []).append((message_id, task, payload))
    return message_id


def publish_after_commit(task: str, **payload: Any) -> None:
    """Publish `task(**payload)` after the commit, for work whose own row already survives a crash.

    For callers that keep a durable "to do" row of their own (a stored webhook event with no processed_at)
    and sweep it themselves: an outbox row would add nothing but two writes on a hot path.
    """
    db.session.info.setdefault(_PENDING, []).append((None, task, payload))


def publish_batched_after_commit(task: str, item: Any) -> None:
    """After the commit, hand `item` to `task(items=[...])` with the other items this process committed
    meanwhile (`BatchRelay`). Like `publish_after_commit`, for work whose own row survives a crash: items
    a dying process had not published yet are the caller's rows to sweep."""
    db.session.info.setdefault(_PENDING, []).append((_BATCHED, task, item))


@event.listens_for(Session, "after_commit")
def _remember_committed(session: Session) -> None:
    pending = session.info.pop(_PENDING, None)
    if pending:
        session.info.setdefault(_COMMITTED, []).extend(pending)


@event.listens_for(Session, "after_soft_rollback")
def _forget_rolled_back(session: Session, previous_transaction: Any) -> None:
    # A savepoint rolling back leaves the enclosing transaction (and its other messages) alive.
    if not previous_transaction.nested:
        session.info.pop(_PENDING, None)


def relay_committed() -> int:
    """Publish what the last commit wrote (called at the request or task edge, right after the commit).

    Publishes from what `enqueue` remembered, then records the outcome in one statement per outcome.
    """
    pending = db.session.info.pop(_COMMITTED, None)
    if not pending:
        return 0
    celery = current_app.extensions["celery"]
    published: list[int] = []
    for message_id, task, payload in pending:
        if message_id == _BATCHED:
            BATCH_RELAY.add(celery, task, payload)
            continue
        error = _send(celery, message_id, task, payload, attempt=1)
        if message_id is None:
            continue
        if error is None:
            published.append(message_id)
        else:
            db.session.execute(
                update(OutboxMessage)
                .where(OutboxMessage.id == message_id)
                .values(attempts=1, last_error=error)
                .execution_options(synchronize_session=False)
            )
    if published:
        db.session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id.in_(published))
            .values(published_at=utcnow(), attempts=1)
            .execution_options(synchronize_session=False)
        )
    if db.session().in_transaction():  # outcomes were recorded
        db.session.commit()
    return len(published)


def relay_pending(limit: int = 500) -> int:
    """Publish rows a crash or an outage left behind; SKIP LOCKED lets several sweepers share the work."""
    stmt = (
        select(OutboxMessage)
        .where(OutboxMessage.published_at.is_(None), OutboxMessage.created_at <= utcnow() - SWEEP_GRACE)
        .order_by(OutboxMessage.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return _publish(db.session.scalars(stmt).all())


def _publish(messages: Sequence[OutboxMessage]) -> int:
    celery = current_app.extensions["celery"]
    published = 0
    for message in messages:
        message.attempts += 1
        message.last_error = _send(celery, message.id, message.task, message.payload, message.attempts)
        if message.last_error is None:
            message.published_at = utcnow()
            published += 1
    return published


def _send(
    celery: Celery, message_id: int | None, task: str, payload: dict[str, Any], attempt: int
) -> str | None:
    """Hand one message to the broker; the error text when the broker cannot take it now."""
    try:
        celery.tasks[task].apply_async(
            kwargs=payload,
            task_id=f"outbox-{message_id}-{attempt}" if message_id is not None else None,
            retry=True,
            retry_policy={"max_retries": 1, "interval_start": 0.2, "interval_step": 0.2},
        )
    except (OperationalError, OSError) as exc:
        error = f"{exc.__class__.__name__}: {exc}"[:500]
        log.warning("outbox message %s for %s not published yet: %s", message_id, task, error)
        return error
    return None


class BatchRelay:
    """Publishes `task(items=[...])` from a thread of this process, one message per (Celery app, task) and wake-up.

    The thread waits `WINDOW_SECONDS` after the first item, so the items of concurrent requests share a
    message; a message holds at most `MAX_ITEMS`. Under eager Celery (tests) an item is published at once,
    in the caller's thread. What is queued is published at interpreter exit; a crash loses it, which is
    why only items that are sweepable rows of their own come here. A forked child starts empty, with a
    thread of its own on first use.
    """

    WINDOW_SECONDS = 0.05
    MAX_ITEMS = 200

    def __init__(self) -> None:
        self._reset()
        os.register_at_fork(after_in_child=self._reset)
        atexit.register(self.flush)

    def _reset(self) -> None:
        self._wakeup = threading.Condition()
        self._queued: dict[tuple[Celery, str], list[Any]] = {}
        self._thread: threading.Thread | None = None

    def add(self, celery: Celery, task: str, item: Any) -> None:
        if celery.conf.task_always_eager:
            _send(celery, None, task, {"items": [item]}, attempt=1)
            return
        with self._wakeup:
            self._queued.setdefault((celery, task), []).append(item)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="outbox-batch-relay", daemon=True)
                self._thread.start()
            self._wakeup.notify()

    def flush(self) -> int:
        """Publish everything queued now; the number of messages sent."""
        with self._wakeup:
            queued, self._queued = self._queued, {}
        sent = 0
        for (celery, task), items in queued.items():
            for start in range(0, len(items), self.MAX_ITEMS):
                batch = items[start : start + self.MAX_ITEMS]
                if _send(celery, None, task, {"items": batch}, attempt=1) is None:
                    sent += 1
        return sent

    def _run(self) -> None:
        while True:
            with self._wakeup:
                self._wakeup.wait_for(lambda: bool(self._queued))
            time.sleep(self.WINDOW_SECONDS)
            try:
                self.flush()
            except Exception:  # the thread must outlive any one failure; the items' rows are swept
                log.exception("batched outbox items not published")


BATCH_RELAY = BatchRelay()
