"""Domain errors raised by services; the app turns them into the one flask-smorest error shape."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from flask import Flask, Response, jsonify
from werkzeug.exceptions import HTTPException

VALIDATION_MESSAGE = "The request is not valid: `errors` says what to change."


class DomainError(Exception):
    status_code = HTTPStatus.BAD_REQUEST

    def __init__(self, message: str, errors: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.errors = errors


class BadRequest(DomainError):
    status_code = HTTPStatus.BAD_REQUEST


class Unauthorized(DomainError):
    status_code = HTTPStatus.UNAUTHORIZED


class NotFound(DomainError):
    status_code = HTTPStatus.NOT_FOUND


class Forbidden(DomainError):
    status_code = HTTPStatus.FORBIDDEN


class Conflict(DomainError):
    status_code = HTTPStatus.CONFLICT


class Unprocessable(DomainError):
    status_code = HTTPStatus.UNPROCESSABLE_ENTITY


class TooManyRequests(DomainError):
    status_code = HTTPStatus.TOO_MANY_REQUESTS


class ServiceUnavailable(DomainError):
    """A dependency (the payment provider, the database) is out of reach for now: answered with `Retry-After`."""

    status_code = HTTPStatus.SERVICE_UNAVAILABLE

    def __init__(
        self, message: str, errors: dict[str, Any] | None = None, retry_after_seconds: int = 5
    ) -> None:
        super().__init__(message, errors)
        self.retry_after_seconds = retry_after_seconds


def error_body(status: int, message: str, errors: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"code": status, "status": HTTPStatus(status).phrase, "message": message}
    if errors:
        body["errors"] = errors
    return body


def error_response(status: int, message: str, errors: dict[str, Any] | None = None) -> Response:
    response = jsonify(error_body(status, message, errors))
    response.status_code = status
    return response


def http_error_response(error: HTTPException) -> Response:
    """Any HTTP error, werkzeug's own (404, 405, 413, 415 ...) and webargs' 422, in the one error shape.

    Replaces flask-smorest's handler, whose body has no `message` for a validation error and which drops
    the exception's headers (`Allow` on a 405).
    """
    status = error.code or HTTPStatus.INTERNAL_SERVER_ERROR
    data: dict[str, Any] = getattr(error, "data", None) or {}
    errors = data.get("errors") or data.get("messages")
    message = data.get("message") or (VALIDATION_MESSAGE if errors else error.description)
    response = error_response(status, message or HTTPStatus(status).phrase, errors)
    for name, value in error.get_headers():
        if name.lower() != "content-type":
            response.headers[name] = value
    response.headers.update(data.get("headers") or {})
    return response


def init_app(app: Flask) -> None:
    """Call after `api.init_app`, so these handlers replace flask-smorest's."""

    @app.errorhandler(DomainError)
    def handle_domain_error(error: DomainError) -> Response:
        response = error_response(int(error.status_code), error.message, error.errors)
        if isinstance(error, ServiceUnavailable):
            response.headers["Retry-After"] = str(error.retry_after_seconds)
        return response

    app.register_error_handler(HTTPException, http_error_response)
