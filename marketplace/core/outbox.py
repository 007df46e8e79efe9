"""The transactional outbox: work that must follow a commit is written as a row inside that commit.

`enqueue()` adds a row to the current transaction. Once the transaction commits, `relay_committed()` hands the
rows it wrote to Celery; if the broker is down the rows simply stay unpublished and the beat task
`outbox.relay_pending` publishes them later. A crash or a Redis outage therefore delays work but never loses
it, and nothing is published for a transaction that rolled back.

A row is done when its consumer has done the work, not when the broker took it: the task machinery
(`core.celery`) marks it `completed_at` after the task returns, or the consumer marks it inside its own
transaction with `complete_current()` so work and mark commit together. A row handed to the broker but not
completed (the message was lost with Redis, the task kept failing) is sent again by the sweep once its
`next_attempt_at` passes, with a delay that doubles per delivery; after `OUTBOX_MAX_ATTEMPTS` deliveries it is
parked (`parked_at`), listed for admins and retried by hand. A broker that refuses the message costs no
attempt: an outage delays work, it does not park it. Delivery is at least once: consumers take ids, re-read
rows and guard on state, so a repeat does no harm.

`publish_batched_after_commit()` is for hot paths whose own rows are their outbox (stored webhook events):
after the commit the item goes to `BatchRelay`, a thread of the process that publishes one message per
task for all the items committed meanwhile, so the request neither waits on the broker nor pays for a
message per item.
"""

from __future__ import annotations

import atexit
import enum
import logging
import os
import re
import threading
import time
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime, timedelta
from typing import Any, cast

from celery import Celery
from flask import current_app
from kombu.exceptions import OperationalError
from sqlalchemy import JSON, Select, String, Table, event, insert, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from marketplace.core.errors import Conflict, NotFound
from marketplace.core.time import utcnow
from marketplace.extensions import Model, db

log = logging.getLogger(__name__)

_PENDING = "outbox_pending"
_BATCHED = -1  # the message id of a batched item in the pending list: it has no row of its own
_COMMITTED = "outbox_committed"
# Rows younger than this are left to the request that wrote them, so the sweep rarely publishes twice.
SWEEP_GRACE = timedelta(seconds=20)
# A delivery's wait for completion doubles per attempt up to this.
MAX_REDELIVERY_DELAY = timedelta(hours=6)
_TASK_ID = re.compile(r"outbox-(\d+)-\d+")
_consuming: ContextVar[int | None] = ContextVar("outbox_message_being_consumed", default=None)


class OutboxMessage(Model):
    __tablename__ = "outbox_messages"

    id: Mapped[int] = mapped_column(primary_key=True)
    task: Mapped[str] = mapped_column(String(120))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    published_at: Mapped[datetime | None]  # the last hand-over to the broker
    attempts: Mapped[int] = mapped_column(default=0)  # hand-overs to the broker (deliveries)
    last_error: Mapped[str | None] = mapped_column(String(500))
    # When the sweep (re)sends it unless completed; NULL once completed or parked.
    next_attempt_at: Mapped[datetime | None] = mapped_column(index=True)
    completed_at: Mapped[datetime | None]  # its consumer did the work
    # Given up after OUTBOX_MAX_ATTEMPTS deliveries: an admin's to retry.
    parked_at: Mapped[datetime | None] = mapped_column(index=True)

    @property
    def state(self) -> str:
        if self.completed_at is not None:
            return MessageState.COMPLETED.value
        return MessageState.FAILED.value if self.parked_at is not None else MessageState.PENDING.value


def enqueue(task: str, **payload: Any) -> int:
    """Schedule `task(**payload)` to run after the current transaction commits, and only then."""
    table = cast(Table, OutboxMessage.__table__)
    now = utcnow()
    row = {
        "task": task,
        "payload": payload,
        "created_at": now,
        "attempts": 0,
        "next_attempt_at": now + SWEEP_GRACE,
    }
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
    published: dict[int, list[int]] = {}  # by the attempt it was
    for message_id, task, payload, *attempt in pending:
        if message_id == _BATCHED:
            BATCH_RELAY.add(celery, task, payload)
            continue
        number = attempt[0] if attempt else 1
        error = _send(celery, message_id, task, payload, attempt=number)
        if message_id is None:
            continue
        if error is None:
            published.setdefault(number, []).append(message_id)
        else:
            db.session.execute(
                update(OutboxMessage)
                .where(OutboxMessage.id == message_id)
                .values(last_error=error)
                .execution_options(synchronize_session=False)
            )
    now = utcnow()
    for number, ids in published.items():
        # A consumer may have completed the row already (eager tasks, a fast worker): leave it completed.
        db.session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id.in_(ids), OutboxMessage.completed_at.is_(None))
            .values(published_at=now, attempts=number, next_attempt_at=now + redelivery_delay(number))
            .execution_options(synchronize_session=False)
        )
    if db.session().in_transaction():  # outcomes were recorded
        db.session.commit()
    return len(published)


def redelivery_delay(attempt: int) -> timedelta:
    """How long delivery `attempt` may take before the row is sent again: doubles per attempt, capped."""
    base = timedelta(seconds=float(current_app.config["OUTBOX_REDELIVER_AFTER_SECONDS"]))
    delay: timedelta = base * 2 ** max(0, attempt - 1)
    return min(delay, MAX_REDELIVERY_DELAY)


