"""The booking invariants under real concurrency: gunicorn workers, real HTTP, real commits.

Each backend gets a fresh database (a new PostgreSQL database on the suite's server, or a new SQLite
file), migrated and seeded once per module, served by `live_server` (four gunicorn processes) with a
localstripe for the PaymentIntents holds open. Requests are released together by a barrier, so the
processes race on the same rows; every answer is checked, then the database is read directly to check
what was committed. The payment worker's side (`confirm_paid_booking`) runs in this process.
"""

from __future__ import annotations

import random
import secrets
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from functools import partial
from itertools import combinations
from pathlib import Path
from typing import Any, TypeVar

import pytest
import requests
from flask import Flask
from flask_migrate import upgrade
from sqlalchemy import select

from marketplace.accounts.models import Role
from marketplace.accounts.service import issue_token
from marketplace.bookings.models import LIVE_STATUSES, Booking
from marketplace.bookings.state_changes import confirm_paid_booking
from marketplace.core.idempotency import IdempotencyKey
from marketplace.extensions import db
from marketplace.scheduling.service import save_availability
from tests.factories import MentorProfileFactory, UserFactory
from tests.helpers import temporary_app
from tests.support.databases import fresh_database
from tests.support.live_server import live_server
from tests.support.servers import localstripe_server

pytestmark = pytest.mark.slow(seconds=150)

T = TypeVar("T")

LEARNERS = 50
PRICE_PER_HOUR_CENTS = 6000
BUFFER = timedelta(minutes=15)
HTTP_TIMEOUT = 30
# Each live server's log, by base URL, so a 5xx in an assertion message comes with its traceback.
SERVER_LOGS: dict[str, Path] = {}
# Starts are written with this offset, so the server has to convert them to UTC itself.
PLUS_TWO = timezone(timedelta(hours=2))


@dataclass(frozen=True)
class Learner:
    id: int
    token: str


@dataclass(frozen=True)
class World:
    base_url: str
    app: Flask  # on the same database as the server, for the payment worker's calls and for checks
    mentor_id: int
    learners: list[Learner]
    day0: datetime  # a UTC midnight far enough ahead for full refunds and reschedules

    def day(self, n: int, hours: float = 0) -> datetime:
        """Each test books on days of its own, so no test's slots touch another's."""
        return self.day0 + timedelta(days=n, hours=hours)


# --- setting up ------------------------------------------------------------------------------------


