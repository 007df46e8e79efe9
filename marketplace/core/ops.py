"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import hmac
import os
import time
from typing import Any

import redis
from flask import Flask, Response, current_app, g, request
from flask.views import MethodView
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from marketplace.core.api import METRICS_SCHEME, Blueprint
from marketplace.core.errors import Unauthorized
from marketplace.core.validation import Schema, fields
from marketplace.extensions import db

blp = Blueprint("ops", __name__, description="Health and metrics")

REQUESTS = Counter("http_requests_total", "HTTP requests", ["method", "endpoint", "status"])
LATENCY = Histogram("http_request_duration_seconds", "HTTP request latency", ["endpoint"])


class StatusSchema(Schema):
    status = fields.String()
    checks = fields.Dict(keys=fields.String(), values=fields.String())


@blp.route("/healthz")
class Health(MethodView):
    @blp.response(200, StatusSchema)
    def get(self) -> dict[str, str]:
        """The process lives."""
        return {"status": "ok"}


def _check_database() -> str:
    try:
        db.session.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        db.session.rollback()
        return f"error: {exc.__class__.__name__}"
    return "ok"


def _check_redis(url: str) -> str:
    client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
    try:
        client.ping()
    except redis.RedisError as exc:
        return f"error: {exc.__class__.__name__}"
    finally:
        client.close()
    return "ok"


@blp.route("/readyz")
class Ready(MethodView):
    @blp.response(200, StatusSchema)
    @blp.alt_response(503, schema=StatusSchema, description="A dependency does not answer")
    def get(self) -> tuple[dict[str, Any], int]:
        """The database, and Redis where configured, answer."""
        checks = {"database": _check_database()}
        if current_app.config.get("REDIS_URL"):
            checks["redis"] = _check_redis(current_app.config["REDIS_URL"])
        healthy = all(value == "ok" for value in checks.values())
        return {"status": "ok" if healthy else "unavailable", "checks": checks}, 200 if healthy else 503


def _require_metrics_token() -> None:
    """With METRICS_TOKEN set, only `Authorization: Bearer <METRICS_TOKEN>` may scrape (constant-time)."""
    expected = current_app.config.get("METRICS_TOKEN")
    if not expected:
        return
    scheme, _, sent = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(sent.strip().encode(), expected.encode()):
        raise Unauthorized("The metrics token is missing or wrong.")


@blp.route("/metrics")
class Metrics(MethodView):
    @blp.response(
        200,
        schema={"type": "string"},
        content_type="text/plain",
        description="Prometheus text exposition format (`text/plain; version=...`)",
    )
    @blp.alt_response(401, description="METRICS_TOKEN is set and the request does not carry it")
    @blp.doc(security=[{}, {METRICS_SCHEME: []}])
    def get(self) -> Response:
        """Prometheus text format; aggregated across gunicorn workers when PROMETHEUS_MULTIPROC_DIR is set."""
        _require_metrics_token()
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]  # unannotated upstream
            payload = generate_latest(registry)
        else:
            payload = generate_latest()
        return Response(payload, mimetype=CONTENT_TYPE_LATEST)


def init_app(app: Flask) -> None:
    @app.before_request
    def _start_timer() -> None:
        g._request_started = time.perf_counter()

    @app.after_request
    def _record(response: Response) -> Response:
        endpoint = request.endpoint or "unmatched"
        REQUESTS.labels(request.method, endpoint, str(response.status_code)).inc()
        started = g.get("_request_started")
        if started is not None:
            LATENCY.labels(endpoint).observe(time.perf_counter() - started)
        return response
