"""What every server-rendered page shares: the page frame (title, description, canonical link, JSON-LD),
the form conventions, and the one check of a `next` address.

Form conventions, for every page form: the values come back as typed (never a password), each field's
messages sit next to it and in a summary at the top that links to the field, and a rule is checked by the
same schema (and service) the API uses, never by a copy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from flask import Response, render_template, request
from marshmallow import Schema, ValidationError

from marketplace.core.errors import DomainError
from marketplace.core.fields import has_control_characters

SITE_NAME = "Mentor marketplace"
SCHEMA_ORG = "https://schema.org"
MAX_NEXT_LENGTH = 2000
FILL_IN = "Please fill in this field."
FORM_TYPES = frozenset({"application/x-www-form-urlencoded", "multipart/form-data"})


def render_page(
    template: str,
    *,
    title: str,
    description: str,
    structured_data: dict[str, Any] | None = None,
    canonical: str | None = None,
    status: int = 200,
    **context: Any,
) -> Response:
    """Every page carries a title, a meta description, a canonical link and JSON-LD; base.html shows them."""
    html = render_template(
        template,
        title=title,
        description=description,
        canonical=canonical or request.base_url,
        structured_data={"@context": SCHEMA_ORG, **(structured_data or {"@type": "WebPage", "name": title})},
        site_name=SITE_NAME,
        **context,
    )
    return Response(html, status=status, mimetype="text/html")


def posted_field(name: str) -> str | None:
    """A field of a posted form, read so the raw body stays readable: an API view that refuses a form
    with a 415 still sees the body it was sent."""
    if request.mimetype not in FORM_TYPES:
        return None
    request.get_data(cache=True)
    return request.form.get(name)


def safe_next(target: str | None, default: str = "/") -> str:
    """`target` if it is a path on this site (`/mentors/4?tz=UTC`), else `default`: never another host,
    a scheme (`javascript:`), a protocol-relative `//host` or a backslash a browser reads as a slash."""
    if not target or len(target) > MAX_NEXT_LENGTH or has_control_characters(target):
        return default
    # A path that starts with one slash has neither a scheme nor a host (RFC 3986, section 4.2).
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    return target


@dataclass
class Form:
    """A submitted (or empty) form as a page shows it: the values to put back and the messages per field.

    `message` is the summary's lead when a rule about the whole form failed (bad credentials, a dead link).
    """

    values: dict[str, str] = field(default_factory=dict)
    errors: dict[str, list[str]] = field(default_factory=dict)
    message: str | None = None

    @property
    def failed(self) -> bool:
        return bool(self.errors or self.message)

    def fail(self, error: DomainError) -> Form:
        """Take a service's refusal: its per-field messages go next to the fields, its message on top."""
        self.errors.update(_flat(error.errors or {}))
        if not error.errors:
            self.message = error.message
        return self


def read_form(schema: Schema, secret: tuple[str, ...] = ()) -> tuple[dict[str, Any] | None, Form]:
    """Load the posted fields `schema` knows with it; the data (None when invalid) and the form to show.

    `secret` fields (passwords) are read but never sent back to the browser.
    """
    posted = {name: request.form[name] for name in schema.fields if name in request.form}
    form = Form(values={name: value for name, value in posted.items() if name not in secret})
    blank = {
        name: [FILL_IN]
        for name, schema_field in schema.fields.items()
        if schema_field.required and not posted.get(name, "").strip()
    }
    try:
        data = schema.load({name: value for name, value in posted.items() if name not in blank})
    except ValidationError as exc:
        messages = exc.messages if isinstance(exc.messages, dict) else {"_schema": exc.messages}
        form.errors = {**_flat(messages), **blank}
        return None, form
    return data, form


def _flat(messages: dict[str, Any]) -> dict[str, list[str]]:
    """marshmallow's messages per field as plain lists of sentences."""
    flat: dict[str, list[str]] = {}
    for name, value in messages.items():
        items = value if isinstance(value, list) else [value]
        flat[name] = [str(item) for item in items]
    return flat
