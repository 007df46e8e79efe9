"""Settings read from the environment, so one build runs in every environment (twelve-factor).

Parsed by two small helpers rather than environs or pydantic-settings: every setting is a plain string, int or
on/off flag, and a library would add a dependency and change what an unrecognised flag value means.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent
INSTANCE_DIR = Path(os.environ.get("INSTANCE_DIR", PROJECT_ROOT / "instance"))


def _bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def normalize_database_url(url: str) -> str:
    """Hosting platforms hand out `postgres://` URLs; SQLAlchemy needs the psycopg 3 driver named."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


# Keys that ship in this repository: anyone can sign a session cookie with them, so production refuses them.
PUBLIC_SECRET_KEYS = frozenset({"dev-only-not-secret", "testing"})
MIN_SECRET_KEY_LENGTH = 32


class ConfigurationError(RuntimeError):
    """The settings cannot run this environment safely; the message names every setting at fault."""


class Config:
    APP_ENV = "development"
    SECRET_KEY = os.environ.get("SECRET_KEY", "dev-only-not-secret")
    SQLALCHEMY_DATABASE_URI = normalize_database_url(
        os.environ.get("DATABASE_URL", f"sqlite:///{INSTANCE_DIR / 'marketplace.db'}")
    )
    SQLALCHEMY_ENGINE_OPTIONS: dict = {}
    # Pooled connections idle at least this long are pinged before use (core.db.ping_idle_connections).
    DATABASE_PING_AFTER_IDLE_SECONDS = float(os.environ.get("DATABASE_PING_AFTER_IDLE_SECONDS", "1"))
    # A unit of work (a request, a task, a sweep's item) that deadlocks or fails to serialize runs again, up to
    # this many attempts in all; a request that still fails, or finds the database out of reach, answers 503
    # with this Retry-After. A PostgreSQL that does not answer fails a connection attempt after the timeout.
    DATABASE_RETRY_ATTEMPTS = _int("DATABASE_RETRY_ATTEMPTS", 4)
    DATABASE_RETRY_AFTER_SECONDS = _int("DATABASE_RETRY_AFTER_SECONDS", 2)
    DATABASE_CONNECT_TIMEOUT_SECONDS = _int("DATABASE_CONNECT_TIMEOUT_SECONDS", 3)
    REDIS_URL = os.environ.get("REDIS_URL") or None

    # Celery: Redis when configured, else SQLAlchemy transport on a SQLite file so the embedded default
    # needs no broker server.
    CELERY_BROKER_URL = (
        os.environ.get("CELERY_BROKER_URL")
        or REDIS_URL
        or (f"sqla+sqlite:///{INSTANCE_DIR / 'celery-broker.db'}")
    )

    # How often workers poll the embedded default's broker table (the SQLAlchemy transport; kombu's default
    # of 1 s drains about 2 tasks a second). Not used with Redis, which pushes.
    CELERY_BROKER_POLLING_INTERVAL = float(os.environ.get("CELERY_BROKER_POLLING_INTERVAL", "0.01"))

    # Redis redelivers a task unacknowledged this long (its worker died); longer than any retry delay.
    CELERY_VISIBILITY_TIMEOUT = _int("CELERY_VISIBILITY_TIMEOUT", 3600)
    # An outbox row handed to the broker and not completed by its consumer within this long is sent again
    # (the wait doubles per delivery); after OUTBOX_MAX_ATTEMPTS deliveries it is parked for an admin.
    OUTBOX_REDELIVER_AFTER_SECONDS = _int("OUTBOX_REDELIVER_AFTER_SECONDS", 600)
    OUTBOX_MAX_ATTEMPTS = _int("OUTBOX_MAX_ATTEMPTS", 6)
    CELERY_BEAT_SCHEDULE_FILE = os.environ.get(
        "CELERY_BEAT_SCHEDULE_FILE", str(INSTANCE_DIR / "celerybeat-schedule")
    )
    # With REDIS_URL set, beat keeps its schedule and a lock in Redis (celery-redbeat): a standby beat waits
    # beside the active one and takes over within this many seconds after the active one dies.
    BEAT_LOCK_TIMEOUT_SECONDS = _int("BEAT_LOCK_TIMEOUT_SECONDS", 30)

    # Reverse proxies in front of the app (nginx, a load balancer) whose X-Forwarded-* headers are trusted:
    # 0 trusts none, so a client cannot pick its own address for rate limits.
    TRUSTED_PROXY_COUNT = _int("TRUSTED_PROXY_COUNT", 0)
    # Larger request bodies are refused with 413 before they are read.
    MAX_CONTENT_LENGTH = _int("MAX_CONTENT_LENGTH", 1024 * 1024)

    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    SESSION_COOKIE_SECURE = _bool("SESSION_COOKIE_SECURE", False)

    RATELIMIT_STORAGE_URI = os.environ.get("RATELIMIT_STORAGE_URI") or REDIS_URL or "memory://"
    RATELIMIT_HEADERS_ENABLED = True
    # With the storage (Redis) unreachable, limits are counted in this process's memory until it answers
    # again, and an error the fallback cannot absorb lets the request through rather than answering 500.
    RATELIMIT_IN_MEMORY_FALLBACK_ENABLED = True
    RATELIMIT_SWALLOW_ERRORS = True
    RATELIMIT_STORAGE_OPTIONS = {"socket_connect_timeout": 0.5, "socket_timeout": 0.5}
    # Failed sign-ins (login and token issuing together) per client address, and per account (any address).
    LOGIN_RATE_LIMIT = os.environ.get("LOGIN_RATE_LIMIT", "10 per minute; 50 per hour")
    LOGIN_ACCOUNT_RATE_LIMIT = os.environ.get(
        "LOGIN_ACCOUNT_RATE_LIMIT", "5 per minute; 20 per hour; 50 per day"
    )
    REGISTER_RATE_LIMIT = os.environ.get("REGISTER_RATE_LIMIT", "5 per minute; 20 per hour")
    # Per client address on each of: reset requests, reset confirmations, email verifications.
    PASSWORD_RESET_RATE_LIMIT = os.environ.get("PASSWORD_RESET_RATE_LIMIT", "5 per minute; 20 per hour")
    # Reset requests per email address, so nobody's mailbox can be flooded with reset mails.
    PASSWORD_RESET_ACCOUNT_RATE_LIMIT = os.environ.get("PASSWORD_RESET_ACCOUNT_RATE_LIMIT", "3 per hour")

    API_TOKEN_TTL_DAYS = _int("API_TOKEN_TTL_DAYS", 30)
    # A token's last_used_at is written at most once per this many minutes (a write per request would not do).
    API_TOKEN_USE_RESOLUTION_MINUTES = _int("API_TOKEN_USE_RESOLUTION_MINUTES", 5)
    # A cookie session ends on logout, on a password change elsewhere, or this long after login.
    SESSION_LIFETIME_DAYS = _int("SESSION_LIFETIME_DAYS", 14)
    PASSWORD_RESET_LINK_MINUTES = _int("PASSWORD_RESET_LINK_MINUTES", 60)
    EMAIL_VERIFICATION_LINK_HOURS = _int("EMAIL_VERIFICATION_LINK_HOURS", 72)
    # Where links in emails point (no request to take the host from when a worker renders them).
    PUBLIC_BASE_URL = os.environ.get("PUBLIC_BASE_URL", "http://localhost:8000").rstrip("/")

    API_TITLE = "Mentor marketplace API"
    API_VERSION = "v1"
    OPENAPI_VERSION = "3.0.3"
    OPENAPI_URL_PREFIX = "/api"
    OPENAPI_JSON_PATH = "openapi.json"
    OPENAPI_SWAGGER_UI_PATH = "/docs"
    # Served by the app itself from the flask-swagger-ui package (marketplace/core/docs.py): no CDN.
    OPENAPI_SWAGGER_UI_URL = os.environ.get("OPENAPI_SWAGGER_UI_URL", "/api/docs/swagger-ui/")

    # Security headers (marketplace/core/security_headers.py). The extras are space-separated CSP sources,
    # e.g. for Stripe.js: script and frame `https://js.stripe.com`, connect `https://api.stripe.com`.
    CSP_EXTRA_SCRIPT_SRC = os.environ.get("CSP_EXTRA_SCRIPT_SRC", "")
    CSP_EXTRA_FRAME_SRC = os.environ.get("CSP_EXTRA_FRAME_SRC", "")
    CSP_EXTRA_CONNECT_SRC = os.environ.get("CSP_EXTRA_CONNECT_SRC", "")
    REFERRER_POLICY = os.environ.get("REFERRER_POLICY", "strict-origin-when-cross-origin")
    HSTS_ENABLED = _bool("HSTS_ENABLED", False)
    HSTS_MAX_AGE_SECONDS = _int("HSTS_MAX_AGE_SECONDS", 31536000)
    # When set, GET /metrics needs `Authorization: Bearer <METRICS_TOKEN>`.
    METRICS_TOKEN = os.environ.get("METRICS_TOKEN", "")

    STRIPE_SECRET_KEY = os.environ.get("STRIPE_SECRET_KEY", "")
    STRIPE_PUBLISHABLE_KEY = os.environ.get("STRIPE_PUBLISHABLE_KEY", "")
    STRIPE_WEBHOOK_SECRET = os.environ.get("STRIPE_WEBHOOK_SECRET", "")
    STRIPE_API_BASE = os.environ.get("STRIPE_API_BASE", "")
    # Where the checkout page loads Stripe.js from; its origin (and no other host) is allowed in that page's
    # CSP. `make run` and the tests point it at the stand-in's copy (`<stand-in>/js.stripe.com/v3/`). Stripe's
    # own also calls `https://api.stripe.com`: add that with CSP_EXTRA_CONNECT_SRC in production.
    STRIPE_JS_URL = os.environ.get("STRIPE_JS_URL", "https://js.stripe.com/v3/")
    PLATFORM_FEE_PERCENT = _int("PLATFORM_FEE_PERCENT", 20)
    # A completed session is transferred to its mentor this long after its end (the no-show report window).
    PAYOUT_DELAY_HOURS = _int("PAYOUT_DELAY_HOURS", 24)
    STRIPE_TIMEOUT_SECONDS = _int("STRIPE_TIMEOUT_SECONDS", 10)
    # Stripe calls a request waits for (a new hold's PaymentIntent, a retried payment) get this shorter
    # timeout and no retry; workers keep STRIPE_TIMEOUT_SECONDS and STRIPE_MAX_NETWORK_RETRIES.
    STRIPE_REQUEST_TIMEOUT_SECONDS = _int("STRIPE_REQUEST_TIMEOUT_SECONDS", 5)
    STRIPE_MAX_NETWORK_RETRIES = _int("STRIPE_MAX_NETWORK_RETRIES", 1)
    # Written into the metadata of every PaymentIntent opened here; events about intents without it are
    # ignored. Deployments sharing one Stripe account need different values.
    PAYMENTS_DEPLOYMENT_ID = os.environ.get("PAYMENTS_DEPLOYMENT_ID", "mentor-marketplace")
    # A webhook event that fails this many times is parked for an admin; retries wait
    # PAYMENT_EVENT_RETRY_SECONDS, doubling after each failure.
    PAYMENT_EVENT_MAX_ATTEMPTS = _int("PAYMENT_EVENT_MAX_ATTEMPTS", 5)
    PAYMENT_EVENT_RETRY_SECONDS = _int("PAYMENT_EVENT_RETRY_SECONDS", 60)

    BOOKING_HOLD_MINUTES = _int("BOOKING_HOLD_MINUTES", 15)
    MAX_UNPAID_HOLDS = _int("MAX_UNPAID_HOLDS", 3)
    # Holds a learner may make (counted when made), and how long a released slot stays closed to its learner.
    HOLD_RATE_LIMIT = os.environ.get("HOLD_RATE_LIMIT", "10 per hour")
    HOLD_REHOLD_COOLDOWN_MINUTES = _int("HOLD_REHOLD_COOLDOWN_MINUTES", 10)
    CANCELLATION_FULL_REFUND_HOURS = _int("CANCELLATION_FULL_REFUND_HOURS", 24)
    # How long a mentor who confirms requests has to answer one (capped at 6 days: card authorizations lapse).
    CONFIRMATION_WINDOW_HOURS = _int("CONFIRMATION_WINDOW_HOURS", 48)
    # Either party may report the other absent from the start until this long after the end; a session with
    # no report becomes completed then. Mentor no-shows counted to suspend: this many within that many days.
    NO_SHOW_REPORT_HOURS = _int("NO_SHOW_REPORT_HOURS", 24)
    NO_SHOW_STRIKES_TO_SUSPEND = _int("NO_SHOW_STRIKES_TO_SUSPEND", 3)
    NO_SHOW_STRIKE_DAYS = _int("NO_SHOW_STRIKE_DAYS", 90)
    # The highest hourly rate a mentor may ask, in US dollars (other currencies: roughly as much).
    MENTOR_MAX_HOURLY_PRICE_USD = _int("MENTOR_MAX_HOURLY_PRICE_USD", 1000)

    MAIL_SERVER = os.environ.get("MAIL_SERVER", "")
    MAIL_PORT = _int("MAIL_PORT", 25)
    MAIL_USE_TLS = _bool("MAIL_USE_TLS", False)
    MAIL_USERNAME = os.environ.get("MAIL_USERNAME", "")
    MAIL_PASSWORD = os.environ.get("MAIL_PASSWORD", "")
    MAIL_DEFAULT_SENDER = os.environ.get("MAIL_DEFAULT_SENDER", "Mentor marketplace <no-reply@localhost>")
    # smtp | console (logged) | file (.eml files in MAIL_FILE_DIR); empty: smtp when MAIL_SERVER is set, else
    # file (console in testing apps). Read at send time, so it follows MAIL_SERVER.
    MAIL_BACKEND = os.environ.get("MAIL_BACKEND", "")
    MAIL_FILE_DIR = os.environ.get("MAIL_FILE_DIR", str(INSTANCE_DIR / "mail"))
    MAIL_TIMEOUT_SECONDS = _int("MAIL_TIMEOUT_SECONDS", 10)
    # A claimed email not marked sent by then is taken over by another attempt: longer than a task may run.
    MAIL_CLAIM_LEASE_SECONDS = _int("MAIL_CLAIM_LEASE_SECONDS", 120)
    REMINDER_OFFSETS_MINUTES = os.environ.get("REMINDER_OFFSETS_MINUTES", "1440,60")
    REMINDER_BATCH_SIZE = _int("REMINDER_BATCH_SIZE", 500)

    # Records at this level and above are logged (DEBUG, INFO, WARNING, ERROR, CRITICAL), one line each on
    # stderr naming time, level, logger and request id; LOG_JSON makes each line a JSON object.
    LOG_LEVEL = os.environ.get("LOG_LEVEL", "INFO")
    LOG_JSON = _bool("LOG_JSON", False)

    SQLITE_BUSY_TIMEOUT_SECONDS = _int("SQLITE_BUSY_TIMEOUT_SECONDS", 30)

    ARGON2_TIME_COST = _int("ARGON2_TIME_COST", 3)
    ARGON2_MEMORY_COST_KIB = _int("ARGON2_MEMORY_COST_KIB", 65536)


