"""The home page and the account pages without a browser: each form's validation (messages next to the
fields, values kept, never a password), its CSRF token, its throttle, and what it does to the account."""

from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient

from marketplace.accounts import links
from marketplace.accounts.models import User
from marketplace.accounts.passwords import verify_password
from marketplace.core.pages import safe_next
from marketplace.extensions import db
from tests.accounts.sessions import sign_in as api_sign_in
from tests.careers.support import load_paths, make_mentor
from tests.factories import PASSWORD, UserFactory
from tests.pages.forms import CSRF_TOKEN, field_errors, form_token, post_form, sign_in_with_form
from tests.pages.html_checks import assert_good_page

BASE = "http://localhost"
NEW_PASSWORD = "a-brand-new-password"


def _user(email: str) -> User:
    user = db.session.query(User).filter_by(email=email).one_or_none()
    assert user is not None
    return user


# --- home and the frame ------------------------------------------------------------------------------


def test_home_page_searches_lists_the_paths_and_explains_booking(client: FlaskClient) -> None:
    load_paths()
    db.session.commit()

    response = client.get("/")

    html = response.get_data(as_text=True)
    structured = assert_good_page(html, f"{BASE}/")
    assert structured["@type"] == "WebSite"
    assert 'action="/mentors"' in html
    assert 'name="q"' in html
    assert 'href="/careers/backend-developer"' in html
    assert "How booking works" in html
    assert 'href="/signup"' in html
    assert 'href="/login"' in html


@pytest.mark.parametrize(
    "path", ["/signup", "/signup?role=mentor", "/login", "/forgot-password", "/verify-email?token=t"]
)
def test_every_account_form_is_a_good_page(client: FlaskClient, path: str) -> None:
    html = client.get(path).get_data(as_text=True)

    assert_good_page(html, f"{BASE}{path.split('?')[0]}")
    assert CSRF_TOKEN.search(html)


def test_a_signed_in_visitor_sees_their_name_while_the_cached_page_stays_anonymous(
    app: Flask, client: FlaskClient
) -> None:
    load_paths()
    user = UserFactory(name="Grace Hopper")
    db.session.commit()
    sign_in_with_form(client, user.email)

    mine = client.get("/careers")
    anonymous = app.test_client().get("/careers")
    again = app.test_client().get("/careers")

    assert "Grace Hopper" in mine.get_data(as_text=True)
    assert 'action="/logout"' in mine.get_data(as_text=True)
    assert mine.headers["Cache-Control"] == "private, no-store"
    for page in (anonymous, again):
        assert "Grace Hopper" not in page.get_data(as_text=True)
        assert 'href="/login?next=/careers"' in page.get_data(as_text=True)
        assert page.headers["Cache-Control"] == "public, no-cache"


# --- sign up -----------------------------------------------------------------------------------------


def test_sign_up_refuses_bad_fields_next_to_them_and_keeps_the_values(client: FlaskClient) -> None:
    response = post_form(
        client,
        "/signup",
        {
            "role": "mentor",
            "name": "  ",
            "email": "not-an-email",
            "password": "short",
            "timezone": "Mars/Base",
        },
    )

    assert response.status_code == 422
    errors = field_errors(response)
    assert set(errors) == {"name", "email", "password", "timezone"}
    assert "valid email" in errors["email"]
    html = response.get_data(as_text=True)
    assert 'value="not-an-email"' in html
    assert 'value="Mars/Base"' in html
    assert 'id="role-mentor" name="role" value="mentor" checked' in html
    assert "short" not in html
    assert 'href="#email"' in html  # the summary links to the field
    assert 'aria-invalid="true"' in html
    assert db.session.query(User).count() == 0


def test_sign_up_creates_the_account_signs_in_and_asks_for_verification(client: FlaskClient) -> None:
    response = post_form(
        client,
        "/signup",
        {
            "role": "learner",
            "name": "Ada Lovelace",
            "email": "Ada@Example.test",
            "password": NEW_PASSWORD,
            "timezone": "Europe/London",
            "next": "/careers",
        },
    )

    assert response.status_code == 303
    assert response.headers["Location"] == "/careers"
    user = _user("ada@example.test")
    assert user.roles == ["learner"]
    assert user.timezone == "Europe/London"
    account = client.get("/account").get_data(as_text=True)
    assert "Ada Lovelace" in account
    assert "Please verify your email address" in account


def test_sign_up_with_a_taken_address_says_so_next_to_the_email(client: FlaskClient) -> None:
    user = UserFactory()
    db.session.commit()

    response = post_form(
        client,
        "/signup",
        {
            "role": "learner",
            "name": "Again",
            "email": user.email,
            "password": NEW_PASSWORD,
            "timezone": "UTC",
        },
    )

    assert response.status_code == 409
    assert field_errors(response) == {"email": "Error: Already registered."}
    assert "Again" in response.get_data(as_text=True)


# --- CSRF --------------------------------------------------------------------------------------------


