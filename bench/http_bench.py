"""The slots endpoint under load, beside `GET /healthz` in the same run, with wrk against gunicorn.

    .venv/bin/python -m bench.http_bench [--workers 2] [--duration 10] [--rounds 2] [--days 60] [--strict]

A throwaway PostgreSQL (`tests.support.servers.postgres_server`) is migrated and given the mentor of
`bench.scenario` (60-day horizon, 5 weekly intervals, 10 overrides, 300 bookings); gunicorn serves the app
on 127.0.0.1 with sync workers. Each round runs `wrk -t2 -c8 -d{duration}s --latency` on

    GET /healthz
    GET /api/v1/mentors/{id}/slots?from=TODAY&to=TODAY+{days-1}&duration=60&tz=Europe/Berlin

one after the other (rounds alternate, so drifting machine load hits both alike), after a short
unreported warm-up of each. Prints requests/sec (median over rounds) and p99 latency of both and the
ratio slots/healthz. Target: the slots endpoint serves at least half the requests per
second that /healthz does. PASS/FAIL is printed; the exit status is 0 either way (this is a measurement),
unless `--strict` is given. It is 1 when the benchmark could not measure (a server or request failed).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import subprocess
import sys
import urllib.request
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from bench.scenario import TIMEZONE, seed
from bench.server import BenchError, exit_cleanly_on_signals, format_ms, gunicorn_server
from tests.helpers import temporary_app
from tests.support.servers import ServerStartError, postgres_server

TARGET_RATIO = 0.5
WRK_THREADS = 2
WRK_CONNECTIONS = 8
WARMUP_SECONDS = 2
_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


@dataclass(frozen=True)
class WrkResult:
    requests_per_second: float
    p99_seconds: float
    requests: int
    errors: int  # socket errors plus non-2xx/3xx answers


def parse_wrk(output: str) -> WrkResult:
    """Read requests/sec, the 99th percentile latency and the error counts from `wrk --latency`."""
    rps = re.search(r"^Requests/sec:\s+([\d.]+)", output, re.MULTILINE)
    p99 = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s|m|h)\s*$", output, re.MULTILINE)
    total = re.search(r"^\s+(\d+) requests in ", output, re.MULTILINE)
    if not (rps and p99 and total):
        raise BenchError(f"could not read wrk's output:\n{output}")
    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", output))
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    errors += int(non_2xx.group(1)) if non_2xx else 0
    return WrkResult(
        requests_per_second=float(rps.group(1)),
        p99_seconds=float(p99.group(1)) * _UNITS[p99.group(2)],
        requests=int(total.group(1)),
        errors=errors,
    )


def run_wrk(url: str, seconds: int, script: Path | None = None) -> WrkResult:
    """One bounded wrk run (optionally driven by a Lua script); the child is killed if it overruns."""
    cmd = ["wrk", f"-t{WRK_THREADS}", f"-c{WRK_CONNECTIONS}", f"-d{seconds}s", "--latency", url]
    if script is not None:
        cmd += ["-s", str(script)]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60, check=False)
    except subprocess.TimeoutExpired as exc:
        raise BenchError(f"wrk did not finish within {seconds + 60}s") from exc
    if done.returncode != 0:
        raise BenchError(f"wrk exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
    return parse_wrk(done.stdout)


Summary = dict[str, tuple[float, float, int, int]]


def measure(urls: dict[str, str], duration: int, rounds: int) -> dict[str, list[WrkResult]]:
    """A short unreported warm-up of each URL, then `rounds` runs of each, alternating so that drifting
    machine load hits every URL alike."""
    for url in urls.values():
        run_wrk(url, WARMUP_SECONDS)
    results: dict[str, list[WrkResult]] = {label: [] for label in urls}
    for _ in range(rounds):
        for label, url in urls.items():
            results[label].append(run_wrk(url, duration))
    return results


def summarize(results: dict[str, list[WrkResult]]) -> Summary | None:
    """Print the table (medians over rounds) and return it by label; None when requests failed."""
    summary = {
        label: (
            statistics.median(r.requests_per_second for r in runs),
            statistics.median(r.p99_seconds for r in runs),
            sum(r.requests for r in runs),
            sum(r.errors for r in runs),
        )
        for label, runs in results.items()
    }
    width = max(len(label) for label in summary)
    print(f"\n{'':{width}}  {'requests/s':>11}  {'p99':>10}  {'requests':>9}  {'errors':>6}")
    for label, (rps, p99, total, errors) in summary.items():
        print(f"{label:{width}}  {rps:>11.1f}  {format_ms(p99):>10}  {total:>9}  {errors:>6}")
    if any(errors for *_, errors in summary.values()):
        print("\nrequests failed under load: the figures above are not valid", file=sys.stderr)
        return None
    return summary


def check(url: str) -> bytes:
    """One plain request before the load: it must answer 200; returns the body."""
    with urllib.request.urlopen(url, timeout=30) as response:
        if response.status != 200:
            raise BenchError(f"{url} answered {response.status}")
        return bytes(response.read())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--workers", type=int, default=2, help="gunicorn sync workers (default 2)")
    parser.add_argument("--duration", type=int, default=10, help="seconds of each wrk run (default 10)")
    parser.add_argument("--rounds", type=int, default=2, help="healthz+slots pairs to run (default 2)")
    parser.add_argument("--days", type=int, default=60, help="days of slots asked for (default 60)")
    parser.add_argument("--strict", action="store_true", help="exit 1 when the target is missed")
    args = parser.parse_args(argv)
    if not 1 <= args.duration <= 120 or not 1 <= args.rounds <= 10 or not 1 <= args.days <= 60:
        parser.error("--duration must be 1..120, --rounds 1..10 and --days 1..60")
    if shutil.which("wrk") is None:
        print("wrk is not installed: run bench/ensure-wrk.sh (or apt-get install wrk)", file=sys.stderr)
        return 1
    exit_cleanly_on_signals()
    try:
        with postgres_server(dbname="bench") as database_url:
            with temporary_app(database_url) as app:
                seeded = seed(app)
            with gunicorn_server(database_url, workers=args.workers) as base_url:
                last = seeded.first + timedelta(days=args.days - 1)
                query = f"from={seeded.first}&to={last}&duration=60&tz={TIMEZONE}"
                slots_label = f"GET slots ({args.days} days)"
                urls = {
                    "GET /healthz": f"{base_url}/healthz",
                    slots_label: f"{base_url}/api/v1/mentors/{seeded.mentor_id}/slots?{query}",
                }
                check(urls["GET /healthz"])
                body = check(urls[slots_label])
                if not json.loads(body):
                    raise BenchError("the slots endpoint lists no slot: the scenario was not set up")
                print(
                    f"PostgreSQL + gunicorn ({args.workers} sync workers) on 127.0.0.1; mentor "
                    f"{seeded.mentor_id} with {seeded.bookings} bookings; {slots_label} lists "
                    f"{len(json.loads(body))} slots ({len(body)} bytes)\n"
                    f"wrk -t{WRK_THREADS} -c{WRK_CONNECTIONS} -d{args.duration}s --latency, "
                    f"{args.rounds} round(s) of each, alternating"
                )
                results = measure(urls, args.duration, args.rounds)
    except (BenchError, ServerStartError) as exc:
        print(f"HTTP benchmark failed: {exc}", file=sys.stderr)
        return 1
    return _report(results, args.strict)


def _report(results: dict[str, list[WrkResult]], strict: bool) -> int:
    summary = summarize(results)
    if summary is None:
        return 1
    (health_rps, health_p99, _, _), (slots_rps, slots_p99, _, _) = summary.values()
    health_runs, slots_runs = results.values()
    per_round = ", ".join(
        f"{s.requests_per_second / h.requests_per_second:.3f}"
        for h, s in zip(health_runs, slots_runs, strict=True)
    )
    ratio = slots_rps / health_rps
    verdict = "PASS" if ratio >= TARGET_RATIO else "FAIL"
    print(
        f"\nslots / healthz: {ratio:.3f}x requests/s (rounds: {per_round}), p99 {slots_p99 / health_p99:.1f}x"
        f"\ntarget: slots serves >= {TARGET_RATIO:.2f}x the requests/s of /healthz: {verdict}"
    )
    return 1 if strict and verdict == "FAIL" else 0


if __name__ == "__main__":
    sys.exit(main())
