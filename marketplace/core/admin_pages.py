"""What every admin page shares, and the pages of the work the outbox parked.

Admin pages call the admin API's own services and schemas. Like the API, they answer 403 to a signed-in
user who is not an admin (and 404 for an object that is not there); a visitor who is not signed in is
sent to sign in, as on every signed-in page. The app's own check refuses a posted form without the
session's CSRF token; the page then says so (or shows its form again) instead of answering JSON.

Each domain serves its own admin pages (vetting in `mentors`, bookings in `payments`, mails in
`notifications`); this module holds the frame they share and the outbox's page, which is the base's own.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import wraps
from typing import Any

from flask import flash, redirect, request, url_for
from flask.views import MethodView
from flask_login import current_user
from marshmallow import pre_load, validate
from werkzeug.exceptions import UnprocessableEntity
from werkzeug.wrappers import Response

from marketplace.core import outbox
from marketplace.core.api import Blueprint
from marketplace.core.errors import DomainError, Forbidden
from marketplace.core.outbox import MessageState
from marketplace.core.outbox_routes import OutboxArgsSchema
from marketplace.core.pages import Form, render_page
from marketplace.core.pagination import page_and_total
from marketplace.core.validation import QuerySchema, fields

HTML = "text/html"
PAGE = {"type": "string", "description": "An HTML document"}
PAGE_SIZE = 25
ADMIN_ONLY = "This page is for admins."
EXPIRED_FORM = "This form has expired. Please send it again."
ShowForm = Callable[[Form, int], Response]

html = Blueprint("admin_pages", __name__, url_prefix="/admin", description="Admin pages (HTML)")


def is_admin() -> bool:
    return bool(current_user.is_authenticated and current_user.has_role("admin"))


def admin_page(view: Callable[..., Response]) -> Callable[..., Response]:
    """Admins only: a visitor is sent to sign in (and back here after a GET), anyone else gets 403."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Response:
        if not current_user.is_authenticated:
            here = request.full_path.rstrip("?") if request.method == "GET" else None
            return redirect(url_for("account_pages.SignInPage", next=here), code=303)
        if not is_admin():
            raise Forbidden(ADMIN_ONLY)
        return view(*args, **kwargs)

    return wrapper


def documented(blueprint: Blueprint, description: str, *refusals: tuple[int, str]) -> Callable[[Any], Any]:
    """An admin page's answers in the OpenAPI document, each as `text/html`."""

    def decorator(view: Any) -> Any:
        for status, why in ((403, "Not an admin"), *refusals):
            view = blueprint.alt_response(status, schema=PAGE, content_type=HTML, description=why)(view)
        view = blueprint.alt_response(303, description="Not signed in: to sign in")(view)
        return blueprint.response(200, schema=PAGE, content_type=HTML, description=description)(view)

    return decorator


def acted(blueprint: Blueprint, description: str, *refusals: tuple[int, str]) -> Callable[[Any], Any]:
    """A posted admin form in the OpenAPI document: 303 on to a page, or a page that says what failed."""

    def decorator(view: Any) -> Any:
        for status, why in ((403, "Not an admin, or the form's CSRF token is stale"), *refusals):
            view = blueprint.alt_response(status, schema=PAGE, content_type=HTML, description=why)(view)
        return blueprint.response(303, description=description)(view)

    return decorator


def listing_page(blueprint: Blueprint, args: type[QuerySchema], description: str) -> Callable[[Any], Any]:
    """An admin listing: admins only, its filters read with `args` from the query, documented as HTML."""

    def decorator(view: Any) -> Any:
        view = documented(blueprint, description, (422, "A filter was not understood"))(view)
        return admin_page(blueprint.arguments(args, location="query")(view))

    return decorator


class ListArgsSchema(QuerySchema):
    """A listing's page number; a blank filter (an HTML form sends every field) means "any"."""

    page = fields.Integer(load_default=1, validate=validate.Range(min=1, max=10_000))

    @pre_load
    def _blank_means_any(self, data: Any, **_: Any) -> Any:
        if not hasattr(data, "items"):
            return data
        return {
            key: value for key, value in data.items() if not (isinstance(value, str) and not value.strip())
        }


