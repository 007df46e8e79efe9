"""flask-smorest's Api and Blueprint, made to tell the truth about this service in the OpenAPI document.

The decorators that enforce something (`core.auth.login_required`, `core.idempotency.idempotent`) note
it on the view with `note_operation`; `Blueprint` turns the notes into the operation's `security`, its
header parameters and its error responses. So an operation is documented by the same line that guards it,
and one without a note is documented as open to anyone (`security: []`).
"""

from __future__ import annotations

from collections.abc import Callable
from copy import deepcopy
from typing import TYPE_CHECKING, Any, TypeVar, cast

import flask_smorest
from marshmallow import Schema, fields

from marketplace.core.validation import ArgumentsParser

BEARER_SCHEME = "bearerAuth"
COOKIE_SCHEME = "cookieAuth"
METRICS_SCHEME = "metricsToken"
CSRF_HEADER = "X-CSRF-Token"
UNSAFE_METHODS = frozenset({"post", "put", "patch", "delete"})
F = TypeVar("F", bound=Callable[..., Any])


class ErrorSchema(Schema):
    """The one error shape (`core.errors`, flask-smorest's handler): `message` is always there."""

    code = fields.Integer(required=True, metadata={"description": "The HTTP status code"})
    status = fields.String(required=True, metadata={"description": "The HTTP reason phrase"})
    message = fields.String(required=True, metadata={"description": "What went wrong, for people"})
    errors = fields.Dict(
        metadata={"description": "Per location and field, the messages of a validation error"}
    )


class PaginationHeaderSchema(Schema):
    """The JSON object in `X-Pagination` (see `Blueprint._make_pagination_metadata`)."""

    total = fields.Integer(required=True, metadata={"description": "Items in all pages"})
    total_pages = fields.Integer(required=True, metadata={"description": "Pages of `page_size` items"})
    page = fields.Integer(required=True, metadata={"description": "This page, from 1"})
    page_size = fields.Integer(required=True, metadata={"description": "Items per page"})
    previous_page = fields.Integer(metadata={"description": "Present when there is a page before this one"})
    next_page = fields.Integer(metadata={"description": "Present when there is a page after this one"})


def note_operation(view: F, **notes: Any) -> F:
    """Record `notes` for `Blueprint` to document; returns `view`.

    `auth={"roles": (...)}`: a signed-in user (with one of `roles`, if any) is required.
    `auth={"optional": True}`: anyone may call it; it acts on the signed-in user when there is one.
    `parameters=[...]`: header parameters the wrapper reads. `error_responses={status: description}`:
    errors the wrapper answers. `success_headers={name: header}`: headers it adds to successful answers.
    """
    apidoc = deepcopy(getattr(view, "_apidoc", {}))
    for key, value in notes.items():
        if isinstance(value, dict) and isinstance(apidoc.get(key), dict):
            apidoc[key] = {**apidoc[key], **value}
        elif isinstance(value, list):
            apidoc[key] = [*apidoc.get(key, []), *value]
        else:
            apidoc[key] = value
    view._apidoc = apidoc  # type: ignore[attr-defined]
    return view


