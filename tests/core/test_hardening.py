"""Security headers, request ids, the metrics token and the self-hosted API docs (issue 10, item 7)."""

from __future__ import annotations

import logging
import re
from html.parser import HTMLParser

import pytest
from flask import Flask
from flask.testing import FlaskClient

from config import ProductionConfig
from marketplace.core.request_log import (
    LOG_FORMAT,
    RequestIdFilter,
    SecretMaskingFilter,
    mask_secrets,
)
from tests.helpers import temporary_app

# One of each kind of answer: JSON, an error from a before_request hook, a 404, HTML, a static file, docs.
PATHS = (
    "/healthz",
    "/api/v1/me",
    "/api/v1/bookings/999999",
    "/careers",
    "/static/site.css",
    "/api/docs",
    "/api/openapi.json",
    "/no/such/page",
)


def _policy(header: str) -> dict[str, list[str]]:
    directives = (part.strip().split() for part in header.split(";") if part.strip())
    return {name: sources for name, *sources in directives}


@pytest.mark.parametrize("path", PATHS)
def test_every_response_carries_the_security_headers(client: FlaskClient, path: str) -> None:
    response = client.get(path, headers={"Authorization": "Bearer not-a-token"} if "me" in path else {})
    response.close()

    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "strict-origin-when-cross-origin"
    policy = _policy(response.headers["Content-Security-Policy"])
    assert policy["frame-ancestors"] == ["'none'"]
    assert policy["script-src"] == ["'self'"]
    assert "'unsafe-inline'" not in response.headers["Content-Security-Policy"]
    assert policy["object-src"] == ["'none'"]
    assert "Strict-Transport-Security" not in response.headers


def test_production_sends_hsts_and_the_csp_takes_extra_sources_for_stripe(database_url: str) -> None:
    assert ProductionConfig.HSTS_ENABLED is True
    extras = {
        "HSTS_ENABLED": True,
        "CSP_EXTRA_SCRIPT_SRC": "https://js.stripe.com",
        "CSP_EXTRA_FRAME_SRC": "https://js.stripe.com https://hooks.stripe.com",
        "CSP_EXTRA_CONNECT_SRC": "https://api.stripe.com",
    }
    with temporary_app(database_url, **extras) as app:
        response = app.test_client().get("/healthz")

    assert response.headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"
    policy = _policy(response.headers["Content-Security-Policy"])
    assert policy["script-src"] == ["'self'", "https://js.stripe.com"]
    assert policy["frame-src"] == ["https://js.stripe.com", "https://hooks.stripe.com"]
    assert policy["connect-src"] == ["'self'", "https://api.stripe.com"]
    assert policy["frame-ancestors"] == ["'none'"]


def test_a_sane_request_id_is_echoed(client: FlaskClient) -> None:
    for path in ("/healthz", "/api/v1/me"):
        response = client.get(path, headers={"X-Request-ID": "edge-7f3a:01.b_c"})
        assert response.headers["X-Request-ID"] == "edge-7f3a:01.b_c"


@pytest.mark.parametrize("sent", [None, "", "x" * 129, "two words", "<script>", "a\tb", "ünïcode"])
def test_a_missing_or_unsafe_request_id_is_replaced_by_a_fresh_one(
    client: FlaskClient, sent: str | None
) -> None:
    headers = {} if sent is None else {"X-Request-ID": sent}

    first = client.get("/healthz", headers=headers).headers["X-Request-ID"]
    second = client.get("/healthz", headers=headers).headers["X-Request-ID"]

    assert re.fullmatch(r"[0-9a-f]{32}", first)
    assert first != second


def test_log_lines_name_the_request_id_and_mask_secrets(app: Flask) -> None:
    lines: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(self.format(record))

    handler = Collect()
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    handler.addFilter(RequestIdFilter())
    handler.addFilter(SecretMaskingFilter())
    logger = logging.getLogger("marketplace.test_hardening")
    logger.addHandler(handler)
    try:
        with app.test_request_context("/calendar/s3cretFeedToken.ics", headers={"X-Request-ID": "req-42"}):
            logger.warning("fetching %s", "/calendar/s3cretFeedToken.ics?token=abc&x=1")
        logger.warning("outside any request, Bearer tok_123")
    finally:
        logger.removeHandler(handler)

    assert "[request_id=req-42]" in lines[0]
    assert "fetching /calendar/[masked].ics?token=[masked]&x=1" in lines[0]
    assert "[request_id=-]" in lines[1]
    assert "Bearer [masked]" in lines[1]
    assert "s3cret" not in "".join(lines)
    assert "tok_123" not in "".join(lines)


def test_masking_keeps_the_rest_of_an_access_line() -> None:
    line = '127.0.0.1 - - [x] "GET /calendar/AbC_-123.ics?tz=UTC HTTP/1.1" 200 "-" "cal" request_id=r1'

    assert mask_secrets(line) == line.replace("AbC_-123", "[masked]")
    assert mask_secrets("/careers/backend-developer?page=2") == "/careers/backend-developer?page=2"


def test_metrics_are_open_without_a_token(client: FlaskClient) -> None:
    assert client.get("/metrics").status_code == 200


def test_metrics_need_the_token_when_one_is_set(database_url: str) -> None:
    with temporary_app(database_url, METRICS_TOKEN="scrape-me-0123") as app:
        web = app.test_client()
        missing = web.get("/metrics")
        wrong = web.get("/metrics", headers={"Authorization": "Bearer scrape-me-0124"})
        other_scheme = web.get("/metrics", headers={"Authorization": "Basic scrape-me-0123"})
        right = web.get("/metrics", headers={"Authorization": "Bearer scrape-me-0123"})

    for response in (missing, wrong, other_scheme):
        assert response.status_code == 401
        assert response.get_json()["code"] == 401
        assert "http_requests_total" not in response.get_data(as_text=True)
    assert right.status_code == 200
    assert "http_requests_total" in right.get_data(as_text=True)


class _AssetRefs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.refs: list[str] = []
        self.inline_scripts: list[str] = []
        self._script_type: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        for name in ("src", "href"):
            if values.get(name):
                self.refs.append(values[name] or "")
        if tag == "script" and not values.get("src"):
            self._script_type = values.get("type") or "text/javascript"

    def handle_data(self, data: str) -> None:
        if self._script_type is not None and self._script_type != "application/json" and data.strip():
            self.inline_scripts.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._script_type = None


def test_api_docs_load_only_same_origin_assets_and_no_inline_script(client: FlaskClient) -> None:
    page = client.get("/api/docs")
    refs = _AssetRefs()
    refs.feed(page.get_data(as_text=True))

    assert page.status_code == 200
    assert not refs.inline_scripts
    assert any(ref.endswith("swagger-ui-bundle.js") for ref in refs.refs)
    assert any(ref.endswith("swagger-ui.css") for ref in refs.refs)
    for ref in refs.refs:
        assert ref.startswith("/"), ref
        assert not ref.startswith("//"), ref
        asset = client.get(ref)
        assert asset.status_code == 200, ref
        assert asset.headers["X-Content-Type-Options"] == "nosniff"
        asset.close()
