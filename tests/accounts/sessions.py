"""Signing in the way a browser does, and copying its cookie the way a thief would."""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient

from tests.factories import PASSWORD

LOGIN = "/api/v1/auth/login"


def sign_in(client: FlaskClient, email: str, password: str = PASSWORD) -> str:
    """Log `client` in with a cookie session; returns its CSRF token."""
    response = client.post(LOGIN, json={"email": email, "password": password})
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()["csrf_token"]


def copy_of(app: Flask, client: FlaskClient) -> FlaskClient:
    """Another client carrying the same session cookie."""
    cookie = client.get_cookie("session")
    assert cookie is not None
    thief = app.test_client()
    thief.set_cookie("session", cookie.value)
    return thief