def seed(app: Flask) -> tuple[int, list[Learner]]:
    """An approved mentor bookable around the clock in UTC, and learners with API tokens; committed."""
    with app.app_context():
        upgrade()
        mentor = MentorProfileFactory(
            user=UserFactory(roles=(Role.MENTOR,), timezone="UTC"),
            timezone="UTC",
            price_cents=PRICE_PER_HOUR_CENTS,
            currency="USD",
            session_minutes=[30, 60],
        )
        save_availability(
            mentor.user,
            {
                "timezone": "UTC",
                "weekly": [{"weekday": day, "start": "00:00", "end": "24:00"} for day in range(7)],
                "buffer_minutes": int(BUFFER.total_seconds() // 60),
                "min_notice_minutes": 0,
                "horizon_days": 365,
            },
        )
        learners = []
        for _ in range(LEARNERS):
            user = UserFactory(roles=(Role.LEARNER,), timezone="UTC")
            learners.append(Learner(user.id, issue_token(user)))
        db.session.commit()
        return mentor.id, learners


@pytest.fixture(scope="module")
def world(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with (
        fresh_database(database_url, tmp_path_factory.mktemp("races"), prefix="race") as url,
        temporary_app(url) as app,
        localstripe_server() as stripe,
    ):
        mentor_id, learners = seed(app)
        server_env = {
            # Every booking here stays an unpaid hold; the default cap of 3 per learner would answer 429.
            "MAX_UNPAID_HOLDS": "1000",
            # The same learners hold again and again here, faster than any learner would.
            "HOLD_RATE_LIMIT": "10000 per hour",
            # A hold opens its PaymentIntent inside the booking's transaction: a real (local) Stripe.
            "STRIPE_SECRET_KEY": "sk_test_races",
            "STRIPE_API_BASE": stripe.api_base,
            # The outbox's after-commit hand-off needs a broker; no worker runs here, so any will do.
            "CELERY_BROKER_URL": "memory://",
        }
        log_path = tmp_path_factory.mktemp("gunicorn") / "gunicorn.log"
        with live_server(url, env=server_env, log_path=log_path) as base_url:
            SERVER_LOGS[base_url] = log_path
            day0 = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=3)
            yield World(base_url, app, mentor_id, learners, day0)


# --- talking to it ---------------------------------------------------------------------------------


def all_at_once(calls: Sequence[Callable[[], T]]) -> list[T]:
    """Run every call in its own thread, released together by a barrier; results in call order."""
    barrier = threading.Barrier(len(calls))

    def run(call: Callable[[], T]) -> T:
        barrier.wait(timeout=HTTP_TIMEOUT)
        return call()

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        futures = [pool.submit(run, call) for call in calls]
        return [future.result() for future in futures]


def post(
    world: World, learner: Learner, path: str, body: dict[str, Any], headers: dict[str, str] | None = None
) -> requests.Response:
    return requests.post(
        world.base_url + path,
        json=body,
        headers={"Authorization": f"Bearer {learner.token}", **(headers or {})},
        timeout=HTTP_TIMEOUT,
    )


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(PLUS_TWO).isoformat()


def book(
    world: World, learner: Learner, start: datetime, minutes: int = 60, **kwargs: Any
) -> requests.Response:
    body = {
        "mentor_id": world.mentor_id,
        "start": rfc3339(start),
        "duration_minutes": minutes,
        "topic": "Race",
    }
    return post(world, learner, "/api/v1/bookings", body, **kwargs)


def last_server_error(log: Path) -> str:
    """The server's last logged traceback, without library frames: the project's frames and the error."""
    lines = log.read_text(errors="replace").splitlines()
    starts = [i for i, line in enumerate(lines) if "[ERROR]" in line]
    if not starts:
        return "<no error in the server log>"
    kept, keep_next = [], False
    for line in lines[starts[-1] :]:
        ours = line.lstrip().startswith('File "') and "site-packages" not in line
        if ours or keep_next or not line.startswith(" "):
            kept.append(line[:300])
        keep_next = ours
    return "\n".join(kept[-40:])


def explain(response: requests.Response) -> str:
    """The answer, and for a server error the server's last traceback."""
    text = f"{response.request.method} {response.url} -> {response.status_code}: {response.text[:300]}"
    if response.status_code >= 500:
        log = next((path for base, path in SERVER_LOGS.items() if response.url.startswith(base)), None)
        if log is not None:
            text += f"\n--- last error in the server log ---\n{last_server_error(log)}"
    return text


def describe(responses: Sequence[requests.Response]) -> str:
    """Statuses, plus the first unexpected answer, for assertion messages."""
    counts = Counter(r.status_code for r in responses)
    odd = [r for r in responses if r.status_code not in (200, 201, 409)]
    return f"statuses {dict(counts)}" + (f"; first unexpected: {explain(odd[0])}" if odd else "")


def assert_conflict(response: requests.Response) -> None:
    assert response.status_code == 409, explain(response)
    assert response.json()["code"] == 409


def assert_booked(response: requests.Response, learner: Learner, start: datetime, minutes: int) -> int:
    assert response.status_code == 201, explain(response)
    body = response.json()
    assert body["status"] == "pending_payment"
    assert body["learner_id"] == learner.id
    assert body["start"] == start.isoformat()
    assert body["end"] == (start + timedelta(minutes=minutes)).isoformat()
    assert body["price_cents"] == PRICE_PER_HOUR_CENTS * minutes // 60
    assert body["payment"]["provider"] == "stripe"
    assert body["payment"]["payment_intent_id"]
    return int(body["id"])


# --- reading the database --------------------------------------------------------------------------


def bookings(world: World, first: datetime | None = None, last: datetime | None = None) -> list[Booking]:
    """The mentor's bookings starting in [first, last), read afresh from the database."""
    with world.app.app_context():
        stmt = select(Booking).where(Booking.mentor_id == world.mentor_id).order_by(Booking.start_at)
        if first is not None:
            stmt = stmt.where(Booking.start_at >= first)
        if last is not None:
            stmt = stmt.where(Booking.start_at < last)
        rows = list(db.session.scalars(stmt))
        db.session.expunge_all()
        return rows


def assert_no_overlap(world: World) -> None:
    """No two live bookings of the mentor overlap, each widened by its buffer; every row is well formed."""
    live = [b for b in bookings(world) if b.status in LIVE_STATUSES]
    for booking in live:
        assert booking.end_at - booking.start_at == timedelta(minutes=booking.duration_minutes)
        assert booking.blocked_until == booking.end_at + BUFFER
    for a, b in combinations(live, 2):
        assert not (a.start_at < b.blocked_until and b.start_at < a.blocked_until), (
            f"bookings {a.id} [{a.start_at}, {a.blocked_until}) and {b.id} [{b.start_at}, {b.blocked_until}) overlap"
        )


# --- the races -------------------------------------------------------------------------------------


# Rounds of fifty at once; each round is a fresh race for a fresh slot (eight keep the suite within its time).
SAME_SLOT_ROUNDS = 8


def test_fifty_learners_racing_for_one_slot_get_one_booking(world: World) -> None:
    first, last = world.day(0), world.day(0, hours=2 * SAME_SLOT_ROUNDS)
    winners: dict[datetime, int] = {}
    for n in range(SAME_SLOT_ROUNDS):
        start = world.day(0, hours=2 * n)
        responses = all_at_once([partial(book, world, lr, start) for lr in world.learners])

        assert Counter(r.status_code for r in responses) == {201: 1, 409: LEARNERS - 1}, describe(responses)
        for learner, response in zip(world.learners, responses, strict=True):
            if response.status_code == 201:
                winners[start] = learner.id
                assert_booked(response, learner, start, 60)
            else:
                assert_conflict(response)

    # The losers left nothing behind: one row per slot, its winner's, still holding it.
    rows = bookings(world, first, last)
    assert [b.status for b in rows] == ["pending_payment"] * SAME_SLOT_ROUNDS
    assert {b.start_at: b.learner_id for b in rows} == winners
    assert_no_overlap(world)


def test_overlapping_lengths_racing_for_one_time_get_one_booking(world: World) -> None:
    """Half ask for T (60 min), half for T+30 (30 min): different rows, the same time of the mentor."""
    for n in range(5):
        start = world.day(3, hours=3 * n)
        later = start + timedelta(minutes=30)
        calls = [
            partial(book, world, lr, start, 60) if i % 2 else partial(book, world, lr, later, 30)
            for i, lr in enumerate(world.learners)
        ]
        responses = all_at_once(calls)

        assert Counter(r.status_code for r in responses) == {201: 1, 409: LEARNERS - 1}, describe(responses)
        for i, (learner, response) in enumerate(zip(world.learners, responses, strict=True)):
            if response.status_code == 201:
                assert_booked(response, learner, *((start, 60) if i % 2 else (later, 30)))
            else:
                assert_conflict(response)
        live = [b for b in bookings(world, start, start + timedelta(hours=1)) if b.status in LIVE_STATUSES]
        assert len(live) == 1
    assert_no_overlap(world)


def test_one_idempotency_key_sent_ten_times_at_once_books_once(world: World) -> None:
    learner = world.learners[0]
    for n in range(3):
        start = world.day(5, hours=3 * n)
        key = f"race-{secrets.token_hex(8)}"
        same = partial(book, world, learner, start, headers={"Idempotency-Key": key})
        responses = all_at_once([same] * 10)

        assert [r.status_code for r in responses] == [201] * 10, describe(responses)
        booking_id = assert_booked(responses[0], learner, start, 60)
        assert {r.json()["id"] for r in responses} == {booking_id}
        replayed = [r.headers.get("Idempotent-Replayed") for r in responses]
        # One request ran; the nine others waited for its commit and got its answer back, byte for byte.
        assert sorted(replayed, key=str) == [None] + ["true"] * 9, replayed
        original = next(r for r in responses if "Idempotent-Replayed" not in r.headers)
        assert all(r.json() == original.json() for r in responses)

        rows = bookings(world, start, start + timedelta(hours=1))
        assert [(b.id, b.learner_id, b.status) for b in rows] == [(booking_id, learner.id, "pending_payment")]
        with world.app.app_context():
            keys = db.session.scalars(select(IdempotencyKey).where(IdempotencyKey.key == key)).all()
            assert [(k.user_id, k.response_status) for k in keys] == [(learner.id, 201)]
    assert_no_overlap(world)


def confirm(world: World, booking_id: int) -> bool:
    """What the payment worker does when Stripe says the money arrived."""
    with world.app.app_context():
        won = confirm_paid_booking(booking_id)
        db.session.commit()
        return won


def jittered(rng: random.Random, call: Callable[[], T]) -> Callable[[], T]:
    """Vary who goes first from round to round, within a few milliseconds."""
    delay = rng.uniform(0, 0.02)

    def run() -> T:
        threading.Event().wait(delay)
        return call()

    return run


def assert_shape(row: Booking, start: datetime) -> None:
    assert row.start_at == start
    assert row.end_at == start + timedelta(hours=1)
    assert row.blocked_until == row.end_at + BUFFER
    assert row.duration_minutes == 60


def test_confirm_cancel_and_reschedule_racing_leave_one_consistent_state(world: World) -> None:
    rng = random.Random(20270104)
    price = PRICE_PER_HOUR_CENTS
    for n in range(10):
        learner = world.learners[n]
        old, new = world.day(7, hours=6 * n), world.day(7, hours=6 * n + 2)
        booking_id = assert_booked(book(world, learner, old), learner, old, 60)
        path = f"/api/v1/bookings/{booking_id}"

        cancelled, moved, confirmed = all_at_once(
            [
                jittered(rng, partial(post, world, learner, f"{path}/cancel", {"reason": "race"})),
                jittered(rng, partial(post, world, learner, f"{path}/reschedule", {"start": rfc3339(new)})),
                jittered(rng, partial(confirm, world, booking_id)),
            ]
        )

        # Nothing but a cancel ends a live booking, so the cancel always wins, and it sees the payment or not.
        assert cancelled.status_code == 200, explain(cancelled)
        assert moved.status_code in (200, 409), explain(moved)
        (row,) = bookings(world, world.day(7, hours=6 * n), world.day(7, hours=6 * n + 6))
        assert row.id == booking_id
        assert row.status == "cancelled"
        assert row.cancelled_by_id == learner.id
        if confirmed:  # paid before the cancel: full refund, more than 24 hours ahead
            assert row.confirmed_at is not None
            assert (row.refund_amount_cents, row.refund_status) == (price, "pending")
        else:  # cancelled while unpaid: the payment found nothing to confirm, and there is nothing to refund
            assert row.confirmed_at is None
            assert (row.refund_amount_cents, row.refund_status) == (0, "none")
        assert cancelled.json()["refund"] == {
            "amount_cents": row.refund_amount_cents,
            "status": row.refund_status,
        }
        assert cancelled.json()["status"] == "cancelled"
        if moved.status_code == 200:  # moved before the cancel
            assert moved.json()["start"] == new.isoformat()
            assert_shape(row, new)
        else:  # the cancel came first: the move changed nothing
            assert_conflict(moved)
            assert_shape(row, old)
        assert row.sequence == 1 + (moved.status_code == 200)
    assert_no_overlap(world)


def test_payment_racing_two_reschedules_ends_confirmed_at_one_time(world: World) -> None:
    """Without a cancel the payment always lands; each move that answers 200 really happened, in some order."""
    rng = random.Random(42)
    for n in range(4):
        learner = world.learners[n]
        old = world.day(10, hours=6 * n)
        targets = (old + timedelta(hours=2), old + timedelta(hours=4))
        booking_id = assert_booked(book(world, learner, old), learner, old, 60)
        path = f"/api/v1/bookings/{booking_id}/reschedule"

        confirmed, *moves = all_at_once(
            [
                jittered(rng, partial(confirm, world, booking_id)),
                *(jittered(rng, partial(post, world, learner, path, {"start": rfc3339(t)})) for t in targets),
            ]
        )

        assert confirmed is True
        for move in moves:
            assert move.status_code in (200, 409), explain(move)
            if move.status_code == 409:
                assert_conflict(move)
        won = [t for t, move in zip(targets, moves, strict=True) if move.status_code == 200]
        assert won, [explain(m) for m in moves]
        (row,) = bookings(world, old, old + timedelta(hours=6))
        assert (row.id, row.status, row.confirmed_at is not None) == (booking_id, "confirmed", True)
        assert row.start_at in won
        assert_shape(row, row.start_at)
        assert row.sequence == len(won)
        assert row.refund_amount_cents is None
    assert_no_overlap(world)


def test_a_reschedule_racing_new_bookings_into_its_target_gets_one_winner(world: World) -> None:
    """The move is an UPDATE, the others INSERTs: the database must hold the invariant for both."""
    mover, others = world.learners[-1], world.learners[:-1]
    for n in range(5):
        source = world.day(12, hours=3 * n)
        target = source + timedelta(minutes=90)  # clear of the source and its buffer
        booking_id = assert_booked(book(world, mover, source), mover, source, 60)
        path = f"/api/v1/bookings/{booking_id}/reschedule"

        moved, *responses = all_at_once(
            [
                partial(post, world, mover, path, {"start": rfc3339(target)}),
                *(partial(book, world, lr, target) for lr in others),
            ]
        )

        assert moved.status_code in (200, 409), explain(moved)
        expected = {409: LEARNERS - 1} if moved.status_code == 200 else {201: 1, 409: LEARNERS - 2}
        assert Counter(r.status_code for r in responses) == expected, describe(responses)
        live = [b for b in bookings(world, source, source + timedelta(hours=3)) if b.status in LIVE_STATUSES]
        if moved.status_code == 200:
            assert moved.json()["start"] == target.isoformat()
            assert [(b.id, b.start_at) for b in live] == [(booking_id, target)]
            for response in responses:
                assert_conflict(response)
        else:
            assert_conflict(moved)
            (winner,) = (lr for lr, r in zip(others, responses, strict=True) if r.status_code == 201)
            won_id = assert_booked(next(r for r in responses if r.status_code == 201), winner, target, 60)
            assert [(b.id, b.start_at) for b in live] == [(booking_id, source), (won_id, target)]
    assert_no_overlap(world)


DEADLOCK_ROUNDS = 12


def test_holds_racing_the_payment_work_of_the_same_learner_never_deadlock(world: World) -> None:
    """Issue 11's deadlock: a hold locked its learner, then the mentor; the payment work locks the mentor, the
    booking, then (by the foreign keys of the reminder rows it inserts) the learner. Each round holds a new
    slot while the previous round's hold is confirmed, both released together; every answer must be a 201,
    every confirmation must win, and no 5xx (a deadlock past its retries, a 503) may appear."""
    learner = world.learners[2]
    server_log = SERVER_LOGS[world.base_url]
    logged_before = server_log.stat().st_size
    first = world.day(14)
    pending = assert_booked(book(world, learner, first), learner, first, 60)
    for n in range(1, DEADLOCK_ROUNDS + 1):
        start = world.day(14, hours=2 * n)
        hold, confirmed = all_at_once(
            [partial(book, world, learner, start), partial(confirm, world, pending)]
        )
        assert confirmed
        pending = assert_booked(hold, learner, start, 60)
    rows = bookings(world, first, world.day(16))
    assert [row.status for row in rows] == ["confirmed"] * DEADLOCK_ROUNDS + ["pending_payment"]
    assert_no_overlap(world)
    # Not even a deadlock retried away: the server ran every request once.
    with server_log.open(errors="replace") as log:
        log.seek(logged_before)
        assert "lost a race" not in log.read()