class DevelopmentConfig(Config):
    DEBUG = False


class TestingConfig(Config):
    APP_ENV = "testing"
    TESTING = True
    SECRET_KEY = "testing"
    RATELIMIT_STORAGE_URI = "memory://"
    LOGIN_RATE_LIMIT = "5 per minute"
    ARGON2_TIME_COST = 1
    ARGON2_MEMORY_COST_KIB = 1024


class ProductionConfig(Config):
    APP_ENV = "production"
    # No default: a key anyone could read in this repository would let them forge the admin's cookie.
    SECRET_KEY = os.environ.get("SECRET_KEY", "")
    SESSION_COOKIE_SECURE = _bool("SESSION_COOKIE_SECURE", True)
    PREFERRED_URL_SCHEME = "https"
    HSTS_ENABLED = _bool("HSTS_ENABLED", True)
    # No default: links in reset and verification mails would point at localhost.
    PUBLIC_BASE_URL = os.environ.get("PUBLIC_BASE_URL", "").rstrip("/")


def production_problems(settings: Mapping[str, Any]) -> list[str]:
    """What keeps `settings` from running in production, one short phrase per setting."""
    problems = []
    secret_key = settings.get("SECRET_KEY") or ""
    if not secret_key:
        problems.append("SECRET_KEY is not set")
    elif secret_key in PUBLIC_SECRET_KEYS:
        problems.append("SECRET_KEY is a public default")
    elif len(secret_key) < MIN_SECRET_KEY_LENGTH:
        problems.append(f"SECRET_KEY is shorter than {MIN_SECRET_KEY_LENGTH} characters")
    if not str(settings.get("SQLALCHEMY_DATABASE_URI", "")).startswith("postgresql"):
        problems.append("DATABASE_URL is not a PostgreSQL URL")
    if not str(settings.get("PUBLIC_BASE_URL", "")).startswith("https://"):
        problems.append("PUBLIC_BASE_URL is not an https:// URL")
    problems.extend(
        f"{name} is not set"
        for name in (
            "REDIS_URL",
            "STRIPE_SECRET_KEY",
            "STRIPE_PUBLISHABLE_KEY",
            "STRIPE_WEBHOOK_SECRET",
            "MAIL_SERVER",
        )
        if not settings.get(name)
    )
    return problems


def check_production_settings(settings: Mapping[str, Any]) -> None:
    problems = production_problems(settings)
    if problems:
        raise ConfigurationError("refusing to start in production: " + "; ".join(problems) + ".")


CONFIGS: dict[str, type[Config]] = {
    "development": DevelopmentConfig,
    "testing": TestingConfig,
    "production": ProductionConfig,
}


def config_from_env() -> type[Config]:
    name = os.environ.get("APP_ENV", "development")
    if name not in CONFIGS:
        raise ConfigurationError(f"APP_ENV must be one of {', '.join(CONFIGS)}, not {name!r}.")
    return CONFIGS[name]
