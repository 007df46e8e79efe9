"""What the benchmarks share: a real gunicorn on loopback, clean exits on signals, and small statistics.

`gunicorn_server(url, workers)` is the test suite's `live_server` (sync workers on a free 127.0.0.1 port,
stopped on exit whatever happens) with production-like settings.
"""

from __future__ import annotations

import secrets
import signal
import statistics
from contextlib import AbstractContextManager
from types import FrameType

from tests.support.live_server import live_server

STARTUP_TIMEOUT = 30.0
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


def gunicorn_server(
    database_url: str, workers: int, env: dict[str, str] | None = None
) -> AbstractContextManager[str]:
    """The test suite's `live_server` with production-like settings: what a benchmark should measure.

    Redis, the broker and rate-limit storage are unset unless `env` gives them, so the server touches nothing
    but loopback and the database given.
    """
    settings: dict[str, str | None] = dict.fromkeys(_DROPPED)
    # Development settings are production's without its fail-closed check for secrets (mail, Stripe, Redis)
    # that a benchmark does not use; DEBUG is off in both.
    settings.update({"APP_ENV": "development", "SECRET_KEY": secrets.token_urlsafe(32), **(env or {})})
    return live_server(database_url, env=settings, timeout=STARTUP_TIMEOUT, workers=workers)


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank-interpolated percentile (`pct` in 0..100) of a non-empty sample."""
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    return statistics.quantiles(ordered, n=100, method="inclusive")[round(pct) - 1]


def format_ms(seconds: float) -> str:
    return f"{seconds * 1000:.3f} ms"
