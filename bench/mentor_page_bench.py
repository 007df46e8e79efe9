"""The public mentor page under load, beside `GET /healthz` in the same run, with wrk against gunicorn.

    .venv/bin/python -m bench.mentor_page_bench [--workers 2] [--duration 10] [--rounds 2] [--strict]

A throwaway PostgreSQL is migrated and given the mentor of `bench.scenario` (60-day horizon, 5 weekly
intervals, 10 overrides, 300 bookings); gunicorn serves the app on 127.0.0.1. Each round runs
`wrk -t2 -c8 -d{duration}s --latency` on

    GET /healthz
    GET /mentors/{id}?tz=Europe/Berlin

one after the other, after a short unreported warm-up of each. The page shows the profile, its career
paths, the latest reviews and the next 14 days of free starts. Prints requests/sec (median over rounds),
p99 latency and the ratio page/healthz, and the median cost of a page right after a change of the
mentor's calendar (when every process renders it again). Target: at least a third of /healthz's
requests per second, with p99 under 50 ms. PASS/FAIL is printed; the exit status is 0 either way unless
`--strict` is given. It is 1 when the benchmark could not measure.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import time
import urllib.request

from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from bench.http_bench import check, measure, summarize
from bench.scenario import TIMEZONE, seed
from bench.server import BenchError, exit_cleanly_on_signals, format_ms, gunicorn_server
from tests.helpers import temporary_app
from tests.support.servers import ServerStartError, postgres_server

TARGET_RATIO = 1 / 3
TARGET_P99_SECONDS = 0.050
MISS_SAMPLES = 20


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (default 2)")
    parser.add_argument("--duration", type=int, default=10, help="seconds of each wrk run (default 10)")
    parser.add_argument("--rounds", type=int, default=2, help="healthz+page pairs to run (default 2)")
    parser.add_argument("--strict", action="store_true", help="exit 1 when the target is missed")
    args = parser.parse_args(argv)
    if not 1 <= args.duration <= 120 or not 1 <= args.rounds <= 10:
        parser.error("--duration must be 1..120 and --rounds 1..10")
    if shutil.which("wrk") is None:
        print("wrk is not installed: run bench/ensure-wrk.sh (or apt-get install wrk)", file=sys.stderr)
        return 1
    exit_cleanly_on_signals()
    try:
        with postgres_server(dbname="bench") as database_url:
            with temporary_app(database_url) as app:
                seeded = seed(app)
            with gunicorn_server(database_url, workers=args.workers) as base_url:
                page = f"{base_url}/mentors/{seeded.mentor_id}?tz={TIMEZONE}"
                urls = {"GET /healthz": f"{base_url}/healthz", "GET /mentors/{id}": page}
                check(urls["GET /healthz"])
                body = check(page)
                if b'class="slot"' not in body:
                    raise BenchError("the mentor page shows no free time: the scenario was not set up")
                print(
                    f"PostgreSQL + gunicorn ({args.workers} workers) on 127.0.0.1; mentor {seeded.mentor_id} "
                    f"with {seeded.bookings} bookings; the page is {len(body)} bytes"
                )
                miss = _median_after_calendar_change(database_url, page, seeded.mentor_id)
                results = measure(urls, args.duration, args.rounds)
    except (BenchError, ServerStartError) as exc:
        print(f"mentor page benchmark failed: {exc}", file=sys.stderr)
        return 1
    summary = summarize(results)
    if summary is None:
        return 1
    (health_rps, _, _, _), (page_rps, page_p99, _, _) = summary.values()
    ratio = page_rps / health_rps
    verdict = "PASS" if ratio >= TARGET_RATIO and page_p99 < TARGET_P99_SECONDS else "FAIL"
    print(
        f"\nmentor page / healthz: {ratio:.3f}x requests/s, p99 {format_ms(page_p99)}; "
        f"right after a calendar change: {format_ms(miss)} (median of {MISS_SAMPLES})"
        f"\ntarget: >= {TARGET_RATIO:.2f}x the requests/s of /healthz and p99 under "
        f"{format_ms(TARGET_P99_SECONDS)}: {verdict}"
    )
    return 1 if args.strict and verdict == "FAIL" else 0


def _median_after_calendar_change(database_url: str, page: str, mentor_id: int) -> float:
    """The page's time right after each bump of the mentor's calendar version (what an edit causes)."""
    engine = create_engine(database_url, poolclass=NullPool)
    samples = []
    try:
        for _ in range(MISS_SAMPLES):
            with engine.begin() as connection:
                connection.execute(
                    text("UPDATE mentor_profiles SET calendar_version = calendar_version + 1 WHERE id = :id"),
                    {"id": mentor_id},
                )
            started = time.perf_counter()
            with urllib.request.urlopen(page, timeout=30) as response:
                response.read()
            samples.append(time.perf_counter() - started)
    finally:
        engine.dispose()
    return statistics.median(samples)


if __name__ == "__main__":
    sys.exit(main())
