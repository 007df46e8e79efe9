"""What both benchmarks share: a real gunicorn on loopback, clean exits on signals, and small statistics.

`gunicorn_server(url, workers)` runs ``gunicorn wsgi:app`` (sync workers, production settings, no access
log) on a free 127.0.0.1 port against `url`, waits until ``/healthz`` answers, yields the base URL and, on
exit (error or not), stops it and its workers.
"""

from __future__ import annotations

import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from types import FrameType

from tests.support.servers import HOST, PROJECT_ROOT, START_ATTEMPTS, _log_tail, _wait_until, free_port

STARTUP_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
# Left out of the server's environment so it touches nothing but loopback and the database given.
_DROPPED = ("REDIS_URL", "CELERY_BROKER_URL", "RATELIMIT_STORAGE_URI", "PROMETHEUS_MULTIPROC_DIR")


class BenchError(RuntimeError):
    """The benchmark could not measure (a server did not start, a request failed)."""


def exit_cleanly_on_signals() -> None:
    """SIGTERM/SIGHUP raise SystemExit in the main thread, so every `finally` stops its servers."""

    def _raise(signum: int, _frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _raise)


def _healthy(base_url: str) -> bool:
    try:
        with urllib.request.urlopen(base_url + "/healthz", timeout=1) as response:
            return bool(response.status == 200)
    except (OSError, urllib.error.URLError):
        return False


def _listening(log_path: Path, port: int) -> bool:
    """gunicorn logs where it bound; checked so a stranger already on the port is not taken for us."""
    try:
        return f"Listening at: http://{HOST}:{port} " in log_path.read_text(errors="replace")
    except OSError:
        return False


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM (gunicorn's graceful stop), then SIGKILL to its process group; always reaped."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            with suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


@contextmanager
def gunicorn_server(database_url: str, workers: int, env: dict[str, str] | None = None) -> Iterator[str]:
    """Serve the app with `workers` sync gunicorn workers on loopback; yields ``http://127.0.0.1:PORT``.

    `env` adds settings (a broker, a webhook secret) on top of the cleaned environment."""
    tmp = Path(tempfile.mkdtemp(prefix="bench-gunicorn-"))
    log_path = tmp / "gunicorn.log"
    extra = env or {}
    env = {key: value for key, value in os.environ.items() if key not in _DROPPED}
    env.update(
        {
            "DATABASE_URL": database_url,
            "APP_ENV": "production",
            "SECRET_KEY": "bench-only-not-secret",
            "INSTANCE_DIR": str(tmp),  # Celery's SQLite broker path would otherwise point into instance/
            "PYTHONUNBUFFERED": "1",
            **extra,
        }
    )
    proc: subprocess.Popen[bytes] | None = None
    try:
        for attempt in range(1, START_ATTEMPTS + 1):
            port = free_port()
            base_url = f"http://{HOST}:{port}"
            cmd = [
                sys.executable, "-m", "gunicorn", "wsgi:app", "--worker-class", "sync",
                "--workers", str(workers), "--bind", f"{HOST}:{port}",
                "--timeout", "30", "--graceful-timeout", "5", "--log-level", "info",
            ]  # fmt: skip
            with log_path.open("ab") as log:
                proc = subprocess.Popen(
                    cmd,
                    cwd=PROJECT_ROOT,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                )
            running = proc
            if _wait_until(
                lambda url=base_url, p=port: _listening(log_path, p) and _healthy(url),
                STARTUP_TIMEOUT,
                alive=lambda p=running: p.poll() is None,
            ):
                break
            _stop(proc)
            proc = None
            if attempt == START_ATTEMPTS:
                raise BenchError(
                    f"gunicorn did not answer at {base_url}/healthz within {STARTUP_TIMEOUT}s\n"
                    f"--- log tail ---\n{_log_tail(log_path)}"
                )
        yield base_url
    finally:
        if proc is not None:
            _stop(proc)
        shutil.rmtree(tmp, ignore_errors=True)


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank-interpolated percentile (`pct` in 0..100) of a non-empty sample."""
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    return statistics.quantiles(ordered, n=100, method="inclusive")[round(pct) - 1]


def format_ms(seconds: float) -> str:
    return f"{seconds * 1000:.3f} ms"
