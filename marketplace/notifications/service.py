"""Sending each message once, and the signal receivers that ask for messages.

Receivers run inside the transaction of the change (they never commit): they only write outbox rows (and
reminder rows), so a message is requested if and only if the change commits.

`deliver()` is what a send task does. For each recipient it claims a `sent_emails` row (insert, or take over
a `pending` one, or a `sending` one whose lease ran out) and commits the claim, then hands the message to
the mailer, then commits `sent`. A redelivered or retried task finds `sent` and sends nothing; a concurrent
one finds a live claim and retries later. The one window for a duplicate is a crash after the SMTP server
accepted the message and before `sent` was committed: after the lease another attempt sends it again, with
the same Message-ID.

Nothing fails silently: a message that cannot be rendered, that the server refuses for good (5xx) or that is
still undelivered when the task runs out of retries is recorded as `failed` with its error, listed for
admins (`failed_emails`) and sent again on their request (`retry_email`). Header text is made one line at
rendering, so a name stored with a line break (before input was checked) cannot break a message.
"""

from __future__ import annotations

import enum
import hashlib
import logging
import unicodedata
from datetime import timedelta
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, parseaddr
from typing import Any, cast

from flask import current_app
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from sqlalchemy import CursorResult, Select, and_, func, or_, select, update
from sqlalchemy.exc import SQLAlchemyError
from tenacity import retry, retry_if_exception, stop_after_delay, wait_exponential

from marketplace.bookings.models import Booking
from marketplace.core import outbox
from marketplace.core.celery import TransientError
from marketplace.core.db import insert_unless_exists, is_unavailable, run_in_unit
from marketplace.core.errors import Conflict, NotFound
from marketplace.core.time import utcnow
from marketplace.extensions import db
from marketplace.mentors.models import VettingEvent
from marketplace.notifications import mailer, reminders
from marketplace.notifications.mailer import PermanentMailError
from marketplace.notifications.messages import REVISION_KINDS, VETTING_KINDS, Kind, Letter, compose
from marketplace.notifications.models import EmailStatus, SentEmail

log = logging.getLogger(__name__)

SEND_EMAIL_TASK = "notifications.send_email"

