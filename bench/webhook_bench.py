"""Stripe webhook intake (verify the signature, store the event once, hand it to Redis in the web process's
batched relay) under load, beside `GET /healthz` in the same run, with wrk against gunicorn.

    .venv/bin/python -m bench.webhook_bench [--workers 2] [--duration 10] [--strict]

A throwaway PostgreSQL and Redis are started on loopback; gunicorn serves the app with Redis as its Celery
broker (no worker runs, so the queue only fills). Every request carries a distinct event, signed the way
Stripe signs (HMAC-SHA256 of `timestamp.body` with the webhook secret), prepared before the run and replayed
by a small wrk Lua script, so none is a duplicate. Target: intake serves at least 40% of the requests per
second of /healthz. PASS/FAIL is printed; the exit status is 0 either way unless `--strict` is given.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

from flask_migrate import upgrade

from bench.http_bench import WRK_CONNECTIONS, WRK_THREADS, WrkResult, run_wrk
from bench.server import BenchError, exit_cleanly_on_signals, format_ms, gunicorn_server
from tests.helpers import temporary_app
from tests.support.servers import ServerStartError, postgres_server, redis_server

TARGET_RATIO = 0.4
SECRET = "whsec_bench"
# More events than two sync workers can take in the longest run, so no request repeats one.
EVENTS = 60_000

LUA = """
local lines = {}
local counter = 0
local threads = {}

function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

function init(args)
  local index = 0
  for line in io.lines(EVENTS_FILE) do
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
  headers["Stripe-Signature"] = string.sub(line, 1, tab - 1)
  return wrk.format("POST", "/webhooks/stripe", headers, string.sub(line, tab + 1))
end
"""


def _write_events(path: Path, count: int) -> None:
    """One event per line: `signature<TAB>body`, each with its own id, all signed now."""
    now = int(time.time())
    with path.open("w") as out:
        for n in range(count):
            body = json.dumps(
                {
                    "id": f"evt_bench_{n:07d}",
                    "object": "event",
                    "type": "customer.created",
                    "created": now,
                    "data": {"object": {"id": f"cus_{n}", "object": "customer"}},
                },
                separators=(",", ":"),
            )
            signature = hmac.new(SECRET.encode(), f"{now}.{body}".encode(), hashlib.sha256).hexdigest()
            out.write(f"t={now},v1={signature}\t{body}\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--workers", type=int, default=2, help="gunicorn sync workers (default 2)")
    parser.add_argument("--duration", type=int, default=10, help="seconds of each wrk run (default 10)")
    parser.add_argument("--strict", action="store_true", help="exit 1 when the target is missed")
    args = parser.parse_args(argv)
    if not 1 <= args.duration <= 60:
        parser.error("--duration must be 1..60")
    if shutil.which("wrk") is None:
        print("wrk is not installed: run bench/ensure-wrk.sh (or apt-get install wrk)", file=sys.stderr)
        return 1
    exit_cleanly_on_signals()
    work = Path(tempfile.mkdtemp(prefix="bench-webhooks-"))
    try:
        events = work / "events.tsv"
        _write_events(events, EVENTS)
        script = work / "webhooks.lua"
        script.write_text(f'EVENTS_FILE = "{events}"\nTHREADS = {WRK_THREADS}\n' + LUA)
        with postgres_server(dbname="bench") as database_url, redis_server() as redis_url:
            with temporary_app(database_url) as app, app.app_context():
                upgrade()
            env = {"STRIPE_WEBHOOK_SECRET": SECRET, "CELERY_BROKER_URL": redis_url, "REDIS_URL": redis_url}
            with gunicorn_server(database_url, workers=args.workers, env=env) as base_url:
                run_wrk(f"{base_url}/healthz", 2)
                health = run_wrk(f"{base_url}/healthz", args.duration)
                intake = run_wrk(base_url, args.duration, script)
    except (BenchError, ServerStartError) as exc:
        print(f"webhook benchmark failed: {exc}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return _report(args.workers, args.duration, health, intake, args.strict)


def _report(workers: int, duration: int, health: WrkResult, intake: WrkResult, strict: bool) -> int:
    print(
        f"PostgreSQL + Redis + gunicorn ({workers} sync workers) on 127.0.0.1; "
        f"wrk -t{WRK_THREADS} -c{WRK_CONNECTIONS} -d{duration}s --latency"
    )
    print(f"\n{'':26}  {'requests/s':>11}  {'p99':>10}  {'requests':>9}  {'errors':>6}")
    for label, result in (("GET /healthz", health), ("POST /webhooks/stripe", intake)):
        print(
            f"{label:26}  {result.requests_per_second:>11.1f}  {format_ms(result.p99_seconds):>10}  "
            f"{result.requests:>9}  {result.errors:>6}"
        )
    if health.errors or intake.errors:
        print("\nrequests failed under load: the figures above are not valid", file=sys.stderr)
        return 1
    if intake.requests > EVENTS:
        print("\nmore requests than prepared events: some were duplicates", file=sys.stderr)
        return 1
    ratio = intake.requests_per_second / health.requests_per_second
    verdict = "PASS" if ratio >= TARGET_RATIO else "FAIL"
    print(f"\nwebhook intake / healthz: {ratio:.3f}x requests/s\ntarget: >= {TARGET_RATIO:.2f}x: {verdict}")
    return 1 if strict and verdict == "FAIL" else 0


if __name__ == "__main__":
    raise SystemExit(main())
