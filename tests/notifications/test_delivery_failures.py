"""Mail that cannot go out is never lost silently: transient failures (database, SMTP) are retried, what fails
for good is recorded as `failed`, listed for admins and sent again on their request; a name with a line
break makes a one-line header, not a message that cannot be rendered."""

from __future__ import annotations

from collections.abc import Callable
from email.message import EmailMessage
from typing import Any

import pytest
from celery.exceptions import Retry
from flask import current_app
from flask.testing import FlaskClient
from sqlalchemy import select, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import scoped_session

from marketplace.accounts.models import Role, User
from marketplace.core.celery import TransientError
from marketplace.extensions import db
from marketplace.notifications import service
from marketplace.notifications.messages import Kind
from marketplace.notifications.models import EmailStatus, SentEmail
from tests.factories import UserFactory
from tests.fixtures.mail import run_task
from tests.helpers import ApiUser, assert_error_shape
from tests.support.servers import SmtpSink


def _rows(user: User) -> list[tuple[str, str | None]]:
    rows = db.session.scalars(
        select(SentEmail)
        .where(SentEmail.kind == Kind.WELCOME.value, SentEmail.recipient == user.email)
        .execution_options(populate_existing=True)
    )
    return [(row.status, row.last_error) for row in rows]


def test_a_name_stored_with_a_line_break_makes_one_line_headers(
    mailbox: SmtpSink, db_session: scoped_session
) -> None:
    user = UserFactory(name="Eve")
    # Stored before input was checked for control characters: the API refuses such a name today.
    db.session.execute(update(User).where(User.id == user.id).values(name="Eve\r\nBcc: victim@example.test"))

    assert service.deliver(Kind.WELCOME, user.id) == 1

    (mail,) = mailbox.messages
    assert mail.rcpt_tos == [user.email]
    assert mail.message["To"].addresses[0].display_name == "Eve Bcc: victim@example.test"
    assert mail.message["Bcc"] is None
    assert _rows(user) == [(EmailStatus.SENT.value, None)]


