"""`make run`'s process runner: a process that dies is started again, and the others keep running.

The real pieces (scripts/supervised-procfile.sh, scripts/keep-running.sh, honcho) run a Procfile of two small
stand-ins for the worker and the web process, each writing its pid when it starts.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from contextlib import suppress
from pathlib import Path

from tests.support.servers import PROJECT_ROOT
from tests.support.workers import wait_until

STAND_IN = (
    "import os, pathlib, sys, time; pathlib.Path(sys.argv[1]).write_text(str(os.getpid())); time.sleep(600)"
)


def _pid(path: Path) -> int | None:
    with suppress(FileNotFoundError, ValueError):
        return int(path.read_text())
    return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_a_killed_process_comes_back_and_the_others_keep_running(tmp_path: Path) -> None:
    worker_pid, web_pid = tmp_path / "worker.pid", tmp_path / "web.pid"
    procfile = tmp_path / "Procfile"
    procfile.write_text(
        f"worker: {sys.executable} -c '{STAND_IN}' {worker_pid}\nweb: {sys.executable} -c '{STAND_IN}' {web_pid}\n"
    )
    supervised = tmp_path / "Procfile.supervised"
    supervised.write_bytes(
        subprocess.run(
            ["bash", str(PROJECT_ROOT / "scripts" / "supervised-procfile.sh"), str(procfile)],
            check=True,
            capture_output=True,
        ).stdout
    )
    honcho = Path(sys.executable).with_name("honcho")
    runner = subprocess.Popen(
        [str(honcho), "start", "-f", str(supervised), "-d", str(tmp_path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        first_worker = wait_until(lambda: _pid(worker_pid), 30, "the worker started")
        first_web = wait_until(lambda: _pid(web_pid), 30, "the web process started")

        os.kill(first_worker, signal.SIGKILL)

        second_worker = wait_until(
            lambda: (pid := _pid(worker_pid)) != first_worker and pid, 30, "the worker started again"
        )
        assert _alive(second_worker)
        assert _alive(first_web)  # not restarted: never stopped
        assert runner.poll() is None
    finally:
        with suppress(ProcessLookupError):
            os.killpg(runner.pid, signal.SIGTERM)
        runner.wait(30)
    wait_until(lambda: not _alive(second_worker) and not _alive(first_web), 15, "the processes stopped")
