"""Real processes for fault tests: a fresh PostgreSQL database, Redis, an SMTP sink and `celery worker`s.

Each test gets its own database on the suite's PostgreSQL server (migrated and seeded here), its own Redis
(which the test may stop and start) and its own SMTP sink; workers are `celery -A workers worker`
subprocesses pointed at them by environment variables, exactly as production starts them.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import celery
import pytest
from aiosmtpd.controller import Controller
from flask import Flask
from flask_migrate import upgrade

from marketplace.accounts.models import Role
from marketplace.extensions import db
from marketplace.scheduling.service import save_availability
from tests.factories import MentorProfileFactory, UserFactory
from tests.helpers import temporary_app
from tests.support.databases import fresh_database
from tests.support.servers import (
    HOST,
    RedisServer,
    SmtpSink,
    _SinkHandler,
    free_port,
    redis_server_handle,
)
from tests.support.workers import Worker, start_worker

# --- an SMTP sink that can hold a delivery open ------------------------------------------------------


class _StallingHandler(_SinkHandler):
    """Stores mail like the suite's sink; while `stalls_left` > 0, a delivery hangs at RCPT until released."""

    def __init__(self, sink: StallingSink) -> None:
        super().__init__(sink)
        self._stalling = sink

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:  # noqa: N802 - aiosmtpd hook name
        sink = self._stalling
        if sink.stalls_left > 0:
            sink.stalls_left -= 1
            sink.stalled.set()
            while not sink.release.is_set():
                await asyncio.sleep(0.05)
        envelope.rcpt_tos.append(address)
        return "250 OK"


@dataclass
class StallingSink(SmtpSink):
    stalls_left: int = 0
    stalled: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)


@contextmanager
def stalling_smtp_server() -> Iterator[StallingSink]:
    sink = StallingSink(host=HOST, port=free_port())
    controller = Controller(_StallingHandler(sink), hostname=HOST, port=sink.port)
    controller.start()
    try:
        yield sink
    finally:
        sink.release.set()
        controller.stop()


# --- workers -----------------------------------------------------------------------------------------


@dataclass
class World:
    app: Flask  # the web side: same database and broker as the workers, tasks not eager
    database_url: str
    redis: RedisServer
    sink: StallingSink
    mentor_id: int
    learner_id: int
    directory: Path
    workers: list[Worker] = field(default_factory=list)

    def start_worker(self, name: str, pool: tuple[str, ...] = ("--pool=solo",), **env: str) -> Worker:
        worker = start_worker(
            name,
            self.directory,
            {
                "DATABASE_URL": self.database_url,
                "REDIS_URL": self.redis.url,
                "CELERY_BROKER_URL": self.redis.url,
                "MAIL_BACKEND": "smtp",
                "MAIL_SERVER": self.sink.host,
                "MAIL_PORT": str(self.sink.port),
                **env,
            },
            pool=pool,
        )
        self.workers.append(worker)
        return worker


def _seed(app: Flask) -> tuple[int, int]:
    """A mentor bookable around the clock in UTC and a learner in New York; committed."""
    with app.app_context():
        upgrade()
        mentor = MentorProfileFactory(
            user=UserFactory(roles=(Role.MENTOR,), timezone="Europe/Berlin"),
            timezone="UTC",
            price_cents=6000,
            currency="USD",
        )
        save_availability(
            mentor.user,
            {
                "timezone": "UTC",
                "weekly": [{"weekday": day, "start": "00:00", "end": "24:00"} for day in range(7)],
                "buffer_minutes": 0,
                "min_notice_minutes": 0,
                "horizon_days": 365,
            },
        )
        learner = UserFactory(roles=(Role.LEARNER,), timezone="America/New_York")
        db.session.commit()
        return mentor.id, learner.id


@pytest.fixture
def world(app: Flask, database_url: str, tmp_path: Path) -> Iterator[World]:
    """Everything but the workers, which each test starts with the settings it needs."""
    suite_celery = celery.current_app._get_current_object()
    with (
        fresh_database(database_url, tmp_path, prefix="workers") as url,
        redis_server_handle() as redis,
        stalling_smtp_server() as sink,
        temporary_app(url, CELERY_BROKER_URL=redis.url, CELERY_TASK_ALWAYS_EAGER=False) as web,
    ):
        mentor_id, learner_id = _seed(web)
        world = World(web, url, redis, sink, mentor_id, learner_id, tmp_path)
        try:
            yield world
        finally:
            for worker in world.workers:
                worker.stop()
            # create_app made the temporary app's Celery the process default; the suite's app needs its own.
            suite_celery.set_default()
            suite_celery.set_current()
