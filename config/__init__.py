"""Settings read from the environment, so one build runs in every environment (twelve-factor)."""

from __future__ import annotations

import os
from pathlib import Path

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


class Config:
    SECRET_KEY = os.environ.get("SECRET_KEY", "dev-only-not-secret")
    SQLALCHEMY_DATABASE_URI = normalize_database_url(
        os.environ.get("DATABASE_URL", f"sqlite:///{INSTANCE_DIR / 'marketplace.db'}")
    )
    SQLALCHEMY_ENGINE_OPTIONS: dict = {}
    # Pooled connections idle at least this long are pinged before use (core.db.ping_idle_connections).
    DATABASE_PING_AFTER_IDLE_SECONDS = float(os.environ.get("DATABASE_PING_AFTER_IDLE_SECONDS", "1"))
    REDIS_URL = os.environ.get("REDIS_URL") or None

    # Celery: Redis when configured, else SQLAlchemy transport on a SQLite file so the embedded default
    # needs no broker server.
    CELERY_BROKER_URL = (
        os.environ.get("CELERY_BROKER_URL")
        or REDIS_URL
        or (f"sqla+sqlite:///{INSTANCE_DIR / 'celery-broker.db'}")
    )

    # Redis redelivers a task unacknowledged this long (its worker died); longer than any retry delay.
    CELERY_VISIBILITY_TIMEOUT = _int("CELERY_VISIBILITY_TIMEOUT", 3600)
    CELERY_BEAT_SCHEDULE_FILE = os.environ.get(
        "CELERY_BEAT_SCHEDULE_FILE", str(INSTANCE_DIR / "celerybeat-schedule")
    )

    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    SESSION_COOKIE_SECURE = _bool("SESSION_COOKIE_SECURE", False)

    RATELIMIT_STORAGE_URI = os.environ.get("RATELIMIT_STORAGE_URI") or REDIS_URL or "memory://"
    RATELIMIT_HEADERS_ENABLED = True
    LOGIN_RATE_LIMIT = os.environ.get("LOGIN_RATE_LIMIT", "10 per minute")

    API_TITLE = "Mentor marketplace API"
    API_VERSION = "v1"
    OPENAPI_VERSION = "3.0.3"
    OPENAPI_URL_PREFIX = "/api"
    OPENAPI_JSON_PATH = "openapi.json"
    OPENAPI_SWAGGER_UI_PATH = "/docs"
    OPENAPI_SWAGGER_UI_URL = os.environ.get(
        "OPENAPI_SWAGGER_UI_URL", "https://cdn.jsdelivr.net/npm/swagger-ui-dist/"
    )

    STRIPE_SECRET_KEY = os.environ.get("STRIPE_SECRET_KEY", "")
    STRIPE_PUBLISHABLE_KEY = os.environ.get("STRIPE_PUBLISHABLE_KEY", "")
    STRIPE_WEBHOOK_SECRET = os.environ.get("STRIPE_WEBHOOK_SECRET", "")
    STRIPE_API_BASE = os.environ.get("STRIPE_API_BASE", "")
    PLATFORM_FEE_PERCENT = _int("PLATFORM_FEE_PERCENT", 20)
    STRIPE_TIMEOUT_SECONDS = _int("STRIPE_TIMEOUT_SECONDS", 10)
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
    COMPLETION_GRACE_MINUTES = _int("COMPLETION_GRACE_MINUTES", 120)

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

    SQLITE_BUSY_TIMEOUT_SECONDS = _int("SQLITE_BUSY_TIMEOUT_SECONDS", 30)

    ARGON2_TIME_COST = _int("ARGON2_TIME_COST", 3)
    ARGON2_MEMORY_COST_KIB = _int("ARGON2_MEMORY_COST_KIB", 65536)


class DevelopmentConfig(Config):
    DEBUG = False


class TestingConfig(Config):
    TESTING = True
    SECRET_KEY = "testing"
    RATELIMIT_STORAGE_URI = "memory://"
    LOGIN_RATE_LIMIT = "5 per minute"
    ARGON2_TIME_COST = 1
    ARGON2_MEMORY_COST_KIB = 1024


class ProductionConfig(Config):
    SESSION_COOKIE_SECURE = _bool("SESSION_COOKIE_SECURE", True)

    @classmethod
    def validate(cls) -> None:
        if Config.__dict__["SECRET_KEY"] == cls.SECRET_KEY and "SECRET_KEY" not in os.environ:
            raise RuntimeError("SECRET_KEY must be set in production")


CONFIGS: dict[str, type[Config]] = {
    "development": DevelopmentConfig,
    "testing": TestingConfig,
    "production": ProductionConfig,
}


def config_from_env() -> type[Config]:
    return CONFIGS[os.environ.get("APP_ENV", "development")]
