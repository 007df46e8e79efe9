"""Request ids and log hygiene: every response and log line carries an `X-Request-ID`, and secrets that
travel in URLs (calendar-feed tokens, token query parameters, Bearer credentials) never reach a log.
"""

from __future__ import annotations

import logging
import re
import uuid

from flask import Flask, Response, has_request_context, request

REQUEST_ID_HEADER = "X-Request-ID"
# Kept in the WSGI environ, which belongs to one request (an app context, and so `g`, may outlive it).
_ENVIRON_KEY = "marketplace.request_id"
# A client's id is echoed only when it is short and made of characters that cannot forge a log line.
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
MASK = "[masked]"
# Each pattern keeps its first group and replaces the secret after it.
SECRET_PATTERNS = (
    # The calendar feed's path is its credential: /calendar/<token>.ics (bookings' feeds blueprint).
    re.compile(r"(/calendar/)[^/?#\s\"]+?(?=\.ics\b|[?#\s\"]|$)"),
    re.compile(
        r"([?&](?:token|secret|key|signature|password|api_key|access_token)=)[^&#\s\"]*", re.IGNORECASE
    ),
    re.compile(r"(\bBearer\s+)[^\s\"]+", re.IGNORECASE),
)
LOG_FORMAT = "[%(asctime)s] %(levelname)s %(name)s [request_id=%(request_id)s]: %(message)s"


def mask_secrets(text: str) -> str:
    for pattern in SECRET_PATTERNS:
        text = pattern.sub(lambda match: match.group(1) + MASK, text)
    return text


def current_request_id() -> str:
    """The id of the request being served: the client's when it is sane, else a fresh one."""
    request_id = request.environ.get(_ENVIRON_KEY)
    if request_id is None:
        sent = request.headers.get(REQUEST_ID_HEADER, "")
        request_id = sent if _SANE_REQUEST_ID.fullmatch(sent) else uuid.uuid4().hex
        request.environ[_ENVIRON_KEY] = request_id
    return request_id


class RequestIdFilter(logging.Filter):
    """Adds `request_id` to every record ("-" outside a request) so formats can name it."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = current_request_id() if has_request_context() else "-"
        return True


class SecretMaskingFilter(logging.Filter):
    """Renders the message once and masks the secrets in it (and in a traceback's text)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask_secrets(message)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask_secrets(record.exc_text)
        return True


def _add_filters(target: logging.Logger | logging.Handler) -> None:
    for kind in (RequestIdFilter, SecretMaskingFilter):
        if not any(isinstance(existing, kind) for existing in target.filters):
            target.addFilter(kind())


def init_app(app: Flask) -> None:
    """Echo or make the request id on every response; filter the app's log handlers (and werkzeug's
    request lines in development). The root handler and its format are core.logs'."""

    @app.after_request
    def _request_id_header(response: Response) -> Response:
        response.headers[REQUEST_ID_HEADER] = current_request_id()
        return response

    for handler in app.logger.handlers:
        _add_filters(handler)
    _add_filters(logging.getLogger("werkzeug"))
