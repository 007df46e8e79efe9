"""The real web server, for tests that need several processes writing to one database: gunicorn.

`live_server(url)` runs ``gunicorn wsgi:app`` with four threaded workers (gunicorn.conf.py) on a free loopback
port against ``url``, waits until ``/healthz`` answers, yields the base URL and, on exit (error or not), stops it.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from pathlib import Path

from tests.support.servers import (
    HOST,
    PROJECT_ROOT,
    START_ATTEMPTS,
    STARTUP_TIMEOUT,
    ServerStartError,
    _log_tail,
    _wait_until,
    free_port,
)

WORKERS = 4
STOP_TIMEOUT = 10.0


def _healthy(base_url: str) -> bool:
    try:
        with urllib.request.urlopen(base_url + "/healthz", timeout=1) as response:
            return bool(response.status == 200)
    except (OSError, urllib.error.URLError):
        return False


def _listening(log_path: Path, port: int) -> bool:
    """gunicorn says where it bound; checked so a stranger already on the port is not taken for us."""
    try:
        return f"Listening at: http://{HOST}:{port} " in log_path.read_text(errors="replace")
    except OSError:
        return False


def _port_taken(log_path: Path) -> bool:
    try:
        return "Address already in use" in log_path.read_text(errors="replace")
    except OSError:
        return False


def _stop(proc: subprocess.Popen[bytes], timeout: float = STOP_TIMEOUT) -> None:
    """SIGTERM (gunicorn's graceful stop), then SIGKILL to its whole process group; always reaped."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            # The master was started in a session of its own, so its group is it and its workers.
            with suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _server_env(
    database_url: str, instance_dir: Path, env: Mapping[str, str | None] | None
) -> dict[str, str]:
    merged = dict(os.environ)
    merged.update(
        {
            "DATABASE_URL": database_url,
            # TestingConfig: test secret key, in-memory rate limits, cheap password hashing.
            "APP_ENV": "testing",
            "SECRET_KEY": "testing",
            # Celery's SQLite broker and beat files would otherwise land in the project's instance/.
            "INSTANCE_DIR": str(instance_dir),
            "PYTHONUNBUFFERED": "1",
        }
    )
    for key, value in (env or {}).items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged


@contextmanager
def live_server(
    database_url: str,
    env: Mapping[str, str | None] | None = None,
    timeout: float = STARTUP_TIMEOUT,
    log_path: Path | None = None,
    workers: int = WORKERS,
) -> Iterator[str]:
    """Run ``gunicorn wsgi:app`` (threaded workers) on ``database_url``; yields ``http://127.0.0.1:PORT``.

    ``env`` is added to (and overrides) the inherited environment, e.g. ``{"MAX_UNPAID_HOLDS": "1000"}``;
    a value of None removes the variable.
    The database must already be migrated. Raises :class:`ServerStartError` with the log tail when the
    server does not answer in time. The log (gunicorn's, with the app's tracebacks) goes to ``log_path``
    when given, so the caller can show it after a failure; otherwise it is deleted with the rest.
    """
    tmp = Path(tempfile.mkdtemp(prefix="gunicorn-"))
    log_path = log_path or tmp / "gunicorn.log"
    server_env = _server_env(database_url, tmp, env)
    proc: subprocess.Popen[bytes] | None = None
    try:
        for attempt in range(1, START_ATTEMPTS + 1):
            port = free_port()
            base_url = f"http://{HOST}:{port}"
            cmd = [
                sys.executable, "-m", "gunicorn", "wsgi:app",
                "--workers", str(workers), "--bind", f"{HOST}:{port}",
                "--graceful-timeout", "5", "--timeout", "60", "--log-level", "info",
                # gunicorn 23+ otherwise shares one ~/.gunicorn/gunicorn.ctl among all its instances.
                "--no-control-socket",
            ]  # fmt: skip
            with log_path.open("ab") as log:
                proc = subprocess.Popen(
                    cmd,
                    cwd=PROJECT_ROOT,
                    env=server_env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                )
            running = proc
            if _wait_until(
                lambda url=base_url, p=port: _listening(log_path, p) and _healthy(url),
                timeout,
                alive=lambda p=running: p.poll() is None,
            ):
                break
            _stop(proc)
            proc = None
            # Only a port taken between free_port() and the bind is worth another try.
            if attempt == START_ATTEMPTS or not _port_taken(log_path):
                raise ServerStartError(
                    f"gunicorn did not answer at {base_url}/healthz within {timeout}s "
                    f"(attempt {attempt}/{START_ATTEMPTS})\n--- log tail ---\n{_log_tail(log_path, 80)}"
                )
            log_path.write_bytes(b"")
        yield base_url
    finally:
        if proc is not None:
            _stop(proc)
        shutil.rmtree(tmp, ignore_errors=True)
