"""The mentorship marketplace web service."""

from __future__ import annotations

from typing import Any

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from config import (
    PROJECT_ROOT,
    Config,
    ConfigurationError,
    check_production_settings,
    config_from_env,
)
from marketplace.core import validation

# Every module's tasks.py; imported by web processes too, so the outbox can hand work to them by name.
TASK_MODULES = (
    "marketplace.core.tasks",
    "marketplace.bookings.tasks",
    "marketplace.payments.tasks",
    "marketplace.notifications.tasks",
)


def create_app(config: type[Config] | dict[str, Any] | None = None) -> Flask:
    """Build the app: configuration, extensions, then blueprints, in an order that reads top to bottom."""
    app = Flask(__name__)
    app.config.from_object(config_from_env())
    if isinstance(config, dict):
        app.config.update(config)
    elif config is not None:
        app.config.from_object(config)
    if app.config["APP_ENV"] == "production":
        check_production_settings(app.config)
    proxies = app.config["TRUSTED_PROXY_COUNT"]
    if proxies:
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=proxies, x_proto=proxies, x_host=proxies, x_port=proxies, x_prefix=proxies
        )
    validation.init_app(app)
    app.json.sort_keys = False  # type: ignore[attr-defined]  # flask's DefaultJSONProvider has it

    from marketplace import cli, notifications
    from marketplace.accounts import auth, passwords
    from marketplace.accounts.pages import html as account_pages_blp
    from marketplace.accounts.routes import blp as accounts_blp
    from marketplace.bookings.availability.pages import html as mentor_availability_pages_blp
    from marketplace.bookings.availability.routes import blp as slots_blp
    from marketplace.bookings.pages import html as booking_pages_blp
    from marketplace.bookings.routes import blp as bookings_blp
    from marketplace.bookings.routes import feeds as calendar_feeds_blp
    from marketplace.bookings.session_pages import html as session_pages_blp
    from marketplace.careers import receivers as career_receivers
    from marketplace.careers.routes import blp as careers_blp
    from marketplace.careers.routes import html as pages_blp
    from marketplace.core import db as transactions
    from marketplace.core import docs, errors, logs, ops, outbox_routes, request_log, security_headers
    from marketplace.core.admin_pages import html as admin_pages_blp
    from marketplace.core.celery import celery_init_app
    from marketplace.extensions import api, db, limiter, migrate
    from marketplace.mentors.admin_pages import html as vetting_pages_blp
    from marketplace.mentors.pages import html as mentor_pages_blp
    from marketplace.mentors.routes import blp as mentors_blp
    from marketplace.notifications.admin_pages import html as email_pages_blp
    from marketplace.notifications.routes import blp as notifications_blp
    from marketplace.payments import gateway, receivers
    from marketplace.payments.admin_pages import html as admin_booking_pages_blp
    from marketplace.payments.mentor_pages import html as mentor_bookings_pages_blp
    from marketplace.payments.routes import blp as payments_blp
    from marketplace.payments.routes import webhooks as webhooks_blp
    from marketplace.scheduling.routes import blp as scheduling_blp

    logs.init_app(app)
    passwords.configure(app.config["ARGON2_TIME_COST"], app.config["ARGON2_MEMORY_COST_KIB"])
    db.init_app(app)
    migrate.init_app(app, db, directory=str(PROJECT_ROOT / "migrations"))
    transactions.init_app(app)
    limiter.init_app(app)
    auth.init_app(app)
    api.init_app(app)
    errors.init_app(app)
    ops.init_app(app)
    security_headers.init_app(app)
    request_log.init_app(app)
    docs.init_app(app)
    cli.init_app(app)
    celery_init_app(app, TASK_MODULES)
    gateway.init_app(app)
    receivers.connect()
    career_receivers.connect()
    notifications.init_app(app)

    api.register_blueprint(ops.blp)
    api.register_blueprint(accounts_blp)
    api.register_blueprint(mentors_blp)
    api.register_blueprint(scheduling_blp)
    api.register_blueprint(slots_blp)
    api.register_blueprint(bookings_blp)
    api.register_blueprint(calendar_feeds_blp)
    api.register_blueprint(careers_blp)
    api.register_blueprint(pages_blp)
    api.register_blueprint(account_pages_blp)
    api.register_blueprint(mentor_pages_blp)
    api.register_blueprint(mentor_availability_pages_blp)
    api.register_blueprint(mentor_bookings_pages_blp)
    api.register_blueprint(booking_pages_blp)
    api.register_blueprint(session_pages_blp)
    api.register_blueprint(payments_blp)
    api.register_blueprint(webhooks_blp)
    api.register_blueprint(notifications_blp)
    api.register_blueprint(outbox_routes.blp)
    api.register_blueprint(admin_pages_blp)
    api.register_blueprint(vetting_pages_blp)
    api.register_blueprint(admin_booking_pages_blp)
    api.register_blueprint(email_pages_blp)
    return app


def create_app_or_exit() -> Flask:
    """For entry points (gunicorn, Celery, the CLI): a configuration error is one line on stderr, not a trace."""
    try:
        return create_app()
    except ConfigurationError as exc:
        raise SystemExit(f"error: {exc}") from None
