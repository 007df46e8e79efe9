"""Loading the career-path content into the database: complete, idempotent, and following edits."""

from __future__ import annotations

import shutil
from datetime import datetime
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from marketplace.careers.content import CONTENT_DIR, load_career_paths
from marketplace.careers.models import CareerPath, CareerPathSkill
from marketplace.careers.service import sync_career_paths
from marketplace.extensions import db


@pytest.fixture
def edited_content(tmp_path: Path) -> Path:
    """A copy of the content with the backend path retitled and one skill swapped."""
    target = tmp_path / "content"
    shutil.copytree(CONTENT_DIR, target)
    path = target / "backend-developer.toml"
    text = path.read_text(encoding="utf-8")
    text = text.replace('title = "Backend Developer"', 'title = "Backend Engineer"', 1)
    text = text.replace('  "linux",\n', '  "rust",\n', 1)
    path.write_text(text, encoding="utf-8")
    return target


def _stamps() -> dict[str, datetime]:
    return dict(db.session.execute(select(CareerPath.slug, CareerPath.updated_at)).all())


def _path(slug: str) -> CareerPath:
    path = db.session.scalar(select(CareerPath).where(CareerPath.slug == slug))
    assert path is not None
    return path


def test_loading_stores_every_path_with_its_content(client: FlaskClient) -> None:
    items = load_career_paths()

    report = sync_career_paths(items)

    assert sorted(report.created) == [item["slug"] for item in items]
    backend = _path("backend-developer")
    assert [book["title"] for book in backend.books] == [book["title"] for book in items[0]["books"]]
    assert backend.skills[:3] == ["python", "sql", "databases"]
    assert backend.salary == {
        "currency": "USD",
        "entry": 60000,
        "senior": 90000,
        "hike_amount": 30000,
        "hike_percent": 50,
        "basis": items[0]["salary"]["basis"],
    }
    assert len(backend.paragraphs) == 3
    assert "full-stack-developer" in backend.related


def test_loading_twice_changes_nothing(client: FlaskClient) -> None:
    sync_career_paths(load_career_paths())
    db.session.commit()
    stamps = _stamps()
    skill_rows = db.session.scalar(select(func.count()).select_from(CareerPathSkill))

    report = sync_career_paths(load_career_paths())
    db.session.commit()

    assert report.created == report.updated == report.deleted == []
    assert len(report.unchanged) == len(stamps)
    db.session.expire_all()
    assert _stamps() == stamps
    assert db.session.scalar(select(func.count()).select_from(CareerPathSkill)) == skill_rows


def test_edited_content_updates_rows_and_dropped_paths_go(client: FlaskClient, edited_content: Path) -> None:
    sync_career_paths(load_career_paths())

    edited = [item for item in load_career_paths(edited_content) if item["slug"] != "product-manager"]
    report = sync_career_paths(edited)

    assert report.updated == ["backend-developer"]
    assert report.deleted == ["product-manager"]
    backend = _path("backend-developer")
    assert backend.title == "Backend Engineer"
    assert "rust" in backend.skills
    assert "linux" not in backend.skills
    assert db.session.scalar(select(CareerPath).where(CareerPath.slug == "product-manager")) is None


def test_the_command_loads_reports_and_refuses_broken_content(
    app: Flask, client: FlaskClient, edited_content: Path
) -> None:
    runner = app.test_cli_runner()

    first = runner.invoke(args=["load-career-paths"])
    again = runner.invoke(args=["load-career-paths"])
    edited = runner.invoke(args=["load-career-paths", "--directory", str(edited_content)])
    (edited_content / "data-engineer.toml").write_text('slug = "data-engineer"\n', encoding="utf-8")
    broken = runner.invoke(args=["load-career-paths", "--directory", str(edited_content)])

    assert first.exit_code == 0, first.output
    assert "12 created, 0 updated, 0 deleted, 0 unchanged" in first.output
    assert "0 created, 0 updated, 0 deleted, 12 unchanged" in again.output
    assert "0 created, 1 updated, 0 deleted, 11 unchanged" in edited.output
    assert broken.exit_code != 0
    assert "data-engineer.toml" in broken.output
    assert _path("backend-developer").title == "Backend Engineer"