@dataclass
class Listing:
    """One page of rows, and what the pager needs."""

    rows: Sequence[Any]
    total: int
    page: int
    page_size: int = PAGE_SIZE

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.page_size))


def listing(stmt: Any, page: int) -> Listing:
    rows, total = page_and_total(stmt, PAGE_SIZE, (page - 1) * PAGE_SIZE)
    return Listing(rows, total, page)


def admin_render(template: str, title: str, status: int = 200, **context: Any) -> Response:
    return render_page(
        f"admin/{template}",
        title=title,
        description=f"{title}: for the marketplace's admins.",
        status=status,
        **context,
    )


def page_errors(blueprint: Blueprint, forms: dict[str, ShowForm]) -> None:
    """Refusals as pages: a posted form comes back with its values and the message on top (`forms`, by
    endpoint); anything else is a page that says what happened, with the API's status."""

    def refused(message: str, status: int, errors: dict[str, list[str]] | None = None) -> Response:
        show = forms.get(request.endpoint or "")
        if show is not None and request.method == "POST" and is_admin():
            kept = {name: value for name, value in request.form.items() if name != "csrf_token"}
            try:
                return show(Form(values=kept, errors=errors or {}, message=message), status)
            except DomainError:  # the object itself is gone: say what was refused
                pass
        return admin_render("message.html", "Sorry", status, message=message, problems=errors or {})

    @blueprint.errorhandler(DomainError)
    def _domain_error(error: DomainError) -> Response:
        # The app's CSRF check names its header; a person is told what to do instead.
        stale = isinstance(error, Forbidden) and "CSRF" in error.message
        return refused(EXPIRED_FORM if stale else error.message, int(error.status_code))

    @blueprint.errorhandler(UnprocessableEntity)
    def _bad_arguments(error: UnprocessableEntity) -> Response:
        problems = getattr(error, "data", {}).get("messages", {}).get("query", {})
        return refused("Some filters were not understood.", 422, problems)


@dataclass
class ParkedItem:
    """A row of work that stopped retrying, as the parked-work pages list it."""

    id: int | str
    title: str
    detail: str
    attempts: int
    last_error: str | None
    since: datetime | None
    retry_url: str | None


def parked_page(
    title: str, states: Sequence[str], state: str, items: list[ParkedItem], page: Listing
) -> Response:
    return admin_render("parked.html", title, states=states, state=state, items=items, listing=page)


def retried(message: str, back: str) -> Response:
    flash(message)
    return redirect(back, code=303)


class OutboxPageArgsSchema(ListArgsSchema, OutboxArgsSchema):
    """The API's filter by state, and a page number."""


@html.route("")
class AdminHomePage(MethodView):
    @admin_page
    @documented(html, "What needs an admin: vetting, bookings and disputes, parked work")
    def get(self) -> Response:
        return admin_render("home.html", "Admin")


@html.route("/outbox")
class OutboxPage(MethodView):
    @listing_page(
        html, OutboxPageArgsSchema, "Outbox rows by state: parked ones (the default) with a retry button"
    )
    def get(self, args: dict[str, Any]) -> Response:
        page = listing(outbox.messages_in(MessageState(args["state"])), args["page"])
        items = [
            ParkedItem(
                id=row.id,
                title=row.task,
                detail=", ".join(f"{key}: {value}" for key, value in sorted(row.payload.items())),
                attempts=row.attempts,
                last_error=row.last_error,
                since=row.parked_at or row.next_attempt_at or row.completed_at,
                retry_url=url_for("admin_pages.OutboxRetryPage", message_id=row.id)
                if row.parked_at
                else None,
            )
            for row in page.rows
        ]
        states = [s.value for s in MessageState]
        return parked_page("Outbox", states, args["state"], items, page)


@html.route("/outbox/<int:message_id>/retry")
class OutboxRetryPage(MethodView):
    @admin_page
    @acted(
        html, "Queued again: back to the parked rows", (404, "No such row"), (409, "The row is not parked")
    )
    def post(self, message_id: int) -> Response:
        outbox.retry(message_id)
        return retried(f"Outbox row {message_id} is queued again.", url_for("admin_pages.OutboxPage"))


page_errors(html, {})
