"""Slot computation for a busy mentor, timed per call beside a `GET /healthz` round trip of the same run.

    .venv/bin/python -m bench.slots_bench [--runs 200] [--rounds 5]

The mentor is `bench.scenario` (60-day horizon, 5 weekly intervals, 10 overrides, 300 bookings), written
to a temporary SQLite database; the rules and busy ranges are read back through `rules_for` and
`blocking_intervals`, exactly as the slots endpoint reads them. Timed, `--runs` times each with
`time.perf_counter`, interleaved in `--rounds` rounds so drifting machine load hits every row alike:

* `free_slots` over the whole 60-day horizon, and over the endpoint's default 14 days (pure computation);
* `list_free_slots` in-process (the service: its queries on SQLite plus `free_slots`);
* the slots endpoint in-process through Flask's test client (adds routing, argument parsing, serialization);
* `GET /healthz` over HTTP on loopback to a real gunicorn (1 sync worker): the baseline of every ratio.
"""

from __future__ import annotations

import argparse
import http.client
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from flask import Flask

from bench.scenario import TIMEZONE, Seeded, seed, window_bounds
from bench.server import BenchError, exit_cleanly_on_signals, format_ms, gunicorn_server, percentile
from marketplace.bookings.availability.service import blocking_intervals, list_free_slots
from marketplace.core.time import utcnow
from marketplace.extensions import db
from marketplace.mentors.models import MentorProfile
from marketplace.scheduling.service import rules_for
from marketplace.scheduling.slots import free_slots
from tests.helpers import temporary_app

DEFAULT_DAYS = 14


def _healthz_caller(base_url: str) -> tuple[Callable[[], None], Callable[[], None]]:
    """One GET /healthz per call on one http.client connection (reopened when sync gunicorn closes it)."""
    parts = urlsplit(base_url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)

    def call() -> None:
        connection.request("GET", "/healthz")
        response = connection.getresponse()
        body = response.read()
        if response.status != 200:
            raise BenchError(f"GET /healthz answered {response.status}: {body[:200]!r}")

    return call, connection.close


def _cases(app: Flask, seeded: Seeded) -> dict[str, Callable[[], object]]:
    """The timed calls, keyed by the row label; inputs are loaded once, as the endpoint loads them."""
    zone = ZoneInfo(TIMEZONE)
    with app.app_context():
        profile = db.session.get(MentorProfile, seeded.mentor_id)
        assert profile is not None
        rules = rules_for(profile)
        assert rules is not None
        now = utcnow()
        start, end = window_bounds(seeded.first, seeded.last)
        busy = blocking_intervals(profile.id, start - timedelta(days=1), end + timedelta(days=1), now)
        short_end = window_bounds(seeded.first, seeded.first + timedelta(days=DEFAULT_DAYS - 1))[1]
    client = app.test_client()
    query = f"from={seeded.first}&to={seeded.last}&duration=60&tz={TIMEZONE}"

    def service_call() -> object:
        # A fresh app context per call, so each starts with an empty session as a request does.
        with app.app_context():
            return list_free_slots(seeded.mentor_id, seeded.first, seeded.last, zone, 60)

    def client_call() -> object:
        response = client.get(f"/api/v1/mentors/{seeded.mentor_id}/slots?{query}")
        if response.status_code != 200:
            raise BenchError(f"slots answered {response.status_code}: {response.get_data(as_text=True)}")
        return response.get_json()

    print(
        f"mentor {seeded.mentor_id}: {len(rules.weekly)} weekly intervals, {len(rules.overrides)} overrides, "
        f"{len(busy)} busy ranges in the window {seeded.first}..{seeded.last}; "
        f"free 60-minute slots: {len(free_slots(rules, busy, now, start, end, 60))} "
        f"(60 days), {len(free_slots(rules, busy, now, start, short_end, 60))} ({DEFAULT_DAYS} days)"
    )
    return {
        "free_slots(), 60-day window": lambda: free_slots(rules, busy, now, start, end, 60),
        f"free_slots(), {DEFAULT_DAYS}-day window": lambda: free_slots(
            rules, busy, now, start, short_end, 60
        ),
        "list_free_slots() in-process, SQLite": service_call,
        "GET slots in-process (test client)": client_call,
    }


def _measure(timed: dict[str, Callable[[], object]], runs: int, rounds: int) -> dict[str, list[float]]:
    """`runs` timings per call, taken in `rounds` interleaved batches after one warm-up batch."""
    samples: dict[str, list[float]] = {label: [] for label in timed}
    per_round = max(1, runs // rounds)
    for label, call in timed.items():  # warm-up: imports, zone caches, connections, first requests
        for _ in range(max(3, per_round // 4)):
            call()
        del label
    for _ in range(rounds):
        for label, call in timed.items():
            for _ in range(per_round):
                started = time.perf_counter()
                call()
                samples[label].append(time.perf_counter() - started)
    return samples


def _print_table(samples: dict[str, list[float]], baseline: str) -> None:
    base = percentile(samples[baseline], 50)
    width = max(len(label) for label in samples)
    print(f"\n{'':{width}}  {'runs':>5}  {'median':>11}  {'p95':>11}  {'median / healthz':>16}")
    for label, values in samples.items():
        median, p95 = percentile(values, 50), percentile(values, 95)
        print(
            f"{label:{width}}  {len(values):>5}  {format_ms(median):>11}  {format_ms(p95):>11}  "
            f"{median / base:>15.2f}x"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=200, help="timed calls per row (default 200)")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved batches (default 5)")
    args = parser.parse_args(argv)
    exit_cleanly_on_signals()
    tmp = Path(tempfile.mkdtemp(prefix="bench-slots-"))
    try:
        url = f"sqlite:///{tmp / 'bench.db'}"
        with temporary_app(url) as app:
            seeded = seed(app)
            timed = _cases(app, seeded)
            with gunicorn_server(url, workers=1) as base_url:
                healthz, close = _healthz_caller(base_url)
                baseline = "GET /healthz round trip (gunicorn)"
                try:
                    samples = _measure({**timed, baseline: healthz}, args.runs, args.rounds)
                finally:
                    close()
        _print_table(samples, baseline)
        pure = percentile(samples["free_slots(), 60-day window"], 50)
        print(
            f"\nfree_slots over 60 days: {format_ms(pure)} per call (median), "
            f"{pure / percentile(samples[baseline], 50):.2f}x a /healthz round trip"
        )
    except BenchError as exc:
        print(f"slots benchmark failed: {exc}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