def test_a_form_without_its_token_changes_nothing_and_comes_back_with_its_values(client: FlaskClient) -> None:
    client.get("/signup")  # a session exists, but the post does not carry its token
    response = client.post(
        "/signup",
        data={"role": "learner", "name": "Forged", "email": "forged@example.test", "password": NEW_PASSWORD},
    )

    assert response.status_code == 403
    html = response.get_data(as_text=True)
    assert "This form has expired" in html
    assert 'value="forged@example.test"' in html
    assert NEW_PASSWORD not in html
    assert db.session.query(User).filter_by(email="forged@example.test").count() == 0


def test_a_sign_in_with_another_sessions_token_is_refused(app: Flask, client: FlaskClient) -> None:
    user = UserFactory()
    db.session.commit()
    foreign_token = form_token(app.test_client(), "/login")
    client.get("/login")

    response = client.post(
        "/login", data={"csrf_token": foreign_token, "email": user.email, "password": PASSWORD}
    )

    assert response.status_code == 403
    assert client.get("/account").status_code == 303


def test_signed_in_forms_need_the_token_too(client: FlaskClient) -> None:
    user = UserFactory()
    db.session.commit()
    sign_in_with_form(client, user.email)

    change = client.post("/account/password", data={"current_password": PASSWORD, "password": NEW_PASSWORD})
    sign_out = client.post("/logout")

    assert change.status_code == sign_out.status_code == 403
    assert verify_password(user.password_hash, PASSWORD)
    assert client.get("/account").status_code == 200


# --- sign in and out ---------------------------------------------------------------------------------


def test_sign_in_with_a_wrong_password_keeps_the_email_and_says_what_failed(client: FlaskClient) -> None:
    user = UserFactory()
    db.session.commit()

    response = post_form(client, "/login", {"email": user.email, "password": "wrong-password"})
    blank = post_form(client, "/login", {"email": "", "password": ""})

    assert response.status_code == 401
    html = response.get_data(as_text=True)
    assert "Invalid email or password." in html
    assert f'value="{user.email}"' in html
    assert "wrong-password" not in html
    assert blank.status_code == 422
    assert field_errors(blank) == {
        "email": "Error: Please fill in this field.",
        "password": "Error: Please fill in this field.",
    }


@pytest.mark.parametrize(
    ("next_", "lands_on"),
    [
        ("/mentors/4?tz=Europe/Berlin", "/mentors/4?tz=Europe/Berlin"),
        ("https://evil.example/", "/"),
        ("//evil.example/", "/"),
        ("/\\evil.example", "/"),
        ("javascript:alert(1)", "/"),
    ],
)
def test_sign_in_goes_back_only_to_a_page_of_this_site(
    client: FlaskClient, next_: str, lands_on: str
) -> None:
    user = UserFactory()
    db.session.commit()

    response = post_form(client, "/login", {"email": user.email, "password": PASSWORD, "next": next_})

    assert response.status_code == 303
    assert response.headers["Location"] == lands_on


def test_a_signed_in_page_sends_a_visitor_to_sign_in_and_back(client: FlaskClient) -> None:
    user = UserFactory()
    db.session.commit()

    response = client.get("/account/password")
    assert response.status_code == 303
    assert response.headers["Location"] == "/login?next=/account/password"
    token = form_token(client, "/login?next=/account/password")
    back = client.post(
        "/login",
        data={"csrf_token": token, "email": user.email, "password": PASSWORD, "next": "/account/password"},
    )
    assert back.headers["Location"] == "/account/password"


def test_failed_page_sign_ins_count_with_the_api_and_are_throttled(client: FlaskClient) -> None:
    """The testing limit is 5 a minute per address, shared by the page and the API."""
    user = UserFactory()
    db.session.commit()
    for _ in range(4):
        assert (
            post_form(client, "/login", {"email": user.email, "password": "wrong-password"}).status_code
            == 401
        )
    assert (
        client.post("/api/v1/auth/login", json={"email": user.email, "password": "nope"}).status_code == 401
    )

    response = post_form(client, "/login", {"email": user.email, "password": PASSWORD})

    assert response.status_code == 429
    html = response.get_data(as_text=True)
    assert "Too many attempts" in html
    assert f'value="{user.email}"' in html


def test_sign_out_ends_the_session_on_the_server(app: Flask, client: FlaskClient) -> None:
    user = UserFactory()
    db.session.commit()
    sign_in_with_form(client, user.email)
    copy = app.test_client()
    cookie = client.get_cookie("session")
    assert cookie is not None
    copy.set_cookie("session", cookie.value)

    response = post_form(client, "/logout", {}, token_from="/account")

    assert response.status_code == 303
    assert response.headers["Location"] == "/"
    assert "You are signed out." in client.get("/").get_data(as_text=True)
    assert copy.get("/account").status_code == 303


# --- passwords and links -----------------------------------------------------------------------------


