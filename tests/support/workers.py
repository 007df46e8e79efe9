"""Real Celery worker processes (`celery -A workers worker`) for tests of what workers do."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from marketplace.core.celery import QUEUES
from tests.support.servers import PROJECT_ROOT

WORKER_START_TIMEOUT = 60.0


def wait_until(check: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll `check` until it returns something truthy (returned), or fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.1)
    raise TimeoutError(f"{what} did not happen within {timeout}s")


@dataclass
class Worker:
    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        """kill -9 the worker and everything it started: no chance to ack, requeue or clean up."""
        with suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc.poll() is None:
            with suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()


def start_worker(
    name: str,
    directory: Path,
    env: dict[str, str],
    queues: tuple[str, ...] = QUEUES,
    pool: tuple[str, ...] = ("--pool=solo",),
) -> Worker:
    """A worker of `queues` (all by default) with `env` (database, broker, ...) on top of this process's,
    in a solo pool unless `pool` says otherwise (e.g. `("--pool=prefork", "--concurrency=2")`); ready when
    returned."""
    log_path = directory / f"{name}.log"
    environment = {
        **os.environ,
        "APP_ENV": "testing",
        "SECRET_KEY": "testing",
        "INSTANCE_DIR": str(directory),
        "PYTHONUNBUFFERED": "1",
        **env,
    }
    cmd = [
        sys.executable, "-m", "celery", "-A", "workers", "worker", *pool, "--loglevel=info",
        "-n", f"{name}@%h", "--without-gossip", "--without-mingle", "--without-heartbeat",
        "-Q", ",".join(queues),
    ]  # fmt: skip
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            cmd,
            cwd=PROJECT_ROOT,
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    worker = Worker(name, proc, log_path)
    try:
        wait_until(
            lambda: " ready." in worker.log() or proc.poll() is not None,
            WORKER_START_TIMEOUT,
            f"{name} ready",
        )
    except TimeoutError:
        worker.stop()
        raise
    if proc.poll() is not None:
        raise RuntimeError(f"worker {name} exited:\n{worker.log()[-3000:]}")
    return worker