templates = Environment(
    loader=PackageLoader("marketplace.notifications", "templates"),
    autoescape=select_autoescape(["html"]),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


# --- rendering ---------------------------------------------------------------------------------------


def message_id(kind: Kind, object_id: int, version: int, recipient: str, domain: str) -> str:
    """Derived from the idempotency key, so a duplicate from the crash window is the same message."""
    digest = hashlib.sha256(recipient.encode()).hexdigest()[:16]
    return f"<{kind.value}.{object_id}.{version}.{digest}@{domain}>"


def header_text(text: str) -> str:
    """One line for a header: control characters (a CR/LF in a name stored before input was checked)
    become spaces, and runs of white space one space."""
    return " ".join("".join(" " if unicodedata.category(c) == "Cc" else c for c in text).split())


def render(letter: Letter, kind: Kind, object_id: int, version: int) -> EmailMessage:
    sender = current_app.config["MAIL_DEFAULT_SENDER"]
    domain = parseaddr(sender)[1].rpartition("@")[2] or "localhost"
    context = {**letter.context, "recipient": letter.recipient}
    message = EmailMessage()
    message["Subject"] = header_text(letter.subject)
    message["From"] = sender
    message["To"] = formataddr((header_text(letter.recipient.name), letter.recipient.email))
    message["Date"] = format_datetime(utcnow())
    message["Message-ID"] = message_id(kind, object_id, version, letter.recipient.email, domain)
    message.set_content(templates.get_template(f"{letter.template}.txt").render(context))
    message.add_alternative(templates.get_template(f"{letter.template}.html").render(context), subtype="html")
    if letter.invite is not None:
        message.add_attachment(
            letter.invite.decode(),
            subtype="calendar",
            filename="invite.ics",
            params={"method": letter.invite_method or "PUBLISH"},
        )
    return message


# --- sending once ------------------------------------------------------------------------------------


class Claim(enum.Enum):
    CLAIMED = "claimed"  # ours to send now
    DONE = "done"  # sent or refused for good already
    BUSY = "busy"  # another worker holds a live claim


def _key(kind: Kind, object_id: int, recipient: str, version: int) -> Any:
    return and_(
        SentEmail.kind == kind.value,
        SentEmail.object_id == object_id,
        SentEmail.recipient == recipient,
        SentEmail.version == version,
    )


def _new_row(kind: Kind, object_id: int, recipient: str, version: int, **values: Any) -> bool:
    """Insert this recipient's row for the message unless it has one; True when it was new."""
    return insert_unless_exists(
        SentEmail, kind=kind.value, object_id=object_id, recipient=recipient, version=version, **values
    )


def _claim(kind: Kind, object_id: int, recipient: str, version: int) -> Claim:
    """One recipient's claim, a unit of its own (`run_in_unit`)."""
    now = utcnow()
    lease = timedelta(seconds=int(current_app.config["MAIL_CLAIM_LEASE_SECONDS"]))
    if _new_row(
        kind, object_id, recipient, version, status=EmailStatus.SENDING.value, attempts=1, claimed_at=now
    ):
        return Claim.CLAIMED
    taken = db.session.execute(
        update(SentEmail)
        .where(
            _key(kind, object_id, recipient, version),
            or_(
                SentEmail.status == EmailStatus.PENDING.value,
                and_(SentEmail.status == EmailStatus.SENDING.value, SentEmail.claimed_at < now - lease),
            ),
        )
        .values(status=EmailStatus.SENDING.value, claimed_at=now, attempts=SentEmail.attempts + 1)
        .execution_options(synchronize_session=False)
    )
    if cast("CursorResult[Any]", taken).rowcount == 1:  # an UPDATE gives a CursorResult
        return Claim.CLAIMED
    status = db.session.scalar(select(SentEmail.status).where(_key(kind, object_id, recipient, version)))
    return Claim.BUSY if status == EmailStatus.SENDING.value else Claim.DONE


# A message that went out but is not recorded as sent would go out again once its claim lapses, so recording
# the outcome outlasts a database restart (and, as a unit of its own, a lost race).
@retry(
    retry=retry_if_exception(is_unavailable),
    stop=stop_after_delay(30),
    wait=wait_exponential(multiplier=0.2, max=5),
    reraise=True,
)
def _finish(
    kind: Kind, object_id: int, recipient: str, version: int, status: EmailStatus, error: str | None = None
) -> None:
    outcome = (
        update(SentEmail)
        .where(_key(kind, object_id, recipient, version), SentEmail.status == EmailStatus.SENDING.value)
        .values(
            status=status.value,
            sent_at=utcnow() if status is EmailStatus.SENT else None,
            last_error=error[:500] if error else None,
        )
        .execution_options(synchronize_session=False)
    )
    run_in_unit(db.session.execute, outcome)


def _render_all(
    kind: Kind, object_id: int, version: int
) -> tuple[list[tuple[str, EmailMessage]], list[tuple[str, str]]]:
    """The event's messages ready to send, and the recipients whose message cannot be rendered (and why)."""
    outgoing: list[tuple[str, EmailMessage]] = []
    unrenderable: list[tuple[str, str]] = []
    for letter in compose(kind, object_id, version):
        try:
            outgoing.append((letter.recipient.email, render(letter, kind, object_id, version)))
        except SQLAlchemyError:
            raise  # the database, not the message: worth a retry
        except Exception as exc:
            log.exception("%s mail for %s cannot be rendered", kind.value, letter.recipient.email)
            unrenderable.append((letter.recipient.email, f"rendering failed: {exc!r}"))
    return outgoing, unrenderable


def deliver(kind: Kind, object_id: int, version: int = 0) -> int:
    """Send the messages of one event, each recipient at most once; returns how many went out now.

    Every database step is a short unit of its own (`run_in_unit`: run again after a lost race). A recipient
    whose claim still fails (the database away) is left for the retry and holds up none of the others.
    Raises `TransientError` (after trying every recipient) when some could not be sent yet, so the task
    is retried with backoff; the ones already sent are skipped on the retry.
    """
    outgoing, unrenderable = run_in_unit(_render_all, kind, object_id, version)
    for recipient, error in unrenderable:
        run_in_unit(_record_failure, kind, object_id, recipient, version, error)
    sent = 0
    deferred: list[str] = []
    for recipient, message in outgoing:
        try:
            claim = run_in_unit(_claim, kind, object_id, recipient, version)
        except SQLAlchemyError as exc:
            log.warning("%s mail for %s not claimed, left for the retry: %s", kind.value, recipient, exc)
            deferred.append(f"{recipient}: {exc.__class__.__name__}")
            continue
        if claim is Claim.BUSY:
            deferred.append(f"{recipient}: being sent by another worker")
        if claim is not Claim.CLAIMED:
            continue
        try:
            mailer.send(message)
        except TransientError as exc:
            _finish(kind, object_id, recipient, version, EmailStatus.PENDING, str(exc))
            deferred.append(f"{recipient}: {exc}")
            continue
        except PermanentMailError as exc:
            log.warning("%s mail for %s refused for good: %s", kind.value, recipient, exc)
            _finish(kind, object_id, recipient, version, EmailStatus.FAILED, str(exc))
            continue
        except Exception as exc:
            _finish(kind, object_id, recipient, version, EmailStatus.PENDING, repr(exc))
            raise
        _finish(kind, object_id, recipient, version, EmailStatus.SENT)
        sent += 1
    if deferred:
        raise TransientError(f"{kind.value} {object_id}: " + "; ".join(deferred))
    return sent


def _record_failure(kind: Kind, object_id: int, recipient: str, version: int, error: str) -> None:
    """Mark one recipient's message failed (unless it was sent), creating its row if need be."""
    if _new_row(kind, object_id, recipient, version, status=EmailStatus.FAILED.value, last_error=error[:500]):
        return
    db.session.execute(
        update(SentEmail)
        .where(_key(kind, object_id, recipient, version), SentEmail.status != EmailStatus.SENT.value)
        .values(status=EmailStatus.FAILED.value, last_error=error[:500])
        .execution_options(synchronize_session=False)
    )


def give_up(kind: Kind, object_id: int, version: int, error: str) -> None:
    """The task is out of retries: what is still waiting to be sent is failed, for an admin to see."""
    still_waiting = (
        update(SentEmail)
        .where(
            SentEmail.kind == kind.value,
            SentEmail.object_id == object_id,
            SentEmail.version == version,
            SentEmail.status == EmailStatus.PENDING.value,
        )
        .values(status=EmailStatus.FAILED.value, last_error=f"out of retries: {error}"[:500])
        .execution_options(synchronize_session=False)
    )
    run_in_unit(db.session.execute, still_waiting)


def emails_in(status: EmailStatus) -> Select[SentEmail]:
    """Messages by status, newest first (for the admin listing)."""
    return select(SentEmail).where(SentEmail.status == status.value).order_by(SentEmail.id.desc())


def retry_email(email_id: int) -> SentEmail:
    """An admin's retry of a failed message: pending again, and a send task after the commit."""
    email = db.session.get(SentEmail, email_id)
    if email is None:
        raise NotFound("No such email.")
    if email.status != EmailStatus.FAILED.value:
        raise Conflict(f"Only a failed email can be retried; this one is {email.status}.")
    email.status = EmailStatus.PENDING.value
    db.session.flush()
    request_email(Kind(email.kind), email.object_id, email.version)
    return email


def send_reminder(reminder_id: int) -> bool:
    """Send one claimed reminder, unless its session started or it is no longer confirmed meanwhile."""
    if not run_in_unit(reminders.take_for_sending, reminder_id):
        return False
    deliver(Kind.REMINDER, reminder_id)
    run_in_unit(_mark_reminder_sent, reminder_id)
    return True


def _mark_reminder_sent(reminder_id: int) -> None:
    """Sent, and its outbox row done, in one commit."""
    reminders.mark_sent(reminder_id)
    outbox.complete_current()


# --- receivers (inside the sender's transaction: write rows, never commit) ---------------------------


def request_email(kind: Kind, object_id: int, version: int = 0) -> None:
    outbox.enqueue(SEND_EMAIL_TASK, kind=kind.value, object_id=object_id, version=version)


def on_user_registered(user_id: int, **_: Any) -> None:
    request_email(Kind.WELCOME, user_id)


def on_password_reset_requested(user_id: int, *, version: int = 0, **_: Any) -> None:
    request_email(Kind.PASSWORD_RESET, user_id, version=version)


def on_vetting_transition(profile_id: int, *, to_status: str, **_: Any) -> None:
    kind = VETTING_KINDS.get(to_status)
    if kind is None:
        return
    # The service flushed the audit row before signalling: the message reads its note from there.
    event_id = db.session.scalar(
        select(func.max(VettingEvent.id)).where(VettingEvent.profile_id == profile_id)
    )
    if event_id is not None:
        request_email(kind, event_id)


def on_revision_decided(_profile_id: int, *, action: str, event_id: int, **_: Any) -> None:
    kind = REVISION_KINDS.get(action)
    if kind is not None:
        request_email(kind, event_id)


def on_booking_held(booking_id: int, **_: Any) -> None:
    request_email(Kind.BOOKING_HELD, booking_id)


def on_booking_confirmed(booking_id: int, **_: Any) -> None:
    request_email(Kind.BOOKING_CONFIRMED, booking_id)
    reminders.schedule(booking_id)


def on_booking_cancelled(booking_id: int, **_: Any) -> None:
    request_email(Kind.BOOKING_CANCELLED, booking_id)
    reminders.drop(booking_id)


def on_booking_rescheduled(booking_id: int, **_: Any) -> None:
    booking = db.session.get(Booking, booking_id)
    if booking is None:
        return
    request_email(Kind.BOOKING_RESCHEDULED, booking_id, version=booking.sequence)
    reminders.drop(booking_id)
    reminders.schedule(booking_id)


def on_booking_expired(booking_id: int, **_: Any) -> None:
    request_email(Kind.HOLD_EXPIRED, booking_id)


def on_booking_requested(booking_id: int, **_: Any) -> None:
    request_email(Kind.BOOKING_REQUESTED, booking_id)


def on_booking_declined(booking_id: int, **_: Any) -> None:
    request_email(Kind.BOOKING_DECLINED, booking_id)


def on_booking_completed(booking_id: int, **_: Any) -> None:
    request_email(Kind.REVIEW_REQUEST, booking_id)


def on_payment_failed(booking_id: int, **_: Any) -> None:
    booking = db.session.get(Booking, booking_id)
    # One message per failed attempt: a learner who retries and fails again hears about it again.
    request_email(Kind.PAYMENT_FAILED, booking_id, version=booking.payment_attempts if booking else 0)


def on_late_payment_refunded(booking_id: int, **_: Any) -> None:
    request_email(Kind.LATE_PAYMENT_REFUNDED, booking_id)


def on_booking_disputed(booking_id: int, **_: Any) -> None:
    request_email(Kind.BOOKING_DISPUTED, booking_id)
