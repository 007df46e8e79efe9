"""API tokens expire, can be listed and revoked by their owner, and record when they were last used."""

from __future__ import annotations

from datetime import timedelta

import time_machine
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from marketplace.accounts.models import ApiToken
from marketplace.core.time import utcnow
from marketplace.extensions import db
from tests.factories import PASSWORD, UserFactory
from tests.helpers import ApiUser, assert_error_shape

TOKENS = "/api/v1/auth/tokens"
ME = "/api/v1/me"


def test_issuing_names_the_token_and_says_when_it_expires(app: Flask, client: FlaskClient) -> None:
    user = UserFactory()
    db.session.commit()

    response = client.post(TOKENS, json={"email": user.email, "password": PASSWORD, "name": "CI deploys"})

    assert response.status_code == 201, response.get_data(as_text=True)
    body = response.get_json()
    assert body["name"] == "CI deploys"
    assert body["token"].startswith("mk_")
    issued = db.session.get(ApiToken, body["id"])
    assert issued.expires_at - issued.created_at == timedelta(days=app.config["API_TOKEN_TTL_DAYS"])


def test_the_list_shows_only_my_working_tokens_and_never_a_secret(client: FlaskClient) -> None:
    me = ApiUser(client, UserFactory())
    second = client.post(TOKENS, json={"email": me.user.email, "password": PASSWORD, "name": "laptop"})
    revoked = client.post(TOKENS, json={"email": me.user.email, "password": PASSWORD, "name": "old"})
    assert me.delete(f"{TOKENS}/{revoked.get_json()['id']}").status_code == 204
    someone_else = ApiUser(client, UserFactory())

    response = me.get(TOKENS)

    assert response.status_code == 200
    listed = response.get_json()
    assert [t["name"] for t in listed] == ["laptop", "API token"]
    assert {tuple(sorted(t)) for t in listed} == {("created_at", "expires_at", "id", "last_used_at", "name")}
    text = response.get_data(as_text=True)
    for secret in (me.token, second.get_json()["token"], someone_else.token):
        assert secret not in text
    stored_hashes = db.session.scalars(select(ApiToken.token_hash)).all()
    assert not any(digest in text for digest in stored_hashes)


def test_a_revoked_token_fails_at_once(client: FlaskClient) -> None:
    me = ApiUser(client, UserFactory())
    spare = client.post(TOKENS, json={"email": me.user.email, "password": PASSWORD}).get_json()
    spare_headers = {"Authorization": f"Bearer {spare['token']}"}
    assert client.get(ME, headers=spare_headers).status_code == 200

    assert me.delete(f"{TOKENS}/{spare['id']}").status_code == 204

    assert_error_shape(client.get(ME, headers=spare_headers), 401)
    assert me.get(ME).status_code == 200
    assert db.session.get(ApiToken, spare["id"]).revoked_at is not None


def test_nobody_can_revoke_someone_elses_token(client: FlaskClient) -> None:
    owner = ApiUser(client, UserFactory())
    intruder = ApiUser(client, UserFactory())
    owner_token_id = db.session.scalar(select(ApiToken.id).where(ApiToken.user_id == owner.user.id))

    assert_error_shape(intruder.delete(f"{TOKENS}/{owner_token_id}"), 404)
    assert_error_shape(intruder.delete(f"{TOKENS}/99999999999999999999"), 404)

    assert owner.get(ME).status_code == 200


def test_a_token_fails_once_it_expires(app: Flask, client: FlaskClient) -> None:
    with time_machine.travel(utcnow(), tick=False) as clock:
        api = ApiUser(client, UserFactory())
        ttl = timedelta(days=app.config["API_TOKEN_TTL_DAYS"])
        clock.shift(ttl - timedelta(minutes=1))
        assert api.get(ME).status_code == 200

        clock.shift(timedelta(minutes=1))

        assert_error_shape(api.get(ME), 401)
        assert api.get(TOKENS).status_code == 401


def test_last_use_is_recorded_at_most_once_per_resolution(app: Flask, client: FlaskClient) -> None:
    resolution = timedelta(minutes=app.config["API_TOKEN_USE_RESOLUTION_MINUTES"])
    with time_machine.travel(utcnow().replace(microsecond=0), tick=False) as clock:
        api = ApiUser(client, UserFactory())
        first = utcnow()

        assert api.get(ME).status_code == 200
        clock.shift(resolution - timedelta(seconds=1))
        assert api.get(ME).status_code == 200
        db.session.expire_all()
        (listed,) = api.get(TOKENS).get_json()
        assert listed["last_used_at"] == first.isoformat()

        clock.shift(timedelta(seconds=1))
        assert api.get(ME).status_code == 200
        db.session.expire_all()
        token = db.session.scalar(select(ApiToken).where(ApiToken.user_id == api.user.id))
        assert token.last_used_at == utcnow()
