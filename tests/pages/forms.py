"""The page forms sent without a browser, as a browser sends them: with the CSRF token their page carried, and
the errors read back from next to each field. Shared by the page tests, so that each one posts a form and
reads its answer the same way."""

from __future__ import annotations

import re
from html import unescape

from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from tests.factories import PASSWORD

# The CSRF token a page form carries, in its hidden field.
CSRF_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')
# The error the form macro writes after a field, its id the field's name followed by "-error".
_FIELD_ERROR = re.compile(r'<p class="field-error" id="([a-z0-9_-]+)-error">(.*?)</p>', re.S)


def form_token(client: FlaskClient, path: str) -> str:
    """The CSRF token of the form on the page at `path`, as this client's session has it."""
    response = client.get(path)
    assert response.status_code == 200, response.status_code
    match = CSRF_TOKEN.search(response.get_data(as_text=True))
    assert match is not None
    return match.group(1)


def post_form(
    client: FlaskClient, path: str, data: dict[str, str], token_from: str | None = None
) -> TestResponse:
    """Post a page form as a browser does: with the token its page carried."""
    return client.post(path, data={"csrf_token": form_token(client, token_from or path), **data})


def field_errors(response: TestResponse) -> dict[str, str]:
    """Each refused field's name and the message shown next to it, as text."""
    html = response.get_data(as_text=True)
    return {name: unescape(re.sub(r"<[^>]+>", "", text)).strip() for name, text in _FIELD_ERROR.findall(html)}


def sign_in_with_form(client: FlaskClient, email: str, password: str = PASSWORD) -> None:
    """Signed in through the sign-in page, so the client holds the session cookie the pages use."""
    response = post_form(client, "/login", {"email": email, "password": password})
    assert response.status_code == 303, response.get_data(as_text=True)[:500]