def test_change_password_checks_the_current_one_and_signs_out_other_sessions(
    app: Flask, client: FlaskClient
) -> None:
    user = UserFactory()
    db.session.commit()
    other = app.test_client()
    api_sign_in(other, user.email, PASSWORD)
    sign_in_with_form(client, user.email)

    wrong = post_form(client, "/account/password", {"current_password": "not-it", "password": NEW_PASSWORD})
    short = post_form(client, "/account/password", {"current_password": PASSWORD, "password": "short"})
    done = post_form(client, "/account/password", {"current_password": PASSWORD, "password": NEW_PASSWORD})

    assert wrong.status_code == 403
    assert field_errors(wrong) == {"current_password": "Error: Wrong password."}
    assert short.status_code == 422
    assert set(field_errors(short)) == {"password"}
    assert done.status_code == 303
    assert verify_password(_user(user.email).password_hash, NEW_PASSWORD)
    assert client.get("/account").status_code == 200
    assert other.get("/api/v1/auth/session").status_code == 401


def test_forgot_password_answers_the_same_for_any_address(client: FlaskClient) -> None:
    user = UserFactory()
    db.session.commit()

    known = post_form(client, "/forgot-password", {"email": user.email})
    unknown = post_form(client, "/forgot-password", {"email": "nobody@example.test"})
    bad = post_form(client, "/forgot-password", {"email": "nope"})

    assert known.status_code == unknown.status_code == 200
    assert "Check your inbox" in known.get_data(as_text=True)
    assert bad.status_code == 422
    assert set(field_errors(bad)) == {"email"}


def test_a_reset_link_sets_a_new_password_once(client: FlaskClient) -> None:
    user = UserFactory()
    db.session.commit()
    token = links.password_reset_token(user)
    page = f"/reset-password?token={token}"

    form = client.get(page)
    short = post_form(client, "/reset-password", {"token": token, "password": "short"}, token_from=page)
    done = post_form(client, "/reset-password", {"token": token, "password": NEW_PASSWORD}, token_from=page)
    again = client.get(page)

    assert form.status_code == 200
    assert f'value="{token}"' in form.get_data(as_text=True)
    assert short.status_code == 422
    assert f'value="{token}"' in short.get_data(as_text=True)
    assert done.status_code == 303
    assert done.headers["Location"] == "/login"
    assert again.status_code == 400
    assert "invalid, expired or already used" in again.get_data(as_text=True)
    sign_in_with_form(client, user.email, NEW_PASSWORD)


def test_the_verification_link_verifies_on_a_button_press(client: FlaskClient) -> None:
    user = UserFactory(email_verified=False)
    db.session.commit()
    token = links.verification_token(user)
    page = f"/verify-email?token={token}"

    assert client.get(page).status_code == 200
    assert _user(user.email).email_verified is False  # opening the link alone changes nothing
    done = post_form(client, "/verify-email", {"token": token}, token_from=page)
    again = post_form(client, "/verify-email", {"token": token}, token_from=page)

    assert done.status_code == 303
    assert _user(user.email).email_verified is True
    assert again.status_code == 400


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/careers", "/careers"),
        ("/mentors?q=python&page=2", "/mentors?q=python&page=2"),
        (None, "/"),
        ("", "/"),
        ("careers", "/"),
        ("//evil.example", "/"),
        ("/\\evil.example", "/"),
        ("https://evil.example/x", "/"),
        ("/a\x00b", "/"),
        ("/" + "x" * 3000, "/"),
    ],
)
def test_safe_next_keeps_only_paths_of_this_site(target: str | None, expected: str) -> None:
    assert safe_next(target) == expected


def test_career_pages_say_what_is_known_without_editing_notes(client: FlaskClient) -> None:
    load_paths()
    slugs = [path["slug"] for path in client.get("/api/v1/career-paths").get_json()]

    for slug in slugs:
        html = client.get(f"/careers/{slug}").get_data(as_text=True)
        for note in ("not named in the source", "(provider", "assum", "source page", "editorial"):
            assert note not in html.lower(), (slug, note)
    assert len(slugs) >= 12


def test_the_listing_filters_by_currency_with_the_price_in_its_whole_units(client: FlaskClient) -> None:
    yen = make_mentor("Yui Yen", price_cents=5000, currency="JPY")
    dollars = make_mentor("Dan Dollar", price_cents=4000, currency="USD")
    db.session.commit()

    html = client.get("/mentors?currency=JPY&max_price=6000").get_data(as_text=True)
    usd = client.get("/mentors?currency=usd&max_price=50").get_data(as_text=True)

    assert yen.name in html
    assert dollars.name not in html
    assert '<option value="JPY" selected>JPY</option>' in html
    assert dollars.name in usd
    assert yen.name not in usd


def test_a_verification_refused_for_its_form_token_keeps_the_link(client: FlaskClient) -> None:
    user = UserFactory(email_verified=False)
    db.session.commit()
    token = links.verification_token(user)
    client.get(f"/verify-email?token={token}")

    response = client.post("/verify-email", data={"token": token, "csrf_token": "stale"})

    assert response.status_code == 403
    html = response.get_data(as_text=True)
    assert "This form has expired" in html
    assert f'name="token" value="{token}"' in html
    assert _user(user.email).email_verified is False
