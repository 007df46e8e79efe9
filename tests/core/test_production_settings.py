"""Production fails closed: no start without its secrets, and no cookie signed with a key from this repository."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from flask import Flask
from flask.sessions import SecureCookieSessionInterface
from flask_migrate import upgrade

from config import PROJECT_ROOT, PUBLIC_SECRET_KEYS, ConfigurationError, production_problems
from marketplace import create_app
from marketplace.accounts.service import create_admin
from marketplace.extensions import db
from tests.helpers import temporary_app
from tests.support.databases import fresh_database

STRONG_KEY = "k" * 48
PRODUCTION_SETTINGS = {
    "APP_ENV": "production",
    "SECRET_KEY": STRONG_KEY,
    "SQLALCHEMY_DATABASE_URI": "postgresql+psycopg://app@db.internal/marketplace",
    "REDIS_URL": "redis://cache.internal:6379/0",
    "STRIPE_SECRET_KEY": "sk_live_x",
    "STRIPE_PUBLISHABLE_KEY": "pk_live_x",
    "STRIPE_WEBHOOK_SECRET": "whsec_x",
    "MAIL_SERVER": "smtp.internal",
    "PUBLIC_BASE_URL": "https://mentors.example",
}
REQUIRED = ("SECRET_KEY", "REDIS_URL", "STRIPE_SECRET_KEY", "STRIPE_PUBLISHABLE_KEY", "STRIPE_WEBHOOK_SECRET")


def test_complete_production_settings_have_no_problem() -> None:
    assert production_problems(PRODUCTION_SETTINGS) == []


@pytest.mark.parametrize("missing", [*REQUIRED, "MAIL_SERVER"])
def test_each_missing_secret_is_named(missing: str) -> None:
    settings = {**PRODUCTION_SETTINGS, missing: ""}

    assert production_problems(settings) == [f"{missing} is not set"]


@pytest.mark.parametrize("key", sorted(PUBLIC_SECRET_KEYS))
def test_a_secret_key_from_this_repository_is_refused(key: str) -> None:
    assert production_problems({**PRODUCTION_SETTINGS, "SECRET_KEY": key}) == [
        "SECRET_KEY is a public default"
    ]


def test_a_short_secret_key_a_sqlite_database_and_a_plain_http_site_are_refused() -> None:
    problems = production_problems(
        {
            **PRODUCTION_SETTINGS,
            "SECRET_KEY": "short",
            "SQLALCHEMY_DATABASE_URI": "sqlite:///x.db",
            "PUBLIC_BASE_URL": "http://mentors.example",
        }
    )

    assert problems == [
        "SECRET_KEY is shorter than 32 characters",
        "DATABASE_URL is not a PostgreSQL URL",
        "PUBLIC_BASE_URL is not an https:// URL",
    ]


def test_create_app_refuses_production_without_its_secrets() -> None:
    with pytest.raises(ConfigurationError, match=r"SECRET_KEY is not set.*REDIS_URL is not set"):
        create_app({**PRODUCTION_SETTINGS, "SECRET_KEY": "", "REDIS_URL": None})


@pytest.mark.parametrize("entry_point", ["import wsgi", "import workers"])
def test_entry_points_exit_with_one_line_naming_what_is_missing(entry_point: str, tmp_path: Path) -> None:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("STRIPE_", "MAIL_", "SECRET_KEY", "REDIS_URL", "DATABASE_URL"))
    }
    env.update({"APP_ENV": "production", "INSTANCE_DIR": str(tmp_path)})

    result = subprocess.run(
        [sys.executable, "-c", entry_point],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: refusing to start in production: SECRET_KEY is not set;")
    assert "DATABASE_URL is not a PostgreSQL URL" in lines[0]
    assert "STRIPE_WEBHOOK_SECRET is not set" in lines[0]


def test_unknown_app_env_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APP_ENV", "prod")

    with pytest.raises(ConfigurationError, match="APP_ENV must be one of"):
        create_app()


def _resign(cookie: str, real_key: str, forger_key: str) -> str:
    """The same session payload, signed with another key: what a forger who knows that key can send."""
    interface = SecureCookieSessionInterface()
    real, forged = Flask("real"), Flask("forged")
    real.secret_key, forged.secret_key = real_key, forger_key
    payload = interface.get_signing_serializer(real).loads(cookie)
    return interface.get_signing_serializer(forged).dumps(payload)


@pytest.mark.postgres_only
def test_a_cookie_signed_with_any_public_key_is_not_the_admin_in_production(
    database_url: str, tmp_path: Path
) -> None:
    overrides = {**PRODUCTION_SETTINGS}
    overrides.pop("SQLALCHEMY_DATABASE_URI")
    with (
        fresh_database(database_url, tmp_path, prefix="forged") as url,
        temporary_app(url, **overrides) as app,
    ):
        with app.app_context():
            upgrade()
            create_admin(email="root@example.test", password="admin-password-1")
            db.session.commit()
        client = app.test_client()
        login = client.post(
            "/api/v1/auth/login", json={"email": "root@example.test", "password": "admin-password-1"}
        )
        assert login.status_code == 200
        genuine = client.get_cookie("session")
        assert genuine is not None
        assert client.get("/api/v1/me").get_json()["roles"] == ["admin"]

        for key in sorted(PUBLIC_SECRET_KEYS):
            forger = app.test_client()
            forger.set_cookie("session", _resign(genuine.value, STRONG_KEY, key))
            answer = forger.get("/api/v1/me")
            assert answer.status_code == 401, key
            assert forger.get("/api/v1/admin/vetting-queue").status_code == 401, key
