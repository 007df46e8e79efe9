"""Tasks per second through the embedded default's broker (`make run`: SQLite, Celery's SQLAlchemy transport).

    .venv/bin/python -m bench.embedded_broker_bench [--tasks 1000] [--before-tasks 20]

A throwaway SQLite database and broker file, and one real `celery -A workers worker` of one queue as
`make run` starts them (solo pool, the transport polled every 10 ms). `--tasks` outbox rows for `mentors.refresh_next_available` (a cheap task: one query) are
committed and published while the worker is stopped; then the worker starts, and the clock runs from its
"ready" until every row is marked done by its consumer (`completed_at`): broker, task and completion mark,
end to end. The same is measured as `make run` ran its worker before (prefork pool of 2 processes, kombu's
default polling of 1 s), on fewer tasks: that worker's main loop dispatches to its pool between polls of
the table, so it drains a few tasks a second at any polling interval; the solo pool runs each task
as it takes it. The baseline, measured in the same run, is the same tasks run in-process (no broker), with their
completion marks: the ratio says what the broker leaves of that. Target: at least 50 tasks/s.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

from flask import Flask
from flask_migrate import upgrade
from sqlalchemy import func, select

from bench.server import BenchError, exit_cleanly_on_signals
from marketplace.core import outbox
from marketplace.core.celery import UPKEEP_QUEUE
from marketplace.core.db import unit_of_work
from marketplace.core.outbox import OutboxMessage
from marketplace.extensions import db
from marketplace.mentors.calendar_version import REFRESH_TASK
from tests.helpers import temporary_app
from tests.support.workers import start_worker

TARGET = 50.0
TIMEOUT_SECONDS = 300.0
BATCH = 100


def _done(app: Flask) -> int:
    with app.app_context():
        count: int = db.session.scalar(
            select(func.count()).select_from(OutboxMessage).where(OutboxMessage.completed_at.is_not(None))
        )
        db.session.rollback()
        return count


def _enqueue(app: Flask, tasks: int) -> None:
    """Committed outbox rows, each published after its batch's commit (the request path's relay)."""
    with app.app_context():
        for start in range(0, tasks, BATCH):
            with unit_of_work():
                for profile_id in range(start, min(tasks, start + BATCH)):
                    outbox.enqueue(REFRESH_TASK, profile_id=-1 - profile_id)  # no such mentor: one query


def through_worker(directory: Path, tasks: int, polling_interval: float, pool: tuple[str, ...]) -> float:
    """Tasks per second, from the worker's "ready" until every row is done."""
    database_url = f"sqlite:///{directory / 'app.db'}"
    broker_url = f"sqla+sqlite:///{directory / 'broker.db'}"
    settings = {"CELERY_BROKER_POLLING_INTERVAL": str(polling_interval)}
    with temporary_app(
        database_url, CELERY_BROKER_URL=broker_url, CELERY_TASK_ALWAYS_EAGER=False, **settings
    ) as app:
        with app.app_context():
            upgrade()
        _enqueue(app, tasks)
        worker = start_worker(
            f"embedded-{polling_interval}",
            directory,
            {"DATABASE_URL": database_url, "CELERY_BROKER_URL": broker_url, **settings},
            queues=(UPKEEP_QUEUE,),
            pool=pool,
        )
        try:
            started, done_at_start = time.perf_counter(), _done(app)
            while (done := _done(app)) < tasks:
                if time.perf_counter() - started > TIMEOUT_SECONDS:
                    raise BenchError(f"only {done} of {tasks} tasks done after {TIMEOUT_SECONDS}s")
                time.sleep(0.05)
            return (tasks - done_at_start) / (time.perf_counter() - started)
        finally:
            worker.stop()


def in_process(directory: Path, tasks: int) -> float:
    """Tasks per second run in this process (no broker), each marking its row done: the baseline."""
    database_url = f"sqlite:///{directory / 'eager.db'}"
    with temporary_app(database_url, CELERY_BROKER_URL="memory://", CELERY_TASK_ALWAYS_EAGER=False) as app:
        with app.app_context():
            upgrade()
            with unit_of_work():
                ids = [outbox.enqueue(REFRESH_TASK, profile_id=-1 - n) for n in range(tasks)]
            db.session.info.clear()  # not published: run below instead
            task = app.extensions["celery"].tasks[REFRESH_TASK]
            started = time.perf_counter()
            for n, message_id in enumerate(ids):
                task.apply(kwargs={"profile_id": -1 - n}, task_id=f"outbox-{message_id}-1", throw=True)
            elapsed = time.perf_counter() - started
        if _done(app) != tasks:
            raise BenchError("the in-process runs did not mark every row done")
    return tasks / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--before-tasks", type=int, default=20)
    args = parser.parse_args()
    exit_cleanly_on_signals()
    with ExitStack() as stack:
        root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="embedded-broker-bench-")))
        (root / "tuned").mkdir()
        (root / "before").mkdir()
        (root / "eager").mkdir()
        baseline = in_process(root / "eager", args.tasks)
        tuned = through_worker(root / "tuned", args.tasks, 0.01, ("--pool=solo",))
        before = through_worker(
            root / "before", args.before_tasks, 1.0, ("--pool=prefork", "--concurrency=2")
        )
    verdict = "PASS" if tuned >= TARGET else "MISS"
    print("embedded broker: SQLite, Celery's SQLAlchemy transport, one worker of one queue")
    print(
        f"  now (solo pool, polling every 10 ms): {args.tasks} tasks in {args.tasks / tuned:.1f} s: {tuned:.0f} tasks/s"
    )
    print(
        f"  before (prefork pool of 2, polling every 1 s): {before:.1f} tasks/s ({args.before_tasks} tasks)"
    )
    print(f"  baseline, the same tasks in-process without a broker: {baseline:.0f} tasks/s")
    print(f"  ratio: {tuned / baseline:.2f} of in-process; {tuned / before:.0f}x before")
    print(f"  target >= {TARGET:.0f} tasks/s: {verdict}")


if __name__ == "__main__":
    main()
