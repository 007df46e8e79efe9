"""Throttling: failed sign-ins count per address and per account, with backoff; registration and reset
requests are limited; a dead limiter storage (Redis) never turns into a 500."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import timedelta

import pytest
import time_machine
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from marketplace.core.time import utcnow
from marketplace.extensions import db, limiter
from tests.factories import PASSWORD, UserFactory
from tests.helpers import ApiUser, assert_error_shape, temporary_app

LOGIN = "/api/v1/auth/login"
TOKENS = "/api/v1/auth/tokens"
RESET = "/api/v1/auth/password-reset"


def _post(client: FlaskClient, path: str, body: dict, address: str) -> TestResponse:
    return client.post(path, json=body, environ_base={"REMOTE_ADDR": address})


def _guess(client: FlaskClient, email: str, address: str) -> int:
    return _post(client, LOGIN, {"email": email, "password": "wrong-guess!"}, address).status_code


def test_forty_wrong_passwords_from_four_addresses_lock_the_account(client: FlaskClient) -> None:
    victim = UserFactory()
    bystander = UserFactory()
    db.session.commit()

    statuses = [_guess(client, victim.email, f"203.0.113.{n}") for n in range(1, 5) for _ in range(10)]

    assert set(statuses) == {401, 429}
    assert statuses.count(401) == 5  # LOGIN_ACCOUNT_RATE_LIMIT: 5 per minute, whatever the address
    right = _post(client, LOGIN, {"email": victim.email, "password": PASSWORD}, "198.51.100.7")
    assert_error_shape(right, 429)
    token = _post(client, TOKENS, {"email": victim.email.upper(), "password": PASSWORD}, "198.51.100.7")
    assert_error_shape(token, 429)
    # The lock is on the account, not on the fresh address.
    assert (
        _post(client, LOGIN, {"email": bystander.email, "password": PASSWORD}, "198.51.100.7").status_code
        == 200
    )


def test_a_persistent_guesser_waits_longer_and_longer(client: FlaskClient) -> None:
    victim = UserFactory()
    db.session.commit()
    right = {"email": victim.email, "password": PASSWORD}
    with time_machine.travel(utcnow(), tick=False) as clock:
        for minute in range(4):  # 5 failures a minute, each minute from another address: 20 in the hour
            assert [_guess(client, victim.email, f"203.0.113.{minute}") for _ in range(5)] == [401] * 5
            clock.shift(timedelta(seconds=61))

        assert_error_shape(_post(client, LOGIN, right, "198.51.100.7"), 429)
        clock.shift(timedelta(minutes=30))
        assert_error_shape(_post(client, LOGIN, right, "198.51.100.7"), 429)
        clock.shift(timedelta(minutes=26))
        assert _post(client, LOGIN, right, "198.51.100.7").status_code == 200


def test_wrong_current_passwords_count_against_the_account(client: FlaskClient) -> None:
    api = ApiUser(client, UserFactory())
    wrong = {"current_password": "not-my-password", "password": "a-brand-new-password"}

    statuses = [api.put("/api/v1/me/password", json=wrong).status_code for _ in range(6)]

    assert statuses == [403] * 5 + [429]
    right = {"email": api.user.email, "password": PASSWORD}
    assert_error_shape(_post(client, LOGIN, right, "198.51.100.7"), 429)


def test_successful_sign_ins_are_not_counted(client: FlaskClient) -> None:
    user = UserFactory()
    db.session.commit()

    statuses = [
        _post(client, LOGIN, {"email": user.email, "password": PASSWORD}, "10.0.0.1").status_code
        for _ in range(12)
    ]

    assert statuses == [200] * 12


def test_one_address_is_limited_across_accounts(client: FlaskClient) -> None:
    users = UserFactory.create_batch(6)
    db.session.commit()

    statuses = [_guess(client, user.email, "203.0.113.9") for user in users]

    assert statuses == [401] * 5 + [429]  # LOGIN_RATE_LIMIT of the test app: 5 per minute
    assert _guess(client, users[5].email, "203.0.113.10") == 401


def test_registration_is_limited_per_address(client: FlaskClient) -> None:
    def register(n: int, address: str) -> int:
        body = {
            "email": f"new{n}@example.test",
            "password": "a-long-password",
            "name": "N",
            "role": "learner",
        }
        return _post(client, "/api/v1/auth/register", body, address).status_code

    assert [register(n, "203.0.113.20") for n in range(6)] == [201] * 5 + [429]
    assert register(6, "203.0.113.21") == 201


def test_reset_requests_are_limited_per_email_the_same_whether_or_not_it_exists(client: FlaskClient) -> None:
    user = UserFactory()
    db.session.commit()

    for email in (user.email, "nobody@example.test"):
        statuses = [
            _post(client, RESET, {"email": email}, f"203.0.113.{30 + n}").status_code for n in range(4)
        ]
        assert statuses == [202, 202, 202, 429]  # PASSWORD_RESET_ACCOUNT_RATE_LIMIT: 3 per hour


@pytest.fixture
def restored_limiter(client: FlaskClient) -> Iterator[None]:
    """Building another app re-initializes the process-wide limiter; put the suite's state back after."""
    saved = dict(vars(limiter))
    yield
    vars(limiter).clear()
    vars(limiter).update(saved)


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_with_redis_down_limits_hold_in_memory_and_nothing_is_a_500(
    database_url: str, restored_limiter: None, caplog: pytest.LogCaptureFixture
) -> None:
    user = UserFactory()
    db.session.commit()
    dead_redis = f"redis://127.0.0.1:{_closed_port()}/0"

    with temporary_app(database_url, RATELIMIT_STORAGE_URI=dead_redis) as app:
        client = app.test_client()
        guesses = [_guess(client, user.email, "203.0.113.40") for _ in range(7)]
        register = _post(
            client,
            "/api/v1/auth/register",
            {"email": "new@example.test", "password": "a-long-password", "name": "N", "role": "learner"},
            "203.0.113.41",
        )
        reset = _post(client, RESET, {"email": user.email}, "203.0.113.42")

    assert "falling back to in-memory storage" in caplog.text
    assert guesses == [401] * 5 + [429, 429]
    assert register.status_code == 201
    assert reset.status_code == 202
