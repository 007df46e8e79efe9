"""A Redis outage while a worker runs: the worker reconnects and goes on, and an outbox row whose message
Redis lost (published, never consumed) is sent again until its consumer has done the work."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import select

from marketplace.accounts.models import Role, User
from marketplace.accounts.service import register
from marketplace.core import outbox
from marketplace.core.db import unit_of_work
from marketplace.core.outbox import OutboxMessage
from marketplace.extensions import db
from marketplace.notifications.service import SEND_EMAIL_TASK
from tests.support.workers import wait_until
from tests.workers.conftest import World

pytestmark = [pytest.mark.slow, pytest.mark.postgres_only]

SETTLE_SECONDS = 3.0


def _register(world: World, email: str) -> int:
    with world.app.app_context(), unit_of_work():
        return register(email=email, password="x" * 12, name=email.split("@")[0], role=Role.LEARNER).id


def _welcome_row(world: World, user_id: int) -> OutboxMessage:
    with world.app.app_context():
        row = db.session.scalars(
            select(OutboxMessage).where(
                OutboxMessage.task == SEND_EMAIL_TASK,
                OutboxMessage.payload["object_id"].as_integer() == user_id,
            )
        ).one()
        db.session.expunge(row)
        return row


def _completed_after_sweeps(world: World, user_id: int) -> bool:
    """Beat's sweep, run here: re-sends what is due, then tells whether the row is done."""
    with world.app.app_context(), unit_of_work():
        outbox.relay_pending()
    time.sleep(0.5)
    return _welcome_row(world, user_id).completed_at is not None


def test_the_worker_survives_a_redis_restart_and_a_lost_message_is_sent_again(
    world: World, backend: str
) -> None:
    worker = world.start_worker("w1", pool=("--pool=prefork", "--concurrency=2"))  # as the Procfile runs it
    world.app.config["OUTBOX_REDELIVER_AFTER_SECONDS"] = 1
    world.sink.stalls_left = 2  # the first deliveries hang at RCPT: both processes hold unacknowledged tasks

    first = _register(world, "first@example.test")
    second = _register(world, "second@example.test")
    wait_until(lambda: world.sink.stalls_left == 0, 30, "both worker processes sending")
    lost = _register(world, "lost@example.test")  # waits in Redis behind the stalled tasks
    assert _welcome_row(world, lost).published_at is not None

    world.redis.stop()  # without persistence: the waiting message is gone
    world.sink.release.set()
    time.sleep(2)  # the worker finds the broker gone, with the stalled tasks' acknowledgements undeliverable
    world.redis.start()

    after = _register(world, "after@example.test")  # sent after the restart: the worker must take it
    wait_until(
        lambda: any(m.rcpt_tos == ["after@example.test"] for m in world.sink.messages),
        60,
        "the mail of a task sent after the restart",
    )
    assert _welcome_row(world, lost).completed_at is None  # published, not done: not forgotten either
    wait_until(lambda: _completed_after_sweeps(world, lost), 60, "the lost row done after a re-send")

    time.sleep(SETTLE_SECONDS)
    recipients = sorted(address for m in world.sink.messages for address in m.rcpt_tos)
    assert recipients == [
        "after@example.test",
        "first@example.test",
        "lost@example.test",
        "second@example.test",
    ]
    assert all(_welcome_row(world, user).completed_at is not None for user in (first, second, lost, after))
    assert _welcome_row(world, lost).attempts == 2
    assert worker.proc.poll() is None, worker.log()[-3000:]
    assert "Unrecoverable error" not in worker.log()
    with world.app.app_context():
        assert db.session.scalar(select(User.id).where(User.email == "lost@example.test")) == lost
