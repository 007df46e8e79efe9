"""Units of work: a lost race (deadlock, serialization failure, SQLite's busy writer) runs the whole unit again;
what still fails, and a database out of reach, answers 503 with Retry-After in the error shape, never 500."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import psycopg
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select, text
from sqlalchemy.exc import OperationalError

from marketplace.bookings import service as bookings
from marketplace.bookings.models import Booking
from marketplace.core.db import is_retryable, is_unavailable, run_in_unit
from marketplace.core.idempotency import IdempotencyKey
from marketplace.extensions import db
from marketplace.mentors.models import MentorProfile
from tests.core.races import failing, lost_race
from tests.fixtures.bookable import book
from tests.helpers import WEBHOOK_SECRET, ApiUser, assert_error_shape, temporary_app
from tests.support.databases import fresh_database
from tests.support.servers import free_port
from tests.support.stripe_client import signed_event

THURSDAY_10 = "2027-01-07T10:00:00+01:00"


def _bookings() -> int:
    return db.session.scalar(select(func.count()).select_from(Booking))


def test_errors_are_told_apart(backend: str) -> None:
    assert is_retryable(lost_race(backend))
    assert not is_unavailable(lost_race(backend))
    serialization = OperationalError("x", {}, psycopg.errors.SerializationFailure("could not serialize"))
    assert is_retryable(serialization)
    shutdown = OperationalError("x", {}, psycopg.errors.AdminShutdown("terminating connection"))
    assert is_unavailable(shutdown)
    assert not is_retryable(shutdown)
    no_table = OperationalError("x", {}, sqlite3.OperationalError("no such table: nowhere"))
    assert not is_retryable(no_table)
    assert not is_unavailable(no_table)


def test_a_request_that_loses_a_race_runs_again_and_commits_once(
    backend: str,
    mentor: MentorProfile,
    learner: ApiUser,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    check, calls = failing(2, lost_race(backend), bookings._refuse_recent_release)
    monkeypatch.setattr(bookings, "_refuse_recent_release", check)

    response = book(learner, mentor, THURSDAY_10, headers={"Idempotency-Key": "raced"})

    assert response.status_code == 201, response.get_data(as_text=True)
    assert len(calls) == 3
    assert _bookings() == 1
    keys = db.session.scalars(select(IdempotencyKey)).all()
    assert [(k.key, k.response_status) for k in keys] == [("raced", 201)]


def test_a_request_losing_every_attempt_answers_503_with_retry_after(
    app: Flask,
    backend: str,
    mentor: MentorProfile,
    learner: ApiUser,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    check, calls = failing(100, lost_race(backend), bookings._refuse_recent_release)
    monkeypatch.setattr(bookings, "_refuse_recent_release", check)

    response = book(learner, mentor, THURSDAY_10)

    body = assert_error_shape(response, 503)
    assert "try again" in body["message"]
    assert response.headers["Retry-After"] == str(app.config["DATABASE_RETRY_AFTER_SECONDS"])
    assert len(calls) == app.config["DATABASE_RETRY_ATTEMPTS"]
    assert _bookings() == 0


def test_run_in_unit_runs_a_lost_race_again_and_raises_anything_else_at_once(
    backend: str, client: FlaskClient
) -> None:
    operation, calls = failing(1, lost_race(backend), lambda: db.session.scalar(text("SELECT 7")))
    assert run_in_unit(operation) == 7
    assert len(calls) == 2

    broken, broken_calls = failing(1, ValueError("not a race"), lambda: None)
    with pytest.raises(ValueError, match="not a race"):
        run_in_unit(broken)
    assert len(broken_calls) == 1


@pytest.mark.postgres_only
def test_a_real_deadlock_between_two_units_is_resolved_by_running_one_again(
    backend: str, database_url: str, tmp_path: Path
) -> None:
    """Two units lock two rows in opposite orders; PostgreSQL kills one, which runs again and succeeds."""
    with fresh_database(database_url, tmp_path, prefix="deadlock") as url, temporary_app(url) as app:
        with app.app_context():
            db.session.execute(text("CREATE TABLE pair (id int PRIMARY KEY, n int NOT NULL)"))
            db.session.execute(text("INSERT INTO pair VALUES (1, 0), (2, 0)"))
            db.session.execute(text("SET deadlock_timeout = '100ms'"))
            db.session.commit()
        both_hold_one = threading.Barrier(2, timeout=10)
        attempts: list[str] = []
        errors: list[BaseException] = []

        def bump(first: int, second: int) -> None:
            attempts.append(f"{first}{second}")
            db.session.execute(text("SET LOCAL deadlock_timeout = '100ms'"))
            db.session.execute(text("UPDATE pair SET n = n + 1 WHERE id = :id"), {"id": first})
            if attempts.count(f"{first}{second}") == 1:
                both_hold_one.wait()
            db.session.execute(text("UPDATE pair SET n = n + 1 WHERE id = :id"), {"id": second})

        def unit(first: int, second: int) -> None:
            try:
                with app.app_context():
                    run_in_unit(bump, first, second)
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=unit, args=pair) for pair in ((1, 2), (2, 1))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)

        assert errors == []
        assert len(attempts) == 3  # one of the two ran again
        with app.app_context():
            assert db.session.execute(text("SELECT n FROM pair ORDER BY id")).scalars().all() == [2, 2]


@pytest.mark.parametrize("kind", ["postgresql", "sqlite"])
def test_a_database_out_of_reach_answers_503_for_reads_and_webhooks(kind: str, tmp_path: Path) -> None:
    url = (
        f"postgresql+psycopg://nobody@127.0.0.1:{free_port()}/none"
        if kind == "postgresql"
        else f"sqlite:///{tmp_path / 'missing-directory' / 'db.sqlite'}"
    )
    with temporary_app(url) as app:
        client = app.test_client()
        listing = client.get("/api/v1/mentors")
        payload, header = signed_event("payment_intent.succeeded", {"id": "pi_1"}, WEBHOOK_SECRET)
        webhook = client.post("/webhooks/stripe", data=payload, headers={"Stripe-Signature": header})

    for response in (listing, webhook):
        body = assert_error_shape(response, 503)
        assert "database" in body["message"]
        assert response.headers["Retry-After"] == str(app.config["DATABASE_RETRY_AFTER_SECONDS"])
