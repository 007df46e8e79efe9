"""Mentor discovery under load: the career-path search API and page beside `GET /healthz`, with wrk.

    .venv/bin/python -m bench.careers_bench [--workers 2] [--duration 10] [--rounds 1] [--strict]

A throwaway PostgreSQL (`tests.support.servers.postgres_server`) is migrated, the career-path content is
loaded (`careers.service.sync_career_paths`, what `flask load-career-paths` runs), and a catalogue is
written with multi-row Core INSERTs (so the statement-level search triggers of migration 0004 run once per
batch): 10,000 approved mentors (users, roles, chosen paths, skills, languages, prices, some with a
`next_available_at`), 2,000 learners and 100,000 completed bookings, each with its review; every mentor's
`rating_avg`/`rating_count` agree with their reviews. gunicorn serves the app on 127.0.0.1 with sync
workers, and each round runs `wrk -t2 -c8 -d{duration}s --latency` on

    GET /healthz
    GET /api/v1/mentors?career_path=backend-developer&sort=relevance
    GET /careers/backend-developer

one after the other, after a short unreported warm-up of each. Prints requests/sec (median over rounds),
p99 latency and each endpoint's ratio to /healthz. The catalogue does not change during the runs, so they
measure what most requests cost: a response cached per process under the catalog version (one primary-key
read; see `mentors/catalog.py`). What a request costs right after a change, when every process computes the
response again, is printed beside them (the median of single requests, each after a bump of the version).
Targets: each endpoint serves at least a third of the requests per second of /healthz, with p99 under 50 ms. PASS/FAIL is printed; the exit status is 0 either
way unless `--strict` is given. It is 1 when the benchmark could not measure (a server or request failed).
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from flask_migrate import upgrade
from sqlalchemy import JSON, Table, create_engine, text
from sqlalchemy.pool import NullPool

from bench.http_bench import WRK_CONNECTIONS, WRK_THREADS, WrkResult, check, measure, summarize
from bench.server import BenchError, exit_cleanly_on_signals, format_ms, gunicorn_server
from marketplace.accounts.models import Role, User, UserRole
from marketplace.bookings.models import Booking, BookingStatus, Review
from marketplace.careers.content import load_career_paths
from marketplace.careers.service import sync_career_paths
from marketplace.extensions import db
from marketplace.mentors.models import MentorProfile, MentorTag, TagKind
from marketplace.mentors.vetting import VettingStatus
from tests.helpers import temporary_app
from tests.support.servers import ServerStartError, postgres_server

MENTORS = 10_000
LEARNERS = 2_000
REVIEWS = 100_000
PATH = "backend-developer"
TARGET_RATIO = 1 / 3
TARGET_P99_SECONDS = 0.050
MISS_SAMPLES = 20
SEED = 20240607
# Rows per INSERT statement.
BATCH = 20_000
LANGUAGES = ["en", "de", "fr", "es", "pt", "hi", "pl", "nl", "it", "ja"]
CURRENCIES = ["USD", "EUR", "GBP"]
# Any non-empty string: nobody logs in as these users.
PASSWORD_HASH = "bench-not-a-hash"


def _insert(table: Table, rows: list[dict[str, Any]]) -> None:
    """Multi-row inserts, BATCH rows per statement: `INSERT ... SELECT * FROM unnest(column arrays)`.

    One parameter per column whatever the batch size (a VALUES list would need one per cell, and compiling
    it costs more than the database takes to write it); each statement fires the statement-level triggers
    of migration 0004 once for the whole batch.
    """
    if not rows:
        return
    names = list(rows[0])
    dialect = db.session.get_bind().dialect
    casts = []
    for i, name in enumerate(names):
        column_type = table.c[name].type
        sql_type = "json" if isinstance(column_type, JSON) else column_type.compile(dialect=dialect)
        casts.append(f"CAST(:c{i} AS {sql_type}[])")
    statement = text(
        f"INSERT INTO {table.name} ({', '.join(names)}) SELECT * FROM unnest({', '.join(casts)})"
    )
    for start in range(0, len(rows), BATCH):
        batch = rows[start : start + BATCH]
        params = {f"c{i}": [_plain(row[name]) for row in batch] for i, name in enumerate(names)}
        db.session.execute(statement, params)


def _plain(value: Any) -> Any:
    """JSON values travel as text and are cast by the statement."""
    return json.dumps(value) if isinstance(value, list | dict) else value


def seed_catalogue() -> dict[str, int]:
    """Write the catalogue into the (migrated, content-loaded) database of the current app; committed."""
    rng = random.Random(SEED)
    now = datetime.now(UTC).replace(microsecond=0)
    paths = {item["slug"]: item["skills"] for item in load_career_paths()}
    slugs = sorted(paths)
    all_skills = sorted({skill for skills in paths.values() for skill in skills})

    users: list[dict[str, Any]] = []
    roles: list[dict[str, Any]] = []
    for uid in range(1, MENTORS + LEARNERS + 1):
        mentor = uid <= MENTORS
        users.append(
            {
                "id": uid,
                "email": f"{'mentor' if mentor else 'learner'}{uid}@bench.example",
                "password_hash": PASSWORD_HASH,
                "name": f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}",
                "timezone": "UTC",
                "is_active_account": True,
                "created_at": now,
                "updated_at": now,
            }
        )
        roles.append({"user_id": uid, "role": (Role.MENTOR if mentor else Role.LEARNER).value})

    # Reviews first, so each mentor's rating_avg/rating_count are written with the profile and agree.
    weights = [rng.paretovariate(1.5) for _ in range(MENTORS)]
    reviewed = rng.choices(range(1, MENTORS + 1), weights=weights, k=REVIEWS)
    bookings: list[dict[str, Any]] = []
    reviews: list[dict[str, Any]] = []
    totals: dict[int, list[int]] = {}
    for bid, mentor_id in enumerate(reviewed, start=1):
        learner_id = MENTORS + rng.randint(1, LEARNERS)
        start = now - timedelta(days=rng.randint(2, 700), hours=rng.randint(0, 23))
        rating = rng.choices((5, 4, 3, 2, 1), weights=(60, 25, 8, 4, 3))[0]
        bookings.append(
            {
                "id": bid,
                "mentor_id": mentor_id,
                "learner_id": learner_id,
                "status": BookingStatus.COMPLETED.value,
                "start_at": start,
                "end_at": start + timedelta(hours=1),
                "blocked_until": start + timedelta(hours=1),
                "duration_minutes": 60,
                "topic": "Career advice",
                "price_cents": 5_000,
                "currency": "USD",
                "hold_expires_at": start - timedelta(days=1),
                "confirmed_at": start - timedelta(days=1),
                "sequence": 0,
                "refund_status": "none",
                "payment_attempts": 0,
                "created_at": start - timedelta(days=1),
                "updated_at": start + timedelta(hours=1),
            }
        )
        reviews.append(
            {
                "id": bid,
                "booking_id": bid,
                "mentor_id": mentor_id,
                "learner_id": learner_id,
                "rating": rating,
                "comment": "Clear, practical advice." if rating >= 4 else "Could have been better prepared.",
                "created_at": start + timedelta(hours=2),
            }
        )
        totals.setdefault(mentor_id, []).append(rating)

    profiles: list[dict[str, Any]] = []
    tags: list[dict[str, Any]] = []
    for pid in range(1, MENTORS + 1):
        chosen = rng.sample(slugs, rng.choice((1, 1, 2, 2, 3)))
        pool = sorted({skill for slug in chosen for skill in paths[slug]})
        skills = rng.sample(pool, min(len(pool), rng.randint(3, 7)))
        skills += rng.sample([s for s in all_skills if s not in skills], rng.randint(0, 2))
        languages = ["en", *rng.sample([code for code in LANGUAGES if code != "en"], rng.randint(0, 2))]
        for kind, values in (
            (TagKind.CAREER_PATH, chosen),
            (TagKind.SKILL, skills),
            (TagKind.LANGUAGE, languages),
        ):
            tags += [
                {"profile_id": pid, "kind": kind.value, "value": value, "position": i}
                for i, value in enumerate(values)
            ]
        ratings = totals.get(pid, [])
        free = rng.random()
        next_free = None if free < 0.3 else now + timedelta(minutes=rng.randint(30, 60 * 24 * 30))
        profiles.append(
            {
                "id": pid,
                "user_id": pid,
                "headline": f"{rng.choice(SENIORITY)} {skills[0]} engineer helping people grow",
                "bio": f"I have worked with {', '.join(skills)} for years and enjoy mentoring.",
                "years_experience": rng.randint(2, 25),
                "price_cents": rng.randrange(2_000, 30_000, 500),
                "currency": rng.choice(CURRENCIES),
                "session_minutes": [30, 60],
                "timezone": "UTC",
                "vetting_status": VettingStatus.APPROVED.value,
                "rating_avg": sum(ratings) / len(ratings) if ratings else None,
                "rating_count": len(ratings),
                "next_available_at": next_free,
                "calendar_version": 0,
                "created_at": now,
                "updated_at": now,
            }
        )

    for table, rows in (
        (User.__table__, users),
        (UserRole.__table__, roles),
        (MentorProfile.__table__, profiles),
        (MentorTag.__table__, tags),
        (Booking.__table__, bookings),
        (Review.__table__, reviews),
    ):
        _insert(table, rows)  # type: ignore[arg-type]
    for name in ("users", "mentor_profiles", "bookings", "reviews"):
        db.session.execute(
            text(f"SELECT setval(pg_get_serial_sequence('{name}', 'id'), (SELECT max(id) FROM {name}))")
        )
    db.session.commit()
    # Planner statistics, as autovacuum would gather them on a live database (committed, or they are lost).
    db.session.execute(text("ANALYZE"))
    db.session.commit()
    matching = db.session.scalar(
        text(
            "SELECT count(*) FROM career_path_matches WHERE path_slug = :slug AND (chose = 1 OR overlap >= 3)"
        ),
        {"slug": PATH},
    )
    return {"mentors": MENTORS, "reviews": len(reviews), "tags": len(tags), "matching": int(matching or 0)}


FIRST_NAMES = ["Ada", "Ben", "Chen", "Dara", "Eli", "Fatima", "Goran", "Hana", "Ivan", "Jia", "Kofi", "Lena"]
LAST_NAMES = ["Novak", "Okafor", "Petrov", "Quinn", "Rossi", "Sato", "Tanaka", "Usman", "Vega", "Weber"]
SENIORITY = ["Senior", "Staff", "Principal", "Lead"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--workers", type=int, default=2, help="gunicorn sync workers (default 2)")
    parser.add_argument("--duration", type=int, default=10, help="seconds of each wrk run (default 10)")
    parser.add_argument("--rounds", type=int, default=1, help="rounds of the three runs (default 1)")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)
    if not 1 <= args.duration <= 120 or not 1 <= args.rounds <= 10:
        parser.error("--duration must be 1..120 and --rounds 1..10")
    if shutil.which("wrk") is None:
        print("wrk is not installed: run bench/ensure-wrk.sh (or apt-get install wrk)", file=sys.stderr)
        return 1
    exit_cleanly_on_signals()
    try:
        with postgres_server(dbname="bench") as database_url:
            started = time.monotonic()
            with temporary_app(database_url) as app, app.app_context():
                upgrade()
                sync_career_paths(load_career_paths())
                db.session.commit()
                seeded = seed_catalogue()
            seconds = time.monotonic() - started
            with gunicorn_server(database_url, workers=args.workers) as base_url:
                urls = {
                    "GET /healthz": f"{base_url}/healthz",
                    "GET /api/v1/mentors (path)": f"{base_url}/api/v1/mentors?career_path={PATH}&sort=relevance",
                    f"GET /careers/{PATH}": f"{base_url}/careers/{PATH}",
                }
                sizes = {label: len(check(url)) for label, url in urls.items()}
                listed = json.loads(check(urls["GET /api/v1/mentors (path)"]))
                if not listed:
                    raise BenchError("the search lists no mentor: the catalogue was not set up")
                print(
                    f"PostgreSQL + gunicorn ({args.workers} sync workers) on 127.0.0.1; {seeded['mentors']} "
                    f"approved mentors ({seeded['matching']} match {PATH}), {seeded['reviews']} reviews, "
                    f"{seeded['tags']} tags, seeded in {seconds:.1f} s\n"
                    f"response sizes: {', '.join(f'{label} {size} B' for label, size in sizes.items())}\n"
                    f"wrk -t{WRK_THREADS} -c{WRK_CONNECTIONS} -d{args.duration}s --latency, "
                    f"{args.rounds} round(s) of each"
                )
                results = measure(urls, args.duration, args.rounds)
                misses = _miss_latencies(database_url, {k: v for k, v in urls.items() if k != "GET /healthz"})
    except (BenchError, ServerStartError) as exc:
        print(f"careers benchmark failed: {exc}", file=sys.stderr)
        return 1
    return _report(results, misses, args.strict)


def _miss_latencies(database_url: str, urls: dict[str, str]) -> dict[str, float]:
    """Median time of one request right after a catalog change, when it cannot be answered from the cache:
    what a process pays once per URL, change and minute. Reported, not a target."""
    engine = create_engine(database_url, poolclass=NullPool)
    medians = {}
    try:
        for label, url in urls.items():
            times = []
            for _ in range(MISS_SAMPLES):
                with engine.begin() as connection:
                    connection.execute(text("UPDATE catalog_version SET version = version + 1"))
                started = time.perf_counter()
                check(url)
                times.append(time.perf_counter() - started)
            medians[label] = statistics.median(times)
    finally:
        engine.dispose()
    return medians


def _report(results: dict[str, list[WrkResult]], misses: dict[str, float], strict: bool) -> int:
    summary = summarize(results)
    if summary is None:
        return 1
    print(f"\nafter a catalog change (a cache miss), median of {MISS_SAMPLES} single requests:")
    for label, seconds in misses.items():
        print(f"  {label}: {format_ms(seconds)}")
    (_health_label, (health_rps, *_)), *measured = summary.items()
    print()
    passed = True
    for label, (rps, p99, _, _) in measured:
        ratio = rps / health_rps
        ok = ratio >= TARGET_RATIO and p99 < TARGET_P99_SECONDS
        passed = passed and ok
        print(f"{label} / healthz: {ratio:.3f}x requests/s, p99 {format_ms(p99)}: {'PASS' if ok else 'FAIL'}")
    verdict = "PASS" if passed else "FAIL"
    print(
        f"target: each >= {TARGET_RATIO:.2f}x the requests/s of /healthz and p99 < "
        f"{TARGET_P99_SECONDS * 1000:.0f} ms: {verdict}"
    )
    return 1 if strict and not passed else 0


if __name__ == "__main__":
    sys.exit(main())
