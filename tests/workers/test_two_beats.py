"""Beat is safe to run twice: with Redis, a second beat waits on celery-redbeat's lock and sends nothing
until the active one dies, then takes over the schedule."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from tests.support.servers import PROJECT_ROOT, redis_server
from tests.support.workers import wait_until

pytestmark = pytest.mark.slow
LOCK_TIMEOUT_SECONDS = 3
TIMEOUT = 30
SENT = "Sending due task tick"
# The task tests/workers/fast_beat.py schedules (that module is not imported here: it builds the app).
TICK_TASK = "tests.beat_tick"


@dataclass
class Beat:
    proc: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def sent(self) -> int:
        return self.log().count(SENT)

    def kill(self) -> None:
        with suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()


def _start_beat(name: str, directory: Path, redis_url: str) -> Beat:
    log_path = directory / f"{name}.log"
    env = {
        **os.environ,
        "APP_ENV": "testing",
        "SECRET_KEY": "testing",
        "DATABASE_URL": f"sqlite:///{directory / 'app.db'}",
        "INSTANCE_DIR": str(directory),
        "REDIS_URL": redis_url,
        "CELERY_BROKER_URL": redis_url,
        "BEAT_LOCK_TIMEOUT_SECONDS": str(LOCK_TIMEOUT_SECONDS),
        "PYTHONUNBUFFERED": "1",
    }
    cmd = [sys.executable, "-m", "celery", "-A", "tests.workers.fast_beat", "beat", "--loglevel=info"]
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            cmd, cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    return Beat(proc, log_path)


def _ticks_in_broker(client: redis.Redis) -> int:
    """Messages of the tick task waiting in any queue (no worker consumes them)."""
    count = 0
    for key in client.scan_iter():
        if client.type(key) == b"list":
            count += sum(json.loads(raw)["headers"]["task"] == TICK_TASK for raw in client.lrange(key, 0, -1))
    return count


@pytest.fixture
def broker() -> Iterator[str]:
    with redis_server() as url:
        yield url


def test_a_standby_beat_sends_nothing_until_the_active_one_dies(broker: str, tmp_path: Path) -> None:
    client = redis.Redis.from_url(broker)
    active = _start_beat("active", tmp_path, broker)
    standby: Beat | None = None
    try:
        wait_until(lambda: "beat: Acquired lock" in active.log(), TIMEOUT, "the first beat holds the lock")
        standby = _start_beat("standby", tmp_path, broker)
        wait_until(lambda: "beat: Starting..." in standby.log(), TIMEOUT, "the standby beat starts")
        wait_until(lambda: active.sent() >= 3, TIMEOUT, "three ticks from the active beat")

        sent_while_both_ran = active.sent()
        assert standby.sent() == 0
        assert "beat: Acquired lock" not in standby.log()
        assert _ticks_in_broker(client) >= sent_while_both_ran

        active.kill()
        sent_by_active = active.sent()
        wait_until(lambda: standby.sent() >= 2, TIMEOUT, "the standby beat takes over")
        assert "beat: Acquired lock" in standby.log()
        # Every tick in the broker was sent by one beat or the other, none twice.
        wait_until(
            lambda: _ticks_in_broker(client) == sent_by_active + standby.sent(),
            TIMEOUT,
            "the broker holds exactly the ticks the beats logged",
        )
    finally:
        active.kill()
        if standby is not None:
            standby.kill()
