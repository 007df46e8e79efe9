"""Domain errors raised by services; the app turns them into the one flask-smorest error shape."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from flask import Flask, Response, jsonify


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
    status_code = HTTPStatus.SERVICE_UNAVAILABLE


def error_body(status: int, message: str, errors: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"code": status, "status": HTTPStatus(status).phrase, "message": message}
    if errors:
        body["errors"] = errors
    return body


def error_response(status: int, message: str, errors: dict[str, Any] | None = None) -> Response:
    response = jsonify(error_body(status, message, errors))
    response.status_code = status
    return response


def init_app(app: Flask) -> None:
    @app.errorhandler(DomainError)
    def handle_domain_error(error: DomainError) -> Response:
        return error_response(int(error.status_code), error.message, error.errors)
