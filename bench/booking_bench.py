"""Booking creation (`POST /api/v1/bookings`: hold a slot and open its PaymentIntent) under load, with the Stripe
stand-in answering after a delay, beside `GET /healthz` at the same concurrency in the same run.

    .venv/bin/python -m bench.booking_bench [--stripe-delay 0.3] [--workers 2] [--threads 16] [--duration 10]
                                            [--strict]

A throwaway PostgreSQL, Redis (the broker the outbox hands work to; no worker runs) and localstripe are
started on loopback, with a small proxy in front of localstripe that holds every answer for
`--stripe-delay` seconds, as the real Stripe's latency would. 8 mentors bookable around the clock and 16
learners with API tokens are seeded; wrk (2 threads, 16 connections) replays prepared requests, each learner
booking distinct free slots of its own mentor (two learners per mentor), so every answer is a 201 and any
other answer counts as an error. gunicorn serves with `--workers` processes of `--threads` threads (gthread),
the same for both measurements. Target: booking creation serves at least 0.25x the requests per second of
/healthz. PASS/FAIL is printed; the exit status is 0 either way unless `--strict` is given.

A client that waits for its PaymentIntent waits at least the delay: with 16 connections, booking creation
cannot exceed 16 / delay requests per second (53 at 0.3 s), which the report prints beside the figure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from aiohttp import ClientSession, web
from flask_migrate import upgrade

from bench.http_bench import WRK_THREADS, WrkResult, parse_wrk
from bench.server import BenchError, exit_cleanly_on_signals, format_ms, gunicorn_server
from marketplace.accounts.models import Role
from marketplace.accounts.service import issue_token
from marketplace.extensions import db
from marketplace.scheduling.service import save_availability
from tests.factories import MentorProfileFactory, UserFactory
from tests.helpers import temporary_app
from tests.support.servers import (
    HOST,
    ServerStartError,
    free_port,
    localstripe_server,
    postgres_server,
    redis_server,
)

TARGET_RATIO = 0.25
MENTORS = 8
LEARNERS = 16
CONNECTIONS = 16
SESSION_MINUTES = 30
# More than the fastest run can use: no request repeats a slot.
REQUESTS = 40_000

LUA = """
local lines = {}
local counter = 0

function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
end

function init(args)
  local index = 0
  for line in io.lines(REQUESTS_FILE) do
    if index % THREADS == id then
      table.insert(lines, line)
    end
    index = index + 1
  end
  position = 0
end

