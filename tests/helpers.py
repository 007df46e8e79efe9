"""Calling the API as a given user, the way a client would."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import celery
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import event
from werkzeug.test import TestResponse

from marketplace import create_app
from marketplace.accounts.models import User
from marketplace.accounts.service import issue_token
from marketplace.extensions import db


class ApiUser:
    """A Bearer-token client for one user."""

    def __init__(self, client: FlaskClient, user: User) -> None:
        self.client = client
        self.user = user
        self.token = issue_token(user)
        db.session.commit()

    def _headers(self, extra: dict[str, str] | None) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}", **(extra or {})}

    def get(self, path: str, **kwargs: Any) -> TestResponse:
        return self.client.get(path, headers=self._headers(kwargs.pop("headers", None)), **kwargs)

    def post(self, path: str, json: Any = None, **kwargs: Any) -> TestResponse:
        return self.client.post(path, json=json, headers=self._headers(kwargs.pop("headers", None)), **kwargs)

    def put(self, path: str, json: Any = None, **kwargs: Any) -> TestResponse:
        return self.client.put(path, json=json, headers=self._headers(kwargs.pop("headers", None)), **kwargs)

    def patch(self, path: str, json: Any = None, **kwargs: Any) -> TestResponse:
        return self.client.patch(
            path, json=json, headers=self._headers(kwargs.pop("headers", None)), **kwargs
        )

    def delete(self, path: str, **kwargs: Any) -> TestResponse:
        return self.client.delete(path, headers=self._headers(kwargs.pop("headers", None)), **kwargs)


def assert_error_shape(response: TestResponse, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    assert body["code"] == status
    assert isinstance(body["status"], str)
    assert body["status"]
    assert isinstance(body["message"], str)
    return body


# The Stripe keys of the suite; the session fixture that starts the local Stripe stand-in (tests/conftest.py)
# adds its address and fills STRIPE_SETTINGS.
STRIPE_TEST_SETTINGS = {
    "STRIPE_SECRET_KEY": "sk_test_marketplace",
    "STRIPE_PUBLISHABLE_KEY": "pk_test_marketplace",
    "STRIPE_WEBHOOK_SECRET": "whsec_test_marketplace",
}
WEBHOOK_SECRET = STRIPE_TEST_SETTINGS["STRIPE_WEBHOOK_SECRET"]
STRIPE_SETTINGS: dict[str, str] = {}


def make_test_app(database_url: str, **overrides: Any) -> Flask:
    return create_app(
        {
            "TESTING": True,
            "SECRET_KEY": "testing",
            "SQLALCHEMY_DATABASE_URI": database_url,
            "REDIS_URL": None,
            "RATELIMIT_STORAGE_URI": "memory://",
            "LOGIN_RATE_LIMIT": "5 per minute",
            # Test worlds travel in time (tests/bookings: January 2027): a token made before the trip must
            # still work there. Expiry is tested against this setting (tests/accounts/test_tokens.py).
            "API_TOKEN_TTL_DAYS": 3650,
            "ARGON2_TIME_COST": 1,
            "ARGON2_MEMORY_COST_KIB": 1024,
            "CELERY_BROKER_URL": "memory://",
            "CELERY_TASK_ALWAYS_EAGER": True,
            **STRIPE_SETTINGS,
            **overrides,
        }
    )


@contextmanager
def temporary_app(database_url: str, **overrides: Any) -> Iterator[Flask]:
    """An extra app with its own settings, whose connections are closed when the block ends.

    Building an app makes its Celery app the process default and the thread's current one; the previous app
    is made both again after, so tasks called later in the test run against the suite's app and database.
    """
    previous_celery = celery.current_app._get_current_object()
    app = make_test_app(database_url, **overrides)
    try:
        yield app
    finally:
        with app.app_context():
            db.engine.dispose()
        previous_celery.set_default()
        previous_celery.set_current()


@contextmanager
def recorded_selects() -> Iterator[list[str]]:
    """The SELECT statements run on the test session's connection inside the block."""
    statements: list[str] = []
    connection = db.session.connection()

    def _record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            statements.append(statement)

    event.listen(connection, "before_cursor_execute", _record)
    try:
        yield statements
    finally:
        event.remove(connection, "before_cursor_execute", _record)
