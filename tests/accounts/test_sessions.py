"""Cookie sessions end on the server: logout, a password change and a password reset end them for good."""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient

from marketplace.accounts import links
from marketplace.extensions import db
from tests.accounts.sessions import copy_of, sign_in
from tests.factories import PASSWORD, UserFactory
from tests.helpers import ApiUser, assert_error_shape

ME = "/api/v1/me"
NEW_PASSWORD = "a-brand-new-password"


def test_a_copy_of_the_cookie_stops_working_after_logout(app: Flask, client: FlaskClient) -> None:
    user = UserFactory(roles=("mentor",))
    db.session.commit()
    csrf = sign_in(client, user.email)
    thief = copy_of(app, client)
    assert thief.get(ME).status_code == 200

    assert client.post("/api/v1/auth/logout", headers={"X-CSRF-Token": csrf}).status_code == 204

    assert_error_shape(thief.get(ME), 401)
    assert_error_shape(thief.get("/api/v1/auth/session"), 401)
    # The CSRF token of the ended session opens nothing either.
    put = thief.put("/api/v1/me/mentor-profile", json={"headline": "Hi"}, headers={"X-CSRF-Token": csrf})
    assert_error_shape(put, 401)


def test_logout_ends_only_its_own_session(app: Flask, client: FlaskClient) -> None:
    user = UserFactory()
    db.session.commit()
    laptop_csrf = sign_in(client, user.email)
    phone = app.test_client()
    sign_in(phone, user.email)

    client.post("/api/v1/auth/logout", headers={"X-CSRF-Token": laptop_csrf})

    assert phone.get(ME).status_code == 200


def test_a_password_change_ends_every_other_session_and_token(app: Flask, client: FlaskClient) -> None:
    user = UserFactory()
    db.session.commit()
    csrf = sign_in(client, user.email)
    other_browser = app.test_client()
    sign_in(other_browser, user.email)
    api = ApiUser(app.test_client(), user)

    response = client.put(
        "/api/v1/me/password",
        json={"current_password": PASSWORD, "password": NEW_PASSWORD},
        headers={"X-CSRF-Token": csrf},
    )

    assert response.status_code == 204, response.get_data(as_text=True)
    assert client.get(ME).status_code == 200
    assert_error_shape(other_browser.get(ME), 401)
    assert_error_shape(api.get(ME), 401)
    assert_error_shape(
        app.test_client().post("/api/v1/auth/login", json={"email": user.email, "password": PASSWORD}), 401
    )
    sign_in(app.test_client(), user.email, NEW_PASSWORD)


def test_a_password_change_by_token_keeps_that_token_and_ends_the_rest(
    app: Flask, client: FlaskClient
) -> None:
    user = UserFactory()
    db.session.commit()
    sign_in(client, user.email)
    api = ApiUser(app.test_client(), user)
    other_api = ApiUser(app.test_client(), user)

    response = api.put("/api/v1/me/password", json={"current_password": PASSWORD, "password": NEW_PASSWORD})

    assert response.status_code == 204, response.get_data(as_text=True)
    assert api.get(ME).status_code == 200
    assert_error_shape(other_api.get(ME), 401)
    assert_error_shape(client.get(ME), 401)


def test_a_password_change_needs_the_current_password(client: FlaskClient) -> None:
    api = ApiUser(client, UserFactory())

    body = assert_error_shape(
        api.put("/api/v1/me/password", json={"current_password": "not-it-at-all", "password": NEW_PASSWORD}),
        403,
    )

    assert "current_password" in body["errors"]
    assert api.get(ME).status_code == 200


def test_a_password_change_checks_the_new_password(client: FlaskClient) -> None:
    api = ApiUser(client, UserFactory())

    body = assert_error_shape(
        api.put("/api/v1/me/password", json={"current_password": PASSWORD, "password": "short"}), 422
    )

    assert set(body["errors"]["json"]) == {"password"}


def test_a_password_reset_ends_every_session_and_token(app: Flask, client: FlaskClient) -> None:
    user = UserFactory()
    db.session.commit()
    sign_in(client, user.email)
    api = ApiUser(app.test_client(), user)
    token = links.password_reset_token(user)

    response = app.test_client().post(
        "/api/v1/auth/password-reset/confirm", json={"token": token, "password": NEW_PASSWORD}
    )

    assert response.status_code == 204, response.get_data(as_text=True)
    assert_error_shape(client.get(ME), 401)
    assert_error_shape(api.get(ME), 401)
    sign_in(app.test_client(), user.email, NEW_PASSWORD)
