"""Welcome and vetting messages: requested by the accounts and mentors signals, sent after the commit."""

from __future__ import annotations

from flask.testing import FlaskClient
from sqlalchemy.orm import scoped_session

from marketplace.accounts.models import Role
from marketplace.core.db import unit_of_work
from marketplace.mentors import service as mentors
from marketplace.mentors.vetting import VettingAction, VettingStatus
from tests.factories import MentorProfileFactory, UserFactory
from tests.notifications.conftest import bodies, with_subject
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

    (welcome,) = with_subject(mailbox.wait_for(2), "Welcome")
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
