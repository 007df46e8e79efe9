"""An outbox row is done when its consumer has run, not when the broker took it: rows published and never
completed are sent again with a growing delay, parked after `OUTBOX_MAX_ATTEMPTS`, listed for admins and
retried by them."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import time_machine
from flask import Flask
from flask.testing import FlaskClient
from flask_migrate import upgrade
from sqlalchemy import select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import scoped_session

from marketplace.accounts.models import Role
from marketplace.core import outbox
from marketplace.core import tasks as core_tasks
from marketplace.core.db import run_in_unit, unit_of_work
from marketplace.core.outbox import OutboxMessage
from marketplace.core.time import utcnow
from marketplace.extensions import db
from marketplace.mentors import calendar_version
from marketplace.mentors.calendar_version import REFRESH_TASK
from tests.core.races import losing_each_unit_once, lost_race
from tests.factories import MentorProfileFactory, UserFactory
from tests.helpers import ApiUser, assert_error_shape, temporary_app
from tests.support.servers import free_port


@pytest.fixture
def broker_without_consumers(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    """Tasks go to the (in-memory) broker and nobody consumes them: as when Redis lost the messages."""
    monkeypatch.setitem(app.extensions["celery"].conf, "task_always_eager", False)
    monkeypatch.setitem(app.config, "OUTBOX_REDELIVER_AFTER_SECONDS", 60)
    monkeypatch.setitem(app.config, "OUTBOX_MAX_ATTEMPTS", 3)


def _row(message_id: int) -> OutboxMessage:
    return db.session.scalars(
        select(OutboxMessage).where(OutboxMessage.id == message_id).execution_options(populate_existing=True)
    ).one()


def _enqueue_refresh() -> int:
    profile = MentorProfileFactory()
    with unit_of_work():
        return outbox.enqueue(REFRESH_TASK, profile_id=profile.id)


def _sweep_at(moment: object) -> int:
    with time_machine.travel(moment, tick=False), unit_of_work():
        return outbox.relay_pending()


def test_a_published_row_nobody_completes_is_sent_again_with_doubling_delays_then_parked(
    app: Flask, db_session: scoped_session, broker_without_consumers: None
) -> None:
    message_id = _enqueue_refresh()
    row = _row(message_id)
    assert (row.attempts, row.completed_at, row.state) == (1, None, "pending")
    published = row.published_at
    assert row.next_attempt_at == published + timedelta(seconds=60)

    assert _sweep_at(published + timedelta(seconds=59)) == 0  # not yet due
    assert _sweep_at(published + timedelta(seconds=61)) == 1
    row = _row(message_id)
    assert row.attempts == 2
    assert row.next_attempt_at - row.published_at == timedelta(seconds=120)

    assert _sweep_at(row.next_attempt_at + timedelta(seconds=1)) == 1
    row = _row(message_id)
    assert row.attempts == 3
    assert _sweep_at(row.next_attempt_at + timedelta(seconds=1)) == 0  # out of attempts: parked, not sent
    row = _row(message_id)
    assert (row.state, row.next_attempt_at, row.attempts) == ("failed", None, 3)
    assert row.parked_at is not None
    assert "not completed after 3 deliveries" in row.last_error


def test_the_sweep_task_runs_again_after_a_lost_race_and_sends_each_row_once(
    app: Flask,
    backend: str,
    db_session: scoped_session,
    broker_without_consumers: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    message_ids = [_enqueue_refresh(), _enqueue_refresh()]
    racing, lost = losing_each_unit_once(run_in_unit, lost_race(backend))
    monkeypatch.setattr(core_tasks, "run_in_unit", racing)

    with time_machine.travel(_row(message_ids[-1]).next_attempt_at + timedelta(seconds=1), tick=False):
        assert app.extensions["celery"].tasks["outbox.relay_pending"].apply().get() == 2

    assert lost == ["relay_pending"]
    # The lost attempt's bookkeeping was rolled back: each row counts the one delivery that was recorded.
    assert [_row(message_id).attempts for message_id in message_ids] == [2, 2]


def test_the_consumer_marks_the_row_done_and_the_sweep_leaves_it(
    app: Flask, db_session: scoped_session, broker_without_consumers: None
) -> None:
    message_id = _enqueue_refresh()
    row = _row(message_id)

    app.extensions["celery"].tasks[REFRESH_TASK].apply(
        kwargs=row.payload, task_id=f"outbox-{message_id}-1", throw=True
    )

    row = _row(message_id)
    assert (row.state, row.next_attempt_at) == ("completed", None)
    assert row.completed_at is not None
    assert _sweep_at(utcnow() + timedelta(days=1)) == 0


def test_a_failing_consumer_records_its_error_on_the_row_and_leaves_it_to_the_sweep(
    app: Flask, db_session: scoped_session, broker_without_consumers: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    message_id = _enqueue_refresh()

    def broken(_profile_id: int) -> int:
        raise RuntimeError("the consumer broke")

    monkeypatch.setattr(calendar_version, "version_of", broken)
    task = app.extensions["celery"].tasks[REFRESH_TASK]
    result = task.apply(kwargs=_row(message_id).payload, task_id=f"outbox-{message_id}-1", throw=False)

    assert result.failed()
    row = _row(message_id)
    assert (row.state, row.completed_at) == ("pending", None)
    assert row.last_error == "RuntimeError: the consumer broke"
    assert _sweep_at(row.next_attempt_at + timedelta(seconds=1)) == 1


def test_admins_list_parked_rows_and_retry_them(
    app: Flask, client: FlaskClient, db_session: scoped_session, broker_without_consumers: None
) -> None:
    admin = ApiUser(client, UserFactory(roles=(Role.ADMIN,)))
    message_id = _enqueue_refresh()
    done_id = _enqueue_refresh()
    with unit_of_work():
        outbox.complete(done_id)
    with unit_of_work():
        _row(message_id).parked_at = utcnow()
        _row(message_id).next_attempt_at = None

    listed = admin.get("/api/v1/admin/outbox?state=failed")
    assert listed.status_code == 200
    assert [m["id"] for m in listed.json] == [message_id]
    assert listed.json[0]["task"] == REFRESH_TASK
    assert [m["id"] for m in admin.get("/api/v1/admin/outbox?state=completed").json] == [done_id]

    retried = admin.post(f"/api/v1/admin/outbox/{message_id}/retry")
    assert retried.status_code == 200, retried.json
    row = _row(message_id)
    assert (row.state, row.parked_at, row.attempts) == (
        "pending",
        None,
        1,
    )  # published again after the commit

    assert_error_shape(admin.post(f"/api/v1/admin/outbox/{message_id}/retry"), 409)
    assert_error_shape(admin.post(f"/api/v1/admin/outbox/{done_id + 1000}/retry"), 404)
    assert_error_shape(admin.get("/api/v1/admin/outbox?state=lost"), 422)


def test_the_web_answers_while_redis_is_down_and_the_row_waits_for_the_sweep(tmp_path: Path) -> None:
    dead_redis = f"redis://127.0.0.1:{free_port()}/0"
    with temporary_app(
        f"sqlite:///{tmp_path / 'app.db'}",
        CELERY_BROKER_URL=dead_redis,
        CELERY_TASK_ALWAYS_EAGER=False,
        RATELIMIT_STORAGE_URI=dead_redis,
    ) as app:
        with app.app_context():
            upgrade()
        response = app.test_client().post(
            "/api/v1/auth/register",
            json={"email": "ada@example.test", "password": "x" * 12, "name": "Ada", "role": "learner"},
        )
        assert response.status_code == 201, response.get_data(as_text=True)
        with app.app_context():
            (row,) = db.session.scalars(select(OutboxMessage)).all()
            assert (row.published_at, row.attempts, row.state) == (None, 0, "pending")
            assert row.last_error.startswith("OperationalError")
            assert row.next_attempt_at is not None  # the sweep sends it once Redis is back


def test_work_done_but_not_marked_is_left_to_the_sweep(
    app: Flask, db_session: scoped_session, broker_without_consumers: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    message_id = _enqueue_refresh()

    def database_gone(_message_id: int) -> None:
        raise OperationalError("UPDATE outbox_messages", {}, Exception("the database restarted"))

    monkeypatch.setattr(outbox, "complete", database_gone)
    task = app.extensions["celery"].tasks[REFRESH_TASK]
    result = task.apply(kwargs=_row(message_id).payload, task_id=f"outbox-{message_id}-1", throw=True)

    assert result.successful()  # the work stands; the row is sent again and the repeat does no harm
    assert _row(message_id).state == "pending"


def test_a_failure_that_cannot_be_recorded_leaves_the_row_to_the_sweep(
    app: Flask, db_session: scoped_session, broker_without_consumers: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    message_id = _enqueue_refresh()

    def broken(*_: Any) -> None:
        raise OperationalError("SELECT", {}, Exception("the database restarted"))

    monkeypatch.setattr(calendar_version, "version_of", broken)
    monkeypatch.setattr(outbox, "record_failure", broken)
    task = app.extensions["celery"].tasks[REFRESH_TASK]

    assert task.apply(kwargs=_row(message_id).payload, task_id=f"outbox-{message_id}-1", throw=False).failed()
    assert task.apply(kwargs=_row(message_id).payload, throw=False).failed()  # not from the outbox: no row
    row = _row(message_id)
    assert (row.state, row.last_error) == ("pending", None)