def test_a_sent_message_is_recorded_sent_through_a_database_restart(
    mailbox: SmtpSink, db_session: scoped_session, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Were the send not recorded, the claim would lapse and the message go out a second time."""
    user = UserFactory()
    failures_left = 0
    real_unit, real_send = service.run_in_unit, service.mailer.send

    def unit_during_a_restart(operation: Callable[..., Any], *args: Any) -> Any:
        nonlocal failures_left
        if failures_left:
            failures_left -= 1
            raise OperationalError(
                "UPDATE", {}, Exception("terminating connection"), connection_invalidated=True
            )
        return real_unit(operation, *args)

    def send_then_restart(message: EmailMessage) -> None:
        nonlocal failures_left
        real_send(message)
        failures_left = 2  # the database goes away just after the message went out

    monkeypatch.setattr(service, "run_in_unit", unit_during_a_restart)
    monkeypatch.setattr(service.mailer, "send", send_then_restart)

    assert service.deliver(Kind.WELCOME, user.id) == 1
    assert service.deliver(Kind.WELCOME, user.id) == 0
    assert len(mailbox.messages) == 1
    assert _rows(user) == [(EmailStatus.SENT.value, None)]


def test_the_api_refuses_a_name_with_a_line_break(client: FlaskClient, db_session: scoped_session) -> None:
    response = client.post(
        "/api/v1/auth/register",
        json={"email": "crlf@example.test", "password": "x" * 12, "name": "Eve\r\nBcc: x@example.test"},
    )
    assert_error_shape(response, 422)


def test_a_message_that_cannot_be_rendered_is_recorded_failed_not_retried(
    mailbox: SmtpSink, db_session: scoped_session, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = UserFactory()

    def broken(*_: Any) -> Any:
        raise ValueError("a template bug")

    monkeypatch.setattr(service, "render", broken)

    assert service.deliver(Kind.WELCOME, user.id) == 0
    assert service.deliver(Kind.WELCOME, user.id) == 0  # a redelivery records it again, and raises nothing
    ((status, error),) = _rows(user)
    assert status == EmailStatus.FAILED.value
    assert "rendering failed" in error
    assert "a template bug" in error
    assert mailbox.messages == []


def test_the_send_task_retries_a_database_failure(
    db_session: scoped_session, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = UserFactory()

    def deliver_during_a_restart(*_: Any) -> int:
        raise OperationalError("SELECT 1", {}, Exception("server closed the connection unexpectedly"))

    monkeypatch.setattr(service, "deliver", deliver_during_a_restart)

    with pytest.raises(Retry, match="server closed the connection"):  # a retry with backoff, not a failure
        run_task(service.SEND_EMAIL_TASK, kind=Kind.WELCOME.value, object_id=user.id)
    assert _rows(user) == []  # nothing given up


def test_mail_still_refused_when_the_retries_run_out_is_recorded_failed(
    mailbox: SmtpSink, db_session: scoped_session, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = UserFactory()
    mailbox.refuse(True)
    task = current_app.extensions["celery"].tasks[service.SEND_EMAIL_TASK]
    monkeypatch.setattr(task, "max_retries", 0)  # this run is the last one allowed

    with pytest.raises(TransientError, match="451"):
        run_task(service.SEND_EMAIL_TASK, kind=Kind.WELCOME.value, object_id=user.id)

    ((status, error),) = _rows(user)
    assert status == EmailStatus.FAILED.value
    assert error.startswith("out of retries")
    assert "451" in error


def test_admins_list_failed_mails_and_send_them_again(
    client: FlaskClient, mailbox: SmtpSink, db_session: scoped_session
) -> None:
    admin = ApiUser(client, UserFactory(roles=(Role.ADMIN,)))
    user = UserFactory()
    db.session.add(
        SentEmail(
            kind=Kind.WELCOME.value,
            object_id=user.id,
            recipient=user.email,
            status=EmailStatus.FAILED.value,
            last_error="SMTP 550",
        )
    )
    db.session.commit()

    listed = admin.get("/api/v1/admin/emails?state=failed")
    assert listed.status_code == 200
    ((failed),) = listed.json
    assert (failed["recipient"], failed["state"], failed["last_error"]) == (user.email, "failed", "SMTP 550")

    retried = admin.post(f"/api/v1/admin/emails/{failed['id']}/retry")
    assert retried.status_code == 200, retried.json
    assert [m.rcpt_tos for m in mailbox.messages] == [[user.email]]  # sent after the commit (eager here)
    assert _rows(user) == [(EmailStatus.SENT.value, None)]
    assert admin.get("/api/v1/admin/emails?state=failed").json == []

    assert_error_shape(admin.post(f"/api/v1/admin/emails/{failed['id']}/retry"), 409)
    assert_error_shape(admin.post(f"/api/v1/admin/emails/{failed['id'] + 1000}/retry"), 404)
    learner = ApiUser(client, UserFactory(roles=(Role.LEARNER,)))
    assert_error_shape(learner.get("/api/v1/admin/emails"), 403)


def test_a_database_error_while_rendering_is_retried_not_recorded(
    db_session: scoped_session, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = UserFactory()

    def lazy_load_fails(*_: Any) -> Any:
        raise OperationalError("SELECT", {}, Exception("the database restarted"))

    monkeypatch.setattr(service, "render", lazy_load_fails)

    with pytest.raises(OperationalError):
        service.deliver(Kind.WELCOME, user.id)
    assert _rows(user) == []


def test_a_reminder_still_unsent_when_the_retries_run_out_is_recorded_failed(
    db_session: scoped_session, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = UserFactory()
    db.session.add(SentEmail(kind=Kind.REMINDER.value, object_id=7, recipient=user.email, status="pending"))
    db.session.commit()

    def smtp_away(_reminder_id: int) -> bool:
        raise TransientError("SMTP unavailable")

    monkeypatch.setattr(service, "send_reminder", smtp_away)
    task = current_app.extensions["celery"].tasks["notifications.send_reminder"]
    monkeypatch.setattr(task, "max_retries", 0)

    with pytest.raises(TransientError):
        run_task("notifications.send_reminder", reminder_id=7)
    status, error = db.session.execute(
        select(SentEmail.status, SentEmail.last_error)
        .where(SentEmail.kind == Kind.REMINDER.value)
        .execution_options(populate_existing=True)
    ).one()
    assert (status, error) == ("failed", "out of retries: SMTP unavailable")
