"""Operator commands: `flask --app wsgi create-admin EMAIL`, `seed-demo`, `load-career-paths`."""

from __future__ import annotations

from pathlib import Path

import click
from flask import Flask, current_app

from marketplace import demo
from marketplace.accounts import service as accounts
from marketplace.careers import service as careers
from marketplace.careers.content import ContentError, load_career_paths
from marketplace.core import outbox
from marketplace.extensions import db
from marketplace.mentors import calendar_version


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
    if current_app.config["APP_ENV"] != "development":
        raise click.ClickException(
            "seed-demo creates logins with public passwords; it runs only in development."
        )
    created = demo.seed()
    db.session.commit()
    # The mentors' first free slots (what search shows and sorts by) are computed before the URL is printed,
    # not after the queue reaches them; the mails go through the queue.
    outbox.run_committed_here({calendar_version.REFRESH_TASK})
    outbox.relay_committed()
    click.echo(f"Demo data: {created} new accounts.")
    for role, email, password in demo.DEMO_LOGINS:
        click.echo(f"  {role:<8} {email} / {password}")


@click.command("load-career-paths")
@click.option(
    "--directory",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="Folder of <slug>.toml files (defaults to the shipped content).",
)
def load_career_paths_command(directory: Path | None) -> None:
    """Load the career-path content into the database: adds, updates and removes paths to match it."""
    try:
        items = load_career_paths(directory)
    except ContentError as exc:
        raise click.ClickException(str(exc)) from exc
    report = careers.sync_career_paths(items)
    db.session.commit()
    click.echo(
        f"Career paths: {len(report.created)} created, {len(report.updated)} updated, "
        f"{len(report.deleted)} deleted, {len(report.unchanged)} unchanged."
    )


def init_app(app: Flask) -> None:
    app.cli.add_command(create_admin_command)
    app.cli.add_command(seed_demo_command)
    app.cli.add_command(load_career_paths_command)
