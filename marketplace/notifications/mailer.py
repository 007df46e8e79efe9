"""Handing a finished message to the configured backend: SMTP, the log, or .eml files.

`MAIL_BACKEND` picks one; left empty it is `smtp` when `MAIL_SERVER` is set, else `file` (the embedded
default of `make run`, which has no mail server) and `console` in testing apps, so test runs leave no files
behind (as Flask-Mail's MAIL_SUPPRESS_SEND does). Settings are read from `current_app.config` at send time.

SMTP failures are sorted by what a retry can change: a refused connection, a timeout or a 4xx answer raises
`TransientError` (Celery retries with backoff); a 5xx answer raises `PermanentMailError` (recorded, never
retried).

Kept rather than Flask-Mailman (1.1 read): its STARTTLS does not verify the server's certificate unless a
client certificate is configured, its file backend appends a connection's messages to one `.log` file
rather than one `.eml` each written atomically, its console backend prints to stdout past the log's
masking, and its Django-style message class would replace `email.message.EmailMessage` in rendering; the
send-once claim and the transient/permanent sorting would stay ours either way.
"""

from __future__ import annotations

import logging
import os
import smtplib
import ssl
import uuid
from collections.abc import Mapping
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from flask import current_app

from marketplace.core.celery import TransientError
from marketplace.core.time import utcnow

log = logging.getLogger(__name__)

BACKENDS = ("smtp", "console", "file")


class PermanentMailError(Exception):
    """The server refused the message for good (5xx): retrying would only be refused again."""


def backend_name(config: Mapping[str, Any]) -> str:
    name = config.get("MAIL_BACKEND") or ""
    if not name and config.get("MAIL_SERVER"):
        name = "smtp"
    elif not name:
        name = "console" if config.get("TESTING") else "file"
    if name not in BACKENDS:
        raise ValueError(f"MAIL_BACKEND must be one of {', '.join(BACKENDS)}, not {name!r}")
    return name


def send(message: EmailMessage) -> None:
    config = current_app.config
    name = backend_name(config)
    if name == "smtp":
        _send_smtp(message, config)
    elif name == "file":
        _write_file(message, Path(config["MAIL_FILE_DIR"]))
    else:
        log.info("email (console backend):\n%s", message.as_string())


def _send_smtp(message: EmailMessage, config: Mapping[str, Any]) -> None:
    timeout = float(config["MAIL_TIMEOUT_SECONDS"])
    try:
        with smtplib.SMTP(config["MAIL_SERVER"], int(config["MAIL_PORT"]), timeout=timeout) as smtp:
            if config.get("MAIL_USE_TLS"):
                smtp.starttls(context=ssl.create_default_context())
            if config.get("MAIL_USERNAME"):
                smtp.login(config["MAIL_USERNAME"], config["MAIL_PASSWORD"])
            smtp.send_message(message)
    except smtplib.SMTPRecipientsRefused as exc:
        codes = [code for code, _reason in exc.recipients.values()]
        if all(500 <= code < 600 for code in codes):
            raise PermanentMailError(f"recipient refused: {exc.recipients}") from exc
        raise TransientError(f"recipient deferred: {exc.recipients}") from exc
    except smtplib.SMTPResponseException as exc:
        detail = f"SMTP {exc.smtp_code}: {exc.smtp_error!r}"
        if 500 <= exc.smtp_code < 600:
            raise PermanentMailError(detail) from exc
        raise TransientError(detail) from exc
    except (smtplib.SMTPException, OSError) as exc:
        raise TransientError(f"SMTP unavailable: {exc.__class__.__name__}: {exc}") from exc


def _write_file(message: EmailMessage, directory: Path) -> None:
    """One .eml file per message, written under a temporary name and renamed, so readers never see half."""
    directory.mkdir(parents=True, exist_ok=True)
    name = f"{utcnow():%Y%m%dT%H%M%S%f}-{uuid.uuid4().hex[:8]}.eml"
    partial = directory / f".{name}.tmp"
    partial.write_bytes(message.as_bytes())
    os.replace(partial, directory / name)
