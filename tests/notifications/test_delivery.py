"""Sending once: backends, temporary and permanent SMTP failures, and claims held by another worker."""

from __future__ import annotations

import email
import email.policy
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import time_machine
from aiosmtpd.controller import Controller
from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import scoped_session

from marketplace.accounts.models import Role
from marketplace.accounts.service import register
from marketplace.core.celery import TransientError
from marketplace.core.db import unit_of_work
from marketplace.core.time import utcnow
from marketplace.extensions import db
from marketplace.notifications.mailer import backend_name
from marketplace.notifications.messages import Kind
from marketplace.notifications.models import EmailStatus, SentEmail
from marketplace.notifications.service import deliver
from tests.factories import UserFactory
from tests.support.servers import HOST, SmtpSink, free_port


def _row(user_email: str) -> SentEmail:
    return db.session.scalars(
        select(SentEmail)
        .where(SentEmail.kind == Kind.WELCOME.value, SentEmail.recipient == user_email)
        .execution_options(populate_existing=True)
    ).one()


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({}, "file"),
        ({"TESTING": True}, "console"),
        ({"MAIL_SERVER": "smtp.example.test"}, "smtp"),
        ({"MAIL_SERVER": "smtp.example.test", "MAIL_BACKEND": "console"}, "console"),
        ({"MAIL_BACKEND": "file", "TESTING": True}, "file"),
    ],
)
def test_the_backend_follows_mail_server_unless_named(config: dict[str, Any], expected: str) -> None:
    assert backend_name(config) == expected


def test_an_unknown_backend_is_refused() -> None:
    with pytest.raises(ValueError, match="MAIL_BACKEND"):
        backend_name({"MAIL_BACKEND": "pigeon"})


def test_the_file_backend_writes_one_parseable_eml_per_message(
    app: Flask, db_session: scoped_session, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(app.config, "MAIL_BACKEND", "")
    monkeypatch.setitem(app.config, "MAIL_SERVER", "")
    monkeypatch.setitem(app.config, "TESTING", False)
    monkeypatch.setitem(app.config, "MAIL_FILE_DIR", str(tmp_path / "mail"))

    with unit_of_work():
        register(email="eve@example.test", password="x" * 12, name="Eve", role=Role.LEARNER)

    (written,) = (tmp_path / "mail").iterdir()
    assert written.suffix == ".eml"
    message = email.message_from_bytes(written.read_bytes(), policy=email.policy.default)
    assert message["To"] == "Eve <eve@example.test>"
    assert message["Subject"] == "Welcome to Mentor marketplace"


def test_the_console_backend_logs_the_message(
    app: Flask, db_session: scoped_session, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(app.config, "MAIL_BACKEND", "console")
    user = UserFactory(name="Cal")

    with caplog.at_level(logging.INFO, logger="marketplace.notifications.mailer"):
        assert deliver(Kind.WELCOME, user.id) == 1

    assert "Subject: Welcome to Mentor marketplace" in caplog.text
    assert f"To: Cal <{user.email}>" in caplog.text


def test_a_refusing_server_defers_the_message_until_it_accepts_then_it_is_sent_once(
    mailbox: SmtpSink, db_session: scoped_session
) -> None:
    user = UserFactory()
    mailbox.refuse(True)

    with pytest.raises(TransientError, match="451"):
        deliver(Kind.WELCOME, user.id)
    row = _row(user.email)
    assert (row.status, row.attempts) == (EmailStatus.PENDING.value, 1)
    assert "451" in row.last_error

    mailbox.refuse(False)
    assert deliver(Kind.WELCOME, user.id) == 1
    assert deliver(Kind.WELCOME, user.id) == 0
    assert len(mailbox.messages) == 1
    row = _row(user.email)
    assert (row.status, row.attempts, row.last_error) == (EmailStatus.SENT.value, 2, None)


def test_an_unreachable_server_is_a_temporary_failure(
    app: Flask, db_session: scoped_session, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(app.config, "MAIL_BACKEND", "smtp")
    monkeypatch.setitem(app.config, "MAIL_SERVER", HOST)
    monkeypatch.setitem(app.config, "MAIL_PORT", free_port())
    user = UserFactory()

    with pytest.raises(TransientError, match="SMTP unavailable: ConnectionRefusedError"):
        deliver(Kind.WELCOME, user.id)
    assert _row(user.email).status == EmailStatus.PENDING.value


class _RefusingRecipients:
    """An SMTP server that has no mailbox for `unknown` (550) and accepts everyone else."""

    def __init__(self, unknown: str) -> None:
        self.unknown = unknown
        self.accepted: list[list[str]] = []

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:  # noqa: N802
        if address == self.unknown:
            return "550 5.1.1 No such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.accepted.append(list(envelope.rcpt_tos))
        return "250 OK"


@contextmanager
def refusing_server(unknown: str) -> Iterator[tuple[int, _RefusingRecipients]]:
    handler = _RefusingRecipients(unknown)
    port = free_port()
    controller = Controller(handler, hostname=HOST, port=port)
    controller.start()
    try:
        yield port, handler
    finally:
        controller.stop()


def test_a_permanently_refused_recipient_is_recorded_and_never_retried(
    app: Flask, db_session: scoped_session, monkeypatch: pytest.MonkeyPatch
) -> None:
    gone, kept = UserFactory(), UserFactory()
    with refusing_server(gone.email) as (port, server):
        monkeypatch.setitem(app.config, "MAIL_BACKEND", "smtp")
        monkeypatch.setitem(app.config, "MAIL_SERVER", HOST)
        monkeypatch.setitem(app.config, "MAIL_PORT", port)

        assert deliver(Kind.WELCOME, gone.id) == 0
        assert deliver(Kind.WELCOME, gone.id) == 0
        assert deliver(Kind.WELCOME, kept.id) == 1

    assert server.accepted == [[kept.email]]
    row = _row(gone.email)
    assert (row.status, row.attempts) == (EmailStatus.FAILED.value, 1)
    assert "550" in row.last_error


def test_a_live_claim_of_another_worker_is_left_alone_until_its_lease_runs_out(
    app: Flask, mailbox: SmtpSink, db_session: scoped_session
) -> None:
    user = UserFactory()
    with unit_of_work():
        db.session.add(
            SentEmail(
                kind=Kind.WELCOME.value,
                object_id=user.id,
                recipient=user.email,
                version=0,
                status=EmailStatus.SENDING.value,
                attempts=1,
                claimed_at=utcnow(),
            )
        )

    with pytest.raises(TransientError, match="being sent by another worker"):
        deliver(Kind.WELCOME, user.id)
    assert mailbox.messages == []

    lease = timedelta(seconds=app.config["MAIL_CLAIM_LEASE_SECONDS"] + 1)
    with time_machine.travel(utcnow() + lease, tick=False):
        assert deliver(Kind.WELCOME, user.id) == 1
    assert len(mailbox.messages) == 1
    assert (_row(user.email).status, _row(user.email).attempts) == (EmailStatus.SENT.value, 2)
