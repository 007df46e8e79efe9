"""Mail caught by a real SMTP server on loopback, and the bookable world of tests/bookings."""

from __future__ import annotations

from collections.abc import Iterator
from email.message import EmailMessage
from typing import Any

import pytest
from flask import Flask, current_app

from tests.bookings.conftest import clock, learner, mentor, mentor_api, other_learner  # noqa: F401
from tests.support.servers import ReceivedMail, SmtpSink, smtp_server


@pytest.fixture(scope="session")
def smtp_sink() -> Iterator[SmtpSink]:
    with smtp_server() as sink:
        yield sink


@pytest.fixture
def mailbox(app: Flask, smtp_sink: SmtpSink, monkeypatch: pytest.MonkeyPatch) -> SmtpSink:
    """The app sends over SMTP to the sink for this test only; the settings are restored afterwards."""
    smtp_sink.clear()
    smtp_sink.refuse(False)
    monkeypatch.setitem(app.config, "MAIL_BACKEND", "smtp")
    monkeypatch.setitem(app.config, "MAIL_SERVER", smtp_sink.host)
    monkeypatch.setitem(app.config, "MAIL_PORT", smtp_sink.port)
    return smtp_sink


def with_subject(mails: list[ReceivedMail], prefix: str) -> list[ReceivedMail]:
    return [m for m in mails if str(m.message["Subject"]).startswith(prefix)]


def only_to(mails: list[ReceivedMail], address: str) -> ReceivedMail:
    (mail,) = [m for m in mails if m.rcpt_tos == [address]]
    return mail


def bodies(message: EmailMessage) -> tuple[str, str]:
    """The plain text and the HTML alternative."""
    text = message.get_body(preferencelist=("plain",))
    html = message.get_body(preferencelist=("html",))
    assert text is not None
    assert html is not None
    return text.get_content(), html.get_content()


def invite_of(message: EmailMessage) -> tuple[EmailMessage, bytes]:
    (part,) = [p for p in message.iter_attachments() if p.get_content_type() == "text/calendar"]
    assert isinstance(part, EmailMessage)
    return part, part.get_payload(decode=True)


def run_task(name: str, **kwargs: Any) -> Any:
    """Run a task of this app's Celery in-process: another test's app may be the process default."""
    return current_app.extensions["celery"].tasks[name].apply(kwargs=kwargs).get()
