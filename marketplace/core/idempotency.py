"""`Idempotency-Key` for unsafe calls: the same key from the same user gets the first result again.

The key is claimed by inserting its row before the work runs, in the same transaction. A concurrent request
with the same key blocks on the unique index (PostgreSQL) or on the write lock (SQLite) until the first one
commits, then finds its stored response and replays it. A request that fails (4xx/5xx) rolls its claim back,
so a retry runs afresh.

A request that commits part of its work before a network call (`core.db.commit_before_network_call`: a new
hold, before its PaymentIntent) commits its claim with it, still without a response. A concurrent request
with the same key then waits, with no transaction open, for the response to be stored (up to
`WAIT_FOR_ANSWER_SECONDS`, else 409 "in progress"); the first request deletes its claim if it fails after
all. A claim left without a response for `ABANDONED_AFTER` (its process died) is taken over by the next request.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import wraps
from typing import Any, TypeVar, cast

from flask import Response, make_response, request
from flask_login import current_user
from sqlalchemy import CursorResult, ForeignKey, String, Text, UniqueConstraint, delete, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Mapped, mapped_column

from marketplace.core.api import note_operation
from marketplace.core.db import committed_early, run_in_unit
from marketplace.core.errors import Conflict, Unprocessable
from marketplace.core.fields import has_control_characters
from marketplace.core.time import as_utc, utcnow
from marketplace.extensions import Model, db

log = logging.getLogger(__name__)
HEADER = "Idempotency-Key"
REPLAY_HEADER = "Idempotent-Replayed"
MAX_KEY_LENGTH = 255
# How long a request waits for the answer of another one with its key that committed its claim early.
WAIT_FOR_ANSWER_SECONDS = 15.0
_POLL_SECONDS = 0.05
# A claim without an answer this old belongs to a request that died: longer than any request may run.
ABANDONED_AFTER = timedelta(minutes=2)
F = TypeVar("F", bound=Callable[..., Any])


class IdempotencyKey(Model):
    __tablename__ = "idempotency_keys"
    __table_args__ = (UniqueConstraint("user_id", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(MAX_KEY_LENGTH))
    fingerprint: Mapped[str] = mapped_column(String(64))
    response_status: Mapped[int | None]
    response_body: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


def _fingerprint() -> str:
    digest = hashlib.sha256()
    digest.update(f"{request.method} {request.path}\n".encode())
    digest.update(request.get_data())
    return digest.hexdigest()


IN_PROGRESS = "A request with this Idempotency-Key is in progress; retry shortly."


def _find(user_id: int, key: str) -> IdempotencyKey | None:
    return db.session.scalar(
        select(IdempotencyKey).where(IdempotencyKey.user_id == user_id, IdempotencyKey.key == key)
    )


def _claim(user_id: int, key: str, fingerprint: str) -> tuple[IdempotencyKey, bool]:
    """Insert the key's row, or find the row a previous request with this key committed; True when new."""
    row = IdempotencyKey(user_id=user_id, key=key, fingerprint=fingerprint)
    try:
        with db.session.begin_nested():
            db.session.add(row)
    except IntegrityError:
        existing = _find(user_id, key)
        if existing is None:
            raise Conflict(IN_PROGRESS) from None
        if existing.response_status is None:
            return _await_answer(existing, fingerprint)
        return existing, False
    return row, True


def _await_answer(claim: IdempotencyKey, fingerprint: str) -> tuple[IdempotencyKey, bool]:
    """The claim was committed before its answer (see the module's docstring): wait for the answer with no
    transaction open, take the claim over if its request died, or give up with 409."""
    user_id, key = claim.user_id, claim.key
    deadline = time.monotonic() + WAIT_FOR_ANSWER_SECONDS
    while True:
        if claim.response_status is not None:
            return claim, False
        if as_utc(claim.created_at) < utcnow() - ABANDONED_AFTER:
            taken = db.session.execute(
                update(IdempotencyKey)
                .where(IdempotencyKey.id == claim.id, IdempotencyKey.response_status.is_(None))
                .values(fingerprint=fingerprint, created_at=utcnow())
                .execution_options(synchronize_session=False)
            )
            if cast("CursorResult[Any]", taken).rowcount == 1:  # an UPDATE gives a CursorResult
                db.session.refresh(claim)
                return claim, True
        if time.monotonic() > deadline:
            raise Conflict(IN_PROGRESS)
        db.session.rollback()  # no lock (nor SQLite's write lock) held while waiting
        time.sleep(_POLL_SECONDS)
        found = _find(user_id, key)
        if found is None:  # its request failed and withdrew the claim: run afresh
            return _claim(user_id, key, fingerprint)
        claim = found


def _release_committed_claim(claim_id: int) -> None:
    """A request that failed after committing its claim (`commit_before_network_call`) frees its key, so a
    retry runs afresh; if even that fails, the claim is taken over once `ABANDONED_AFTER` has passed."""
    if not committed_early():
        return  # the claim rolls back with the request
    try:
        run_in_unit(_withdraw, claim_id)
    except SQLAlchemyError:
        log.warning(
            "idempotency claim %s not withdrawn; it is taken over after %s", claim_id, ABANDONED_AFTER
        )


def _withdraw(claim_id: int) -> None:
    db.session.execute(
        delete(IdempotencyKey)
        .where(IdempotencyKey.id == claim_id, IdempotencyKey.response_status.is_(None))
        .execution_options(synchronize_session=False)
    )


def idempotent(view: F) -> F:
    """Wrap a view (outside its flask-smorest decorators, so it sees the serialized response)."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        key = request.headers.get(HEADER)
        if key is None or not current_user.is_authenticated:
            return view(*args, **kwargs)
        if not 1 <= len(key) <= MAX_KEY_LENGTH or has_control_characters(key):
            raise Unprocessable(
                f"{HEADER} must be 1 to {MAX_KEY_LENGTH} characters, none a control character."
            )
        fingerprint = _fingerprint()
        row, claimed = _claim(current_user.id, key, fingerprint)
        if not claimed:
            if row.fingerprint != fingerprint:
                raise Unprocessable(f"This {HEADER} was used for a different request.")
            replay = Response(row.response_body, status=row.response_status, mimetype="application/json")
            replay.headers[REPLAY_HEADER] = "true"
            return replay
        claim_id = row.id
        try:
            response = make_response(view(*args, **kwargs))
        except Exception:
            _release_committed_claim(claim_id)
            raise
        if response.status_code >= 400:
            _release_committed_claim(claim_id)
            return response
        db.session.execute(
            update(IdempotencyKey)
            .where(IdempotencyKey.id == claim_id)
            .values(response_status=response.status_code, response_body=response.get_data(as_text=True))
            .execution_options(synchronize_session=False)
        )
        return response

    return note_operation(  # type: ignore[return-value]
        wrapper,
        parameters=[
            {
                "in": "header",
                "name": HEADER,
                "required": False,
                "schema": {"type": "string", "minLength": 1, "maxLength": MAX_KEY_LENGTH},
                "description": "Any unique string per intended operation: a retry with the same key "
                "(same user, same request) gets the first successful answer again instead of acting twice.",
            }
        ],
        success_headers={
            REPLAY_HEADER: {
                "description": f"`true` when this is the stored answer to an earlier request with this {HEADER}",
                "schema": {"type": "string", "enum": ["true"]},
            }
        },
        error_responses={
            409: f"A request with this {HEADER} is still in progress",
            422: f"The {HEADER} is too long, or was used for a different request",
        },
    )