def run_committed_here(tasks: Collection[str]) -> int:
    """Run the committed rows of `tasks` in this process now, rather than through the broker (for a command
    whose output must already reflect them); the rest of the commit's rows stay for `relay_committed`."""
    committed = db.session.info.get(_COMMITTED, [])
    mine = [entry for entry in committed if entry[0] not in (None, _BATCHED) and entry[1] in tasks]
    db.session.info[_COMMITTED] = [entry for entry in committed if entry not in mine]
    celery = current_app.extensions["celery"]
    for message_id, task, payload, *_ in mine:
        celery.tasks[task].apply(kwargs=payload, task_id=f"outbox-{message_id}-1", throw=True)
    return len(mine)


def relay_pending(limit: int = 500) -> int:
    """(Re)send rows that are due: never published (a crash, an outage) or published and not completed in
    time. Rows past their last attempt are parked instead. SKIP LOCKED lets several sweepers share the work."""
    stmt = (
        select(OutboxMessage)
        .where(OutboxMessage.next_attempt_at <= utcnow())
        .order_by(OutboxMessage.next_attempt_at, OutboxMessage.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return _publish(db.session.scalars(stmt).all())


def _publish(messages: Sequence[OutboxMessage]) -> int:
    celery = current_app.extensions["celery"]
    max_attempts = int(current_app.config["OUTBOX_MAX_ATTEMPTS"])
    published = 0
    for message in messages:
        now = utcnow()
        if message.attempts >= max_attempts:
            log.error(
                "outbox message %s for %s parked after %s deliveries", message.id, message.task, max_attempts
            )
            message.parked_at, message.next_attempt_at = now, None
            message.last_error = (
                f"not completed after {message.attempts} deliveries; last error: {message.last_error}"[:500]
            )
            continue
        error = _send(celery, message.id, message.task, message.payload, message.attempts + 1)
        if error is None:
            message.attempts += 1
            message.published_at = now
            message.next_attempt_at = now + redelivery_delay(message.attempts)
            published += 1
        else:
            message.last_error = error
            message.next_attempt_at = now + SWEEP_GRACE
    return published


# --- completion and admin retries --------------------------------------------------------------------


def message_id_of(task_id: str | None) -> int | None:
    """The outbox row a Celery task id names (`outbox-<id>-<attempt>`), if it was sent by the outbox."""
    match = _TASK_ID.fullmatch(task_id or "")
    return int(match.group(1)) if match else None


@contextmanager
def consuming(message_id: int | None) -> Iterator[None]:
    """While a task consumes an outbox row: lets `complete_current()` find it."""
    token = _consuming.set(message_id)
    try:
        yield
    finally:
        _consuming.reset(token)


def complete_current() -> None:
    """Mark the row being consumed done inside the consumer's transaction, so the work and the mark commit
    together; after this the task machinery has nothing left to mark."""
    message_id = _consuming.get()
    if message_id is not None:
        complete(message_id)
        _consuming.set(None)


def pending_completion() -> int | None:
    """The row the running task still has to mark done (None when not from the outbox, or marked already)."""
    return _consuming.get()


def complete(message_id: int) -> None:
    db.session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == message_id, OutboxMessage.completed_at.is_(None))
        .values(completed_at=utcnow(), next_attempt_at=None, parked_at=None)
        .execution_options(synchronize_session=False)
    )


def record_failure(message_id: int, error: str) -> None:
    """What the consumer's last failure was, for the admin listing (the row is sent again later)."""
    db.session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == message_id, OutboxMessage.completed_at.is_(None))
        .values(last_error=error[:500])
        .execution_options(synchronize_session=False)
    )


class MessageState(enum.StrEnum):
    FAILED = "failed"  # parked: not completed after the last delivery
    PENDING = "pending"  # waiting for a delivery or for its consumer
    COMPLETED = "completed"


def messages_in(state: MessageState) -> Select[OutboxMessage]:
    """Rows in one state: parked ones the most recently parked first, the others the oldest first."""
    stmt = select(OutboxMessage)
    if state is MessageState.FAILED:
        return stmt.where(OutboxMessage.parked_at.is_not(None)).order_by(
            OutboxMessage.parked_at.desc(), OutboxMessage.id
        )
    if state is MessageState.PENDING:
        return stmt.where(OutboxMessage.next_attempt_at.is_not(None)).order_by(OutboxMessage.id)
    return stmt.where(OutboxMessage.completed_at.is_not(None)).order_by(OutboxMessage.id.desc())


def retry(message_id: int) -> OutboxMessage:
    """An admin's retry of a parked row: a fresh set of deliveries, the first right after the commit."""
    message = db.session.get(OutboxMessage, message_id)
    if message is None:
        raise NotFound("No such outbox message.")
    if message.parked_at is None:
        raise Conflict(f"Only a failed message can be retried; this one is {message.state}.")
    now = utcnow()
    message.parked_at, message.attempts, message.next_attempt_at = None, 0, now + SWEEP_GRACE
    db.session.flush()
    db.session.info.setdefault(_PENDING, []).append((message.id, message.task, message.payload, 1))
    return message


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
