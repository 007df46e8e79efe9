"""`Idempotency-Key` for unsafe calls: the same key from the same user gets the first result again.

The key is claimed by inserting its row before the work runs, in the same transaction. A concurrent request
with the same key blocks on the unique index (PostgreSQL) or on the write lock (SQLite) until the first one
commits, then finds its stored response and replays it. A request that fails (4xx/5xx) rolls its claim back,
so a retry runs afresh.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import datetime
from functools import wraps
from typing import Any, TypeVar

from flask import Response, make_response, request
from flask_login import current_user
from sqlalchemy import ForeignKey, String, Text, UniqueConstraint, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column

from marketplace.core.api import note_operation
from marketplace.core.errors import Conflict, Unprocessable
from marketplace.core.fields import has_control_characters
from marketplace.core.time import utcnow
from marketplace.extensions import Model, db

HEADER = "Idempotency-Key"
REPLAY_HEADER = "Idempotent-Replayed"
MAX_KEY_LENGTH = 255
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


def _claim(user_id: int, key: str, fingerprint: str) -> IdempotencyKey:
    """Insert the key's row, or return the row a previous request with this key committed."""
    row = IdempotencyKey(user_id=user_id, key=key, fingerprint=fingerprint)
    try:
        with db.session.begin_nested():
            db.session.add(row)
    except IntegrityError:
        existing: IdempotencyKey | None = db.session.scalar(
            select(IdempotencyKey).where(IdempotencyKey.user_id == user_id, IdempotencyKey.key == key)
        )
        if existing is None:
            raise Conflict("A request with this Idempotency-Key is in progress; retry shortly.") from None
        return existing
    return row


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
        row = _claim(current_user.id, key, fingerprint)
        if row.response_status is not None:
            if row.fingerprint != fingerprint:
                raise Unprocessable(f"This {HEADER} was used for a different request.")
            replay = Response(row.response_body, status=row.response_status, mimetype="application/json")
            replay.headers[REPLAY_HEADER] = "true"
            return replay
        response = make_response(view(*args, **kwargs))
        if response.status_code < 400:
            row.response_status = response.status_code
            row.response_body = response.get_data(as_text=True)
            db.session.flush()
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