def _error_response(description: str, error_schema: type[Schema]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": error_schema}}}


class Blueprint(flask_smorest.Blueprint):  # type: ignore[misc]  # flask-smorest ships no type information
    ARGUMENTS_PARSER = ArgumentsParser()
    PAGINATION_ARGUMENTS_PARSER = ArgumentsParser()

    if TYPE_CHECKING:
        # flask-smorest is untyped: its decorators, as this code uses them, keep the decorated signature.
        def route(self, rule: str, **options: Any) -> Callable[[F], F]: ...
        def response(self, status_code: int | str, schema: Any = None, **kwargs: Any) -> Callable[[F], F]: ...
        def alt_response(self, status_code: int | str, **kwargs: Any) -> Callable[[F], F]: ...
        def paginate(self, pager: Any = None, **kwargs: Any) -> Callable[[F], F]: ...
        def doc(self, **kwargs: Any) -> Callable[[F], F]: ...
        def errorhandler(self, code_or_exception: type[Exception] | int) -> Callable[[F], F]: ...

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._prepare_doc_cbks.append(self._prepare_security_doc)

    def add_url_rule(self, rule: str, *args: Any, **kwargs: Any) -> None:
        """As flask-smorest's; an operation on a URL naming a resource is documented with its 404."""
        super().add_url_rule(rule, *args, **kwargs)
        if "<" in rule:
            for key, doc in self._docs[self._endpoints[-1]].items():
                if key != "parameters":
                    doc["names_a_resource"] = True

    def arguments(self, schema: Any, *, required: bool | None = None, **kwargs: Any) -> Callable[[F], F]:
        """As flask-smorest's, but a body is documented as required only when its schema requires a field:
        without one, a request with no body at all is accepted (as `{}`), so the document must allow it."""
        if required is None:
            fields_of = (schema() if isinstance(schema, type) else schema).fields.values()
            required = any(field.required for field in fields_of)
        return cast("Callable[[F], F]", super().arguments(schema, required=required, **kwargs))

    @staticmethod
    def _prepare_security_doc(
        doc: dict[str, Any], doc_info: dict[str, Any], *, api: Any, method: str, **_: Any
    ) -> dict[str, Any]:
        """`security`, the CSRF and other header parameters, and error responses, from the notes."""
        auth = doc_info.get("auth")
        # Status codes arrive as the decorators were given them (int or str): one spelling, or 404 and
        # "404" would be two entries.
        responses = doc["responses"] = {
            str(status): value for status, value in doc.get("responses", {}).items()
        }
        parameters: list[Any] = doc.setdefault("parameters", [])
        errors = dict(doc_info.get("error_responses", {}))
        signed_in: list[dict[str, list[str]]] = [{BEARER_SCHEME: []}, {COOKIE_SCHEME: []}]
        if auth is None:
            doc["security"] = []
        elif auth.get("optional"):
            doc["security"] = [{}, *signed_in]
        else:
            doc["security"] = signed_in
            errors.setdefault(401, "Not signed in, or the token is invalid")
            if auth.get("roles"):
                errors.setdefault(403, f"Requires the {' or '.join(auth['roles'])} role")
        if auth is not None and method in UNSAFE_METHODS:
            parameters.append(
                {
                    "in": "header",
                    "name": CSRF_HEADER,
                    "required": False,
                    "schema": {"type": "string"},
                    "description": "With the session cookie: the `csrf_token` from the login response or "
                    "GET /api/v1/auth/session. Not needed with a Bearer token.",
                }
            )
            errors.setdefault(403, f"Cookie session without a valid {CSRF_HEADER} header")
        parameters.extend(doc_info.get("parameters", []))
        for status, description in errors.items():
            responses.setdefault(str(status), _error_response(description, api.ERROR_SCHEMA))
        success_headers = doc_info.get("success_headers")
        for status in doc_info.get("success_status_codes", []) if success_headers else ():
            response = responses.get(str(status))
            if isinstance(response, dict):
                response.setdefault("headers", {}).update(success_headers)
        if doc_info.get("names_a_resource"):
            responses.setdefault("404", _error_response("No such resource", api.ERROR_SCHEMA))
            # A URL whose parameter does not even convert (`/mentors/-1`) matches no route, and the app
            # answers that in JSON whatever the route's own 404 looks like (an HTML page's, say).
            if isinstance(responses["404"], dict):
                responses["404"].setdefault("content", {}).setdefault(
                    "application/json", {"schema": api.ERROR_SCHEMA}
                )
        # Errors declared with a description alone (`alt_response(409, description=...)`) have the error shape.
        for status, response in responses.items():
            if status.isdigit() and int(status) >= 400 and isinstance(response, dict):
                response.setdefault("content", {"application/json": {"schema": api.ERROR_SCHEMA}})
        if not parameters:
            del doc["parameters"]
        return doc

    @staticmethod
    def _make_pagination_metadata(page: int, page_size: int, item_count: int) -> dict[str, Any]:
        """`X-Pagination: {"total", "total_pages", "page", "page_size"}`, plus neighbours when they exist."""
        total_pages = (item_count + page_size - 1) // page_size
        metadata: dict[str, Any] = {
            "total": item_count,
            "total_pages": total_pages,
            "page": page,
            "page_size": page_size,
        }
        if 1 < page <= total_pages + 1:
            metadata["previous_page"] = page - 1
        if page < total_pages:
            metadata["next_page"] = page + 1
        return metadata


class Api(flask_smorest.Api):  # type: ignore[misc]  # flask-smorest ships no type information
    """Declares the two ways to authenticate, the error shape and the pagination header."""

    ERROR_SCHEMA = ErrorSchema

    def _init_spec(self, **kwargs: Any) -> None:
        super()._init_spec(**kwargs)
        components = self.spec.components
        components.security_scheme(
            BEARER_SCHEME,
            {
                "type": "http",
                "scheme": "bearer",
                "description": "API clients: a token from POST /api/v1/auth/tokens. No CSRF header needed.",
            },
        )
        components.security_scheme(
            COOKIE_SCHEME,
            {
                "type": "apiKey",
                "in": "cookie",
                "name": self._app.config["SESSION_COOKIE_NAME"],
                "description": "Browsers: the session cookie set by POST /api/v1/auth/login. Every "
                f"POST, PUT, PATCH and DELETE also sends the `{CSRF_HEADER}` header with the `csrf_token` "
                "from the login response (or GET /api/v1/auth/session); without it the answer is 403.",
            },
        )

        components.security_scheme(
            METRICS_SCHEME,
            {
                "type": "http",
                "scheme": "bearer",
                "description": "GET /metrics when METRICS_TOKEN is set: that token (without it, open).",
            },
        )

    def _register_pagination_header(self) -> None:
        # The value is a JSON document, so the header is described by `content`, not by a `schema`
        # (which OpenAPI would read as the comma-separated `simple` style).
        self.spec.components.header(
            "PAGINATION",
            {
                "description": "Pagination of the list in the body, as JSON",
                "content": {"application/json": {"schema": PaginationHeaderSchema}},
            },
            lazy=True,
        )
