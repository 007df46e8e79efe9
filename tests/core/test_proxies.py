"""Behind trusted proxies each client has its own address (rate limits); without them no header can pick one."""

from __future__ import annotations

from itertools import count

import pytest
from flask import Flask

from marketplace.extensions import limiter
from tests.helpers import temporary_app

_emails = count()


def _failed_login(app: Flask, forwarded_for: str) -> int:
    """A wrong password for a new address each time, so only the per-address limit can answer 429."""
    response = app.test_client().post(
        "/api/v1/auth/login",
        json={"email": f"nobody{next(_emails)}@example.test", "password": "wrong-password"},
        headers={"X-Forwarded-For": forwarded_for},
        environ_base={"REMOTE_ADDR": "10.0.0.2"},
    )
    return response.status_code


def _statuses(app: Flask, forwarded_for: str, attempts: int) -> list[int]:
    return [_failed_login(app, forwarded_for) for _ in range(attempts)]


@pytest.mark.usefixtures("app")
def test_each_client_behind_a_trusted_proxy_has_its_own_login_limit(database_url: str) -> None:
    limit = 5
    with temporary_app(database_url, TRUSTED_PROXY_COUNT=1, LOGIN_RATE_LIMIT=f"{limit} per minute") as app:
        limiter.reset()
        first = _statuses(app, "203.0.113.5", limit + 1)
        other = _statuses(app, "203.0.113.6", 1)
        limiter.reset()

    assert first == [401] * limit + [429]
    assert other == [401]


@pytest.mark.usefixtures("app")
def test_without_trusted_proxies_a_forwarded_header_cannot_pick_a_new_bucket(database_url: str) -> None:
    limit = 5
    with temporary_app(database_url, TRUSTED_PROXY_COUNT=0, LOGIN_RATE_LIMIT=f"{limit} per minute") as app:
        limiter.reset()
        statuses = [_failed_login(app, f"198.51.100.{n}") for n in range(limit + 1)]
        limiter.reset()

    assert statuses == [401] * limit + [429]
