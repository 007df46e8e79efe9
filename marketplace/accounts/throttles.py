"""The limits on guessing and mailing, for the API and the pages alike (Flask-Limiter).

Key functions must never raise: Flask-Limiter takes an exception for a storage outage. The address a
limit is keyed on is read from a JSON body (the API) or a posted form (the pages), so both count in the
same buckets where a limit is shared.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from flask import Response, current_app, request
from flask_limiter.util import get_remote_address
from flask_login import current_user

from marketplace.accounts import service
from marketplace.core.pages import posted_field
from marketplace.extensions import limiter


def _setting(name: str) -> Callable[[], str]:
    """A limit read from the app's settings at request time."""
    return lambda: current_app.config[name]


def _account_key(email: str) -> str:
    """One bucket per normalized address, hashed: bounded keys, and no addresses in the limiter's storage."""
    normalized = service.normalize_email(email).encode("utf-8", "surrogatepass")
    return "account:" + hashlib.sha256(normalized).hexdigest()[:32]


def _account_in_body() -> str:
    email = posted_field("email")
    if email is None:
        try:
            body = request.get_json(silent=True)
        except RecursionError:
            body = None
        email = body.get("email") if isinstance(body, dict) else None
    return _account_key(email if isinstance(email, str) else "")


def _signed_in_account() -> str:
    return _account_key(current_user.email if current_user.is_authenticated else "")


def _rejected(*statuses: int) -> Callable[[Response], bool]:
    """Charge the limit only for these answers (the failures)."""
    return lambda response: response.status_code in statuses


# Failed sign-ins count against the client address and against the account, whichever address tries it;
# login, token issuing and the sign-in page share both buckets, and stacked windows ("5 per minute; 20 per
# hour") make a persistent guesser wait longer and longer. Only failures count, so signing in often is never
# throttled. (A limit is tested before the password is checked and charged after: a burst of concurrent
# guesses can overrun it by the number of requests in flight, which the web workers bound.)
failed_sign_ins_per_address = limiter.shared_limit(
    _setting("LOGIN_RATE_LIMIT"),
    scope="sign-in-address",
    key_func=get_remote_address,
    methods=["POST"],
    deduct_when=_rejected(401),
)
failed_sign_ins_per_account = limiter.shared_limit(
    _setting("LOGIN_ACCOUNT_RATE_LIMIT"),
    scope="sign-in-account",
    key_func=_account_in_body,
    methods=["POST"],
    deduct_when=_rejected(401),
)
# A wrong current password on a password change (PUT in the API, POST from the page) is a guess at the
# account's password too.
wrong_current_passwords = limiter.shared_limit(
    _setting("LOGIN_ACCOUNT_RATE_LIMIT"),
    scope="sign-in-account",
    key_func=_signed_in_account,
    methods=["PUT", "POST"],
    deduct_when=_rejected(403),
)
links_per_address = limiter.limit(
    _setting("PASSWORD_RESET_RATE_LIMIT"), key_func=get_remote_address, methods=["POST"]
)
links_per_account = limiter.limit(
    _setting("PASSWORD_RESET_ACCOUNT_RATE_LIMIT"), key_func=_account_in_body, methods=["POST"]
)
registrations_per_address = limiter.limit(
    _setting("REGISTER_RATE_LIMIT"), key_func=get_remote_address, methods=["POST"]
)
