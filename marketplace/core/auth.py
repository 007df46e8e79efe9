"""Authorization helpers shared by every module's routes; each also documents what it enforces."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask_login import current_user

from marketplace.core.api import note_operation
from marketplace.core.errors import Forbidden, Unauthorized

F = TypeVar("F", bound=Callable[..., Any])

# Endpoints that check their own credential (the scraper's METRICS_TOKEN): the user authentication
# must not take their Authorization header for an API token.
SELF_AUTHENTICATED_ENDPOINTS = frozenset({"ops.Metrics"})


def login_required(view: F) -> F:
    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not current_user.is_authenticated:
            raise Unauthorized("Authentication required.")
        return view(*args, **kwargs)

    return note_operation(wrapper, auth={"roles": ()})  # type: ignore[return-value]


def login_optional(view: F) -> F:
    """Changes nothing at run time: documents a view that anyone may call and that acts on the signed-in
    user when there is one (so a cookie caller sends the CSRF header)."""
    return note_operation(view, auth={"optional": True})


def roles_required(*roles: str) -> Callable[[F], F]:
    """401 for anonymous callers, 403 for callers lacking every one of `roles`."""

    def decorator(view: F) -> F:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if not current_user.is_authenticated:
                raise Unauthorized("Authentication required.")
            if not any(current_user.has_role(role) for role in roles):
                raise Forbidden(f"This action requires the {' or '.join(roles)} role.")
            return view(*args, **kwargs)

        return note_operation(wrapper, auth={"roles": roles})  # type: ignore[return-value]

    return decorator