function request()
  position = position + 1
  local line = lines[((position - 1) % #lines) + 1]
  local tab = string.find(line, "\\t", 1, true)
  local headers = {}
  headers["Content-Type"] = "application/json"
  headers["Authorization"] = "Bearer " .. string.sub(line, 1, tab - 1)
  return wrk.format("POST", "/api/v1/bookings", headers, string.sub(line, tab + 1))
end
"""


@contextmanager
def delayed_proxy(upstream: str, delay: float) -> Iterator[str]:
    """An HTTP proxy on loopback that forwards every request to `upstream` and answers `delay` seconds later."""
    loop = asyncio.new_event_loop()
    started = threading.Event()
    port = free_port()
    runner_box: list[web.AppRunner] = []

    async def forward(request: web.Request) -> web.Response:
        body = await request.read()
        await asyncio.sleep(delay)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in {"host", "content-length"}}
        session: ClientSession = request.app["session"]
        async with session.request(
            request.method, upstream + request.path_qs, headers=headers, data=body
        ) as up:
            payload = await up.read()
            kept = {k: v for k, v in up.headers.items() if k.lower() == "content-type"}
            return web.Response(status=up.status, body=payload, headers=kept)

    async def start() -> None:
        app = web.Application()
        app["session"] = ClientSession()
        app.router.add_route("*", "/{tail:.*}", forward)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, HOST, port).start()
        runner_box.append(runner)
        started.set()

    async def stop() -> None:
        runner = runner_box[0]
        await runner.app["session"].close()
        await runner.cleanup()

    thread = threading.Thread(target=loop.run_forever, name="stripe-delay-proxy", daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(start(), loop).result(timeout=10)
    try:
        yield f"http://{HOST}:{port}"
    finally:
        asyncio.run_coroutine_threadsafe(stop(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)


def seed(database_url: str) -> tuple[list[int], list[tuple[int, str]]]:
    """Mentors bookable around the clock in UTC (30-minute sessions, no buffer), learners with tokens."""
    with temporary_app(database_url) as app, app.app_context():
        upgrade()
        mentor_ids = []
        for _ in range(MENTORS):
            mentor = MentorProfileFactory(
                user=UserFactory(roles=(Role.MENTOR,), timezone="UTC"),
                timezone="UTC",
                price_cents=6000,
                currency="USD",
                session_minutes=[SESSION_MINUTES],
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
            mentor_ids.append(mentor.id)
        learners = []
        for _ in range(LEARNERS):
            user = UserFactory(roles=(Role.LEARNER,), timezone="UTC")
            learners.append((user.id, issue_token(user)))
        db.session.commit()
        return mentor_ids, learners


def write_requests(path: Path, mentor_ids: list[int], learners: list[tuple[int, str]]) -> None:
    """One request per line, `token<TAB>body`: learner n books mentor n % 8, on that mentor's next free slot."""
    first = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(days=1)
    taken = dict.fromkeys(mentor_ids, 0)
    with path.open("w") as out:
        for n in range(REQUESTS):
            _learner_id, token = learners[n % LEARNERS]
            mentor_id = mentor_ids[n % LEARNERS % MENTORS]
            start = first + timedelta(minutes=SESSION_MINUTES * taken[mentor_id])
            taken[mentor_id] += 1
            body = {
                "mentor_id": mentor_id,
                "start": start.isoformat(),
                "duration_minutes": SESSION_MINUTES,
                "topic": "Benchmark",
            }
            out.write(f"{token}\t{json.dumps(body, separators=(',', ':'))}\n")


def run_wrk(url: str, seconds: int, script: Path | None = None) -> WrkResult:
    """`wrk -t2 -c16` (the learners' concurrency), for /healthz and the bookings alike."""
    cmd = [
        "wrk",
        f"-t{WRK_THREADS}",
        f"-c{CONNECTIONS}",
        f"-d{seconds}s",
        "--timeout",
        "10s",
        "--latency",
        url,
    ]
    if script is not None:
        cmd += ["-s", str(script)]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60, check=False)
    except subprocess.TimeoutExpired as exc:
        raise BenchError(f"wrk did not finish within {seconds + 60}s") from exc
    if done.returncode != 0:
        raise BenchError(f"wrk exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
    return parse_wrk(done.stdout)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--stripe-delay", type=float, default=0.3, help="seconds (default 0.3)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (default 2)")
    parser.add_argument("--threads", type=int, default=16, help="threads per worker (default 16)")
    parser.add_argument("--duration", type=int, default=10, help="seconds of each wrk run (default 10)")
    parser.add_argument("--strict", action="store_true", help="exit 1 when the target is missed")
    args = parser.parse_args(argv)
    if not 1 <= args.duration <= 60 or not 0 <= args.stripe_delay <= 5:
        parser.error("--duration must be 1..60 and --stripe-delay 0..5")
    if shutil.which("wrk") is None:
        print("wrk is not installed: run bench/ensure-wrk.sh (or apt-get install wrk)", file=sys.stderr)
        return 1
    exit_cleanly_on_signals()
    work = Path(tempfile.mkdtemp(prefix="bench-bookings-"))
    try:
        with (
            postgres_server(dbname="bench") as database_url,
            redis_server() as redis_url,
            localstripe_server() as stripe,
            delayed_proxy(stripe.api_base, args.stripe_delay) as stripe_url,
        ):
            mentor_ids, learners = seed(database_url)
            requests_file = work / "requests.tsv"
            write_requests(requests_file, mentor_ids, learners)
            script = work / "bookings.lua"
            script.write_text(f'REQUESTS_FILE = "{requests_file}"\nTHREADS = {WRK_THREADS}\n' + LUA)
            env = {
                "STRIPE_SECRET_KEY": "sk_test_bench",
                "STRIPE_API_BASE": stripe_url,
                "CELERY_BROKER_URL": redis_url,
                "MAX_UNPAID_HOLDS": str(REQUESTS),
                "HOLD_RATE_LIMIT": f"{REQUESTS * 10} per hour",
                "GUNICORN_CMD_ARGS": f"--worker-class gthread --threads {args.threads}",
            }
            with gunicorn_server(database_url, workers=args.workers, env=env) as base_url:
                run_wrk(f"{base_url}/healthz", 2)
                health = run_wrk(f"{base_url}/healthz", args.duration)
                bookings = run_wrk(base_url, args.duration, script)
    except (BenchError, ServerStartError) as exc:
        print(f"booking benchmark failed: {exc}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return _report(args, health, bookings)


def _report(args: argparse.Namespace, health: WrkResult, bookings: WrkResult) -> int:
    print(
        f"PostgreSQL + Redis + gunicorn ({args.workers} gthread workers x {args.threads} threads) on 127.0.0.1; "
        f"Stripe stand-in answering after {args.stripe_delay:.3f} s; "
        f"wrk -t{WRK_THREADS} -c{CONNECTIONS} -d{args.duration}s --latency; "
        f"{LEARNERS} learners across {MENTORS} mentors"
    )
    print(f"\n{'':22}  {'requests/s':>11}  {'p99':>10}  {'requests':>9}  {'errors':>6}")
    for label, result in (("GET /healthz", health), ("POST /api/v1/bookings", bookings)):
        print(
            f"{label:22}  {result.requests_per_second:>11.1f}  {format_ms(result.p99_seconds):>10}  "
            f"{result.requests:>9}  {result.errors:>6}"
        )
    if args.stripe_delay > 0:
        print(
            f"\nat most {CONNECTIONS / args.stripe_delay:.1f} bookings/s can wait {args.stripe_delay} s each"
        )
    if health.errors or bookings.errors:
        print("\nrequests failed under load: the figures above are not valid", file=sys.stderr)
        return 1
    if bookings.requests > REQUESTS:
        print("\nmore requests than prepared slots: some were repeats", file=sys.stderr)
        return 1
    ratio = bookings.requests_per_second / health.requests_per_second
    verdict = "PASS" if ratio >= TARGET_RATIO else "FAIL"
    print(f"\nbooking creation / healthz: {ratio:.3f}x requests/s\ntarget: >= {TARGET_RATIO:.2f}x: {verdict}")
    return 1 if args.strict and verdict == "FAIL" else 0


if __name__ == "__main__":
    raise SystemExit(main())
