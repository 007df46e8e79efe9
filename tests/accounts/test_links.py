"""Password reset and email verification: signed links that work once and expire."""

from __future__ import annotations

from datetime import timedelta

import time_machine
from flask import Flask
from flask.testing import FlaskClient

from marketplace.accounts import links, signals
from marketplace.core.time import utcnow
from marketplace.extensions import db
from tests.accounts.sessions import sign_in
from tests.factories import UserFactory
from tests.helpers import ApiUser, assert_error_shape

RESET = "/api/v1/auth/password-reset"
CONFIRM = "/api/v1/auth/password-reset/confirm"
VERIFY = "/api/v1/auth/verify-email"
NEW_PASSWORD = "a-brand-new-password"
NEWER_PASSWORD = "yet-another-password"


def test_a_reset_request_answers_the_same_for_known_and_unknown_addresses(client: FlaskClient) -> None:
    user = UserFactory()
    db.session.commit()

    known = client.post(RESET, json={"email": user.email.upper()})
    unknown = client.post(RESET, json={"email": "nobody@example.test"})

    assert known.status_code == unknown.status_code == 202
    assert known.get_data() == unknown.get_data() == b""
    assert known.headers.get("Content-Type") == unknown.headers.get("Content-Type")


def test_a_reset_link_works_once(app: Flask, client: FlaskClient) -> None:
    user = UserFactory()
    db.session.commit()
    token = links.password_reset_token(user)

    assert client.post(CONFIRM, json={"token": token, "password": NEW_PASSWORD}).status_code == 204
    again = client.post(CONFIRM, json={"token": token, "password": NEWER_PASSWORD})

    body = assert_error_shape(again, 400)
    assert "token" in body["errors"]
    sign_in(app.test_client(), user.email, NEW_PASSWORD)


def test_a_reset_link_expires(app: Flask, client: FlaskClient) -> None:
    lifetime = timedelta(minutes=app.config["PASSWORD_RESET_LINK_MINUTES"])
    with time_machine.travel(utcnow(), tick=False) as clock:
        user = UserFactory()
        db.session.commit()
        token = links.password_reset_token(user)

        clock.shift(lifetime + timedelta(seconds=1))

        assert_error_shape(client.post(CONFIRM, json={"token": token, "password": NEW_PASSWORD}), 400)


def test_a_reset_link_is_dead_once_the_password_changed_another_way(client: FlaskClient) -> None:
    api = ApiUser(client, UserFactory())
    token = links.password_reset_token(api.user)
    changed = api.put(
        "/api/v1/me/password", json={"current_password": "correct-horse-battery", "password": NEW_PASSWORD}
    )
    assert changed.status_code == 204

    assert_error_shape(client.post(CONFIRM, json={"token": token, "password": NEWER_PASSWORD}), 400)


def test_forged_or_foreign_tokens_are_refused(client: FlaskClient) -> None:
    user = UserFactory()
    db.session.commit()
    verification = links.verification_token(user)

    for token in ("not-a-token", verification, links.password_reset_token(user)[:-2] + "xx"):
        assert_error_shape(client.post(CONFIRM, json={"token": token, "password": NEW_PASSWORD}), 400)


def test_a_reset_request_asks_for_a_mail_only_for_an_active_account(client: FlaskClient) -> None:
    user = UserFactory()
    disabled = UserFactory(is_active_account=False)
    db.session.commit()
    asked: list[int] = []

    def _record(user_id: int, **_: object) -> None:
        asked.append(user_id)

    with signals.password_reset_requested.connected_to(_record):
        for email in ("nobody@example.test", disabled.email, user.email):
            assert client.post(RESET, json={"email": email}).status_code == 202

    assert asked == [user.id]


def test_verification_marks_the_address_and_works_once(client: FlaskClient) -> None:
    api = ApiUser(client, UserFactory())
    assert api.get("/api/v1/me").get_json()["email_verified"] is False
    token = links.verification_token(api.user)

    assert client.post(VERIFY, json={"token": token}).status_code == 204

    assert api.get("/api/v1/me").get_json()["email_verified"] is True
    assert_error_shape(client.post(VERIFY, json={"token": token}), 400)


def test_a_verification_link_expires(app: Flask, client: FlaskClient) -> None:
    lifetime = timedelta(hours=app.config["EMAIL_VERIFICATION_LINK_HOURS"])
    with time_machine.travel(utcnow(), tick=False) as clock:
        user = UserFactory()
        db.session.commit()
        token = links.verification_token(user)

        clock.shift(lifetime + timedelta(seconds=1))

        assert_error_shape(client.post(VERIFY, json={"token": token}), 400)


def test_a_reset_link_also_verifies_the_address(client: FlaskClient) -> None:
    user = UserFactory()
    db.session.commit()

    client.post(CONFIRM, json={"token": links.password_reset_token(user), "password": NEW_PASSWORD})

    db.session.expire_all()
    assert user.email_verified is True
