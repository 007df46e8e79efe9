from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from marketplace.accounts.models import ApiToken, User
from marketplace.extensions import db
from tests.factories import PASSWORD, UserFactory
from tests.helpers import ApiUser, assert_error_shape

REGISTER = "/api/v1/auth/register"
LOGIN = "/api/v1/auth/login"


def _register(client: FlaskClient, **overrides: str):
    body = {
        "email": "Grace@Example.test",
        "password": "a-long-password",
        "name": "Grace",
        "role": "learner",
        "timezone": "Europe/Berlin",
        **overrides,
    }
    return client.post(REGISTER, json=body)


def test_register_returns_the_user_and_stores_a_normalized_email_and_argon2_hash(client: FlaskClient) -> None:
    response = _register(client)

    assert response.status_code == 201
    body = response.get_json()
    assert body["email"] == "grace@example.test"
    assert body["roles"] == ["learner"]
    assert body["timezone"] == "Europe/Berlin"
    assert "password" not in body
    user = db.session.scalar(select(User).where(User.email == "grace@example.test"))
    assert user.password_hash.startswith("$argon2id$")


def test_emails_are_unique_case_insensitively(client: FlaskClient) -> None:
    assert _register(client).status_code == 201

    body = assert_error_shape(_register(client, email="GRACE@example.TEST"), 409)

    assert "email" in body["errors"]


def test_register_rejects_bad_input_with_422_naming_each_field(client: FlaskClient) -> None:
    response = client.post(
        REGISTER,
        json={"email": "nope", "password": "short", "name": " ", "role": "admin", "timezone": "Mars/Base"},
    )

    body = assert_error_shape(response, 422)
    assert set(body["errors"]["json"]) == {"email", "password", "name", "role", "timezone"}


def test_register_with_a_body_that_is_not_json_is_a_4xx(client: FlaskClient) -> None:
    response = client.post(REGISTER, data="{not json", content_type="application/json")

    assert_error_shape(response, 400)


def test_login_session_and_logout(client: FlaskClient) -> None:
    _register(client)

    login = client.post(LOGIN, json={"email": "GRACE@example.test", "password": "a-long-password"})
    assert login.status_code == 200
    token = login.get_json()["csrf_token"]
    assert login.get_json()["user"]["email"] == "grace@example.test"

    session = client.get("/api/v1/auth/session")
    assert session.status_code == 200
    assert session.get_json()["csrf_token"] == token
    assert client.get("/api/v1/me").get_json()["email"] == "grace@example.test"

    assert client.post("/api/v1/auth/logout", headers={"X-CSRF-Token": token}).status_code == 204
    assert_error_shape(client.get("/api/v1/auth/session"), 401)
    assert_error_shape(client.get("/api/v1/me"), 401)


def test_login_with_a_wrong_password_or_unknown_email_is_401(client: FlaskClient) -> None:
    _register(client)

    assert_error_shape(
        client.post(LOGIN, json={"email": "grace@example.test", "password": "wrong-one!"}), 401
    )
    assert_error_shape(
        client.post(LOGIN, json={"email": "nobody@example.test", "password": "whatever1"}), 401
    )


def test_login_is_rate_limited(client: FlaskClient) -> None:
    statuses = [
        client.post(LOGIN, json={"email": "x@example.test", "password": "wrong-wrong"}).status_code
        for _ in range(6)
    ]

    assert statuses[:5] == [401] * 5
    assert_error_shape(client.post(LOGIN, json={"email": "x@example.test", "password": "wrong-wrong"}), 429)


def test_cookie_sessions_need_the_csrf_header_on_unsafe_requests(client: FlaskClient) -> None:
    _register(client, role="mentor")
    token = client.post(
        LOGIN, json={"email": "grace@example.test", "password": "a-long-password"}
    ).get_json()["csrf_token"]
    profile = {"headline": "Hello"}

    assert_error_shape(client.put("/api/v1/me/mentor-profile", json=profile), 403)
    assert_error_shape(
        client.put("/api/v1/me/mentor-profile", json=profile, headers={"X-CSRF-Token": "forged"}), 403
    )
    ok = client.put("/api/v1/me/mentor-profile", json=profile, headers={"X-CSRF-Token": token})
    assert ok.status_code == 200
    assert ok.get_json()["headline"] == "Hello"


def test_bearer_tokens_work_without_csrf_and_are_stored_hashed(client: FlaskClient) -> None:
    UserFactory(email="api@example.test")
    db.session.commit()

    issued = client.post("/api/v1/auth/tokens", json={"email": "api@example.test", "password": PASSWORD})
    assert issued.status_code == 201
    raw = issued.get_json()["token"]

    me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {raw}"})
    assert me.status_code == 200
    assert me.get_json()["email"] == "api@example.test"
    stored = db.session.scalars(select(ApiToken.token_hash)).all()
    assert raw not in stored
    assert len(stored) == 1
    assert len(stored[0]) == 64


def test_an_unknown_bearer_token_is_401(client: FlaskClient) -> None:
    assert_error_shape(client.get("/api/v1/me", headers={"Authorization": "Bearer mk_made_up"}), 401)


def test_tokens_need_the_right_password(client: FlaskClient) -> None:
    UserFactory(email="api@example.test")
    db.session.commit()

    assert_error_shape(
        client.post("/api/v1/auth/tokens", json={"email": "api@example.test", "password": "nope"}), 401
    )


def test_me_shows_the_contract_fields(client: FlaskClient) -> None:
    user = UserFactory(name="Lin", timezone="Asia/Tokyo", roles=("mentor",))
    api = ApiUser(client, user)

    body = api.get("/api/v1/me").get_json()

    assert body == {
        "id": user.id,
        "email": user.email,
        "name": "Lin",
        "roles": ["mentor"],
        "timezone": "Asia/Tokyo",
        "email_verified": False,
    }


def test_create_admin_cli_creates_then_promotes_idempotently(app: Flask, client: FlaskClient) -> None:
    runner = app.test_cli_runner()

    first = runner.invoke(args=["create-admin", "Root@Example.test", "--password", "a-strong-password"])
    second = runner.invoke(args=["create-admin", "root@example.test", "--password", "a-strong-password"])

    assert first.exit_code == 0, first.output
    assert second.exit_code == 0, second.output
    admins = db.session.scalars(select(User).where(User.email == "root@example.test")).all()
    assert len(admins) == 1
    assert admins[0].roles == ["admin"]
    login = client.post(LOGIN, json={"email": "root@example.test", "password": "a-strong-password"})
    assert login.get_json()["user"]["roles"] == ["admin"]


def test_create_admin_cli_refuses_a_short_password(app: Flask, client: FlaskClient) -> None:
    result = app.test_cli_runner().invoke(args=["create-admin", "root@example.test", "--password", "short"])

    assert result.exit_code != 0
    assert db.session.scalar(select(User).where(User.email == "root@example.test")) is None
