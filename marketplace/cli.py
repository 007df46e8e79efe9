"""Operator commands: `flask --app wsgi create-admin EMAIL`, `flask --app wsgi seed-demo`."""

from __future__ import annotations

import click
from flask import Flask

from marketplace import demo
from marketplace.accounts import service as accounts
from marketplace.extensions import db


@click.command("create-admin")
@click.argument("email")
@click.option(
    "--password", prompt=True, hide_input=True, confirmation_prompt=True, help="At least 10 characters."
)
@click.option("--name", default=None, help="Display name (defaults to the email's local part).")
def create_admin_command(email: str, password: str, name: str | None) -> None:
    """Create an admin account, or make an existing account an admin."""
    if len(password) < 10:
        raise click.BadParameter("use at least 10 characters", param_hint="--password")
    user = accounts.create_admin(email=email, password=password, name=name)
    db.session.commit()
    click.echo(f"Admin ready: {user.email} (id {user.id})")


@click.command("seed-demo")
def seed_demo_command() -> None:
    """Load demo accounts and mentors; running it again changes nothing."""
    created = demo.seed()
    db.session.commit()
    click.echo(f"Demo data: {created} new accounts.")
    for role, email, password in demo.DEMO_LOGINS:
        click.echo(f"  {role:<8} {email} / {password}")


def init_app(app: Flask) -> None:
    app.cli.add_command(create_admin_command)
    app.cli.add_command(seed_demo_command)
