"""Welcome and vetting messages: requested by the accounts and mentors signals, sent after the commit."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

from flask import current_app
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import scoped_session

from marketplace.accounts.models import Role, User
from marketplace.core.db import unit_of_work
from marketplace.extensions import db
from marketplace.mentors import service as mentors
from marketplace.mentors.vetting import VettingAction, VettingStatus
from marketplace.notifications.messages import Kind
from marketplace.notifications.service import deliver
from tests.factories import MentorProfileFactory, UserFactory
from tests.fixtures.mail import bodies
from tests.support.servers import SmtpSink


def test_registering_sends_a_welcome(mailbox: SmtpSink, client: FlaskClient) -> None:
    response = client.post(
        "/api/v1/auth/register",
        json={
            "email": "Nia@Example.test",
            "password": "correct-horse-battery",
            "name": "Nia",
            "role": "learner",
            "timezone": "Africa/Lagos",
        },
    )
    assert response.status_code == 201, response.get_data(as_text=True)

    (welcome,) = mailbox.wait_for(1)
    assert welcome.rcpt_tos == ["nia@example.test"]
    assert welcome.message["To"] == "Nia <nia@example.test>"
    assert welcome.message["Subject"] == "Welcome to Mentor marketplace"
    text, html = bodies(welcome.message)
    assert "Hello Nia," in text
    assert "Africa/Lagos" in html


def test_a_failed_registration_sends_nothing(mailbox: SmtpSink, client: FlaskClient) -> None:
    response = client.post("/api/v1/auth/register", json={"email": "x@example.test", "password": "short"})

    assert response.status_code == 422
    assert mailbox.messages == []


def test_each_vetting_step_is_mailed_to_the_mentor_with_the_admins_note(
    mailbox: SmtpSink, db_session: scoped_session
) -> None:
    profile = MentorProfileFactory(vetting_status=VettingStatus.DRAFT.value)
    admin = UserFactory(roles=(Role.ADMIN,))
    steps = [
        (VettingAction.REQUEST_CHANGES, "Please add <b>your</b> GitHub profile."),
        (VettingAction.APPROVE, None),
        (VettingAction.SUSPEND, "Two no-shows this month."),
    ]

    with unit_of_work():
        mentors.submit_profile(profile.user)
    with unit_of_work():
        mentors.decide(admin, profile.id, *steps[0])
    with unit_of_work():
        mentors.submit_profile(profile.user)
    for action, note in steps[1:]:
        with unit_of_work():
            mentors.decide(admin, profile.id, action, note)

    mails = mailbox.wait_for(5)
    assert {tuple(m.rcpt_tos) for m in mails} == {(profile.user.email,)}
    assert [m.message["Subject"] for m in mails] == [
        "We received your mentor application",
        "Changes requested to your mentor profile",
        "We received your mentor application",
        "Your mentor profile is live",
        "Your mentor profile is suspended",
    ]
    changes_text, changes_html = bodies(mails[1].message)
    assert "Please add <b>your</b> GitHub profile." in changes_text
    assert "Please add &lt;b&gt;your&lt;/b&gt; GitHub profile." in changes_html
    assert "Two no-shows this month." in bodies(mails[4].message)[0]


def test_a_rejection_is_mailed(mailbox: SmtpSink, db_session: scoped_session) -> None:
    profile = MentorProfileFactory(vetting_status=VettingStatus.PENDING_REVIEW.value)

    with unit_of_work():
        mentors.decide(
            UserFactory(roles=(Role.ADMIN,)), profile.id, VettingAction.REJECT, "Not enough experience."
        )

    (mail,) = mailbox.wait_for(1)
    assert mail.message["Subject"] == "Your mentor application was not accepted"
    assert "Not enough experience." in bodies(mail.message)[0]


def _link_in(text: str, path: str) -> str:
    """The token of the `path` link in a mail's plain text."""
    match = re.search(rf"(\S+{re.escape(path)}\?\S+)", text)
    assert match is not None, text
    url = urlsplit(match.group(1))
    assert f"{url.scheme}://{url.netloc}" == current_app.config["PUBLIC_BASE_URL"]
    (token,) = parse_qs(url.query)["token"]
    return token


def test_registering_mails_a_link_that_verifies_the_address(mailbox: SmtpSink, client: FlaskClient) -> None:
    client.post(
        "/api/v1/auth/register",
        json={
            "email": "ade@example.test",
            "password": "correct-horse-battery",
            "name": "Ade",
            "role": "learner",
        },
    )

    (mail,) = mailbox.wait_for(1)
    assert mail.message["Subject"] == "Welcome to Mentor marketplace"
    text, html = bodies(mail.message)
    token = _link_in(text, "/verify-email")
    assert token in html.replace("&amp;", "&")

    assert client.post("/api/v1/auth/verify-email", json={"token": token}).status_code == 204
    assert db.session.scalar(select(User.email_verified).where(User.email == "ade@example.test")) is True


def test_a_reset_request_mails_a_working_link_to_known_addresses_only(
    mailbox: SmtpSink, client: FlaskClient
) -> None:
    user = UserFactory(email="kim@example.test")
    db.session.commit()

    assert (
        client.post("/api/v1/auth/password-reset", json={"email": "nobody@example.test"}).status_code == 202
    )
    assert client.post("/api/v1/auth/password-reset", json={"email": "KIM@example.test"}).status_code == 202

    (mail,) = mailbox.wait_for(1)
    assert mail.rcpt_tos == ["kim@example.test"]
    assert mail.message["Subject"] == "Reset your Mentor marketplace password"
    token = _link_in(bodies(mail.message)[0], "/reset-password")
    confirm = {"token": token, "password": "a-brand-new-password"}
    assert client.post("/api/v1/auth/password-reset/confirm", json=confirm).status_code == 204
    assert client.post("/api/v1/auth/password-reset/confirm", json=confirm).status_code == 400
    login = client.post("/api/v1/auth/login", json={"email": user.email, "password": "a-brand-new-password"})
    assert login.status_code == 200


def test_the_welcome_of_an_already_verified_address_has_no_link(
    mailbox: SmtpSink, db_session: scoped_session
) -> None:
    user = UserFactory(email_verified=True)

    assert deliver(Kind.WELCOME, user.id) == 1

    (mail,) = mailbox.wait_for(1)
    text, html = bodies(mail.message)
    assert "/verify-email" not in text
    assert "/verify-email" not in html
