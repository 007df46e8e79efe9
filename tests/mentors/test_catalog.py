"""The catalog version and the cached search and career pages: a change to anything they show moves the
version in its own commit, so no cached response outlives it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
import time_machine
from flask.testing import FlaskClient
from flask_migrate import upgrade
from sqlalchemy import select, text

from marketplace.accounts.models import Role
from marketplace.careers.models import CareerPath, CareerPathSkill
from marketplace.careers.routes import MENTOR_PAGES
from marketplace.extensions import db
from marketplace.mentors import calendar_version, catalog
from marketplace.mentors.models import MentorProfile, MentorTag, TagKind
from marketplace.mentors.vetting import VettingStatus
from tests.careers.support import load_paths, make_mentor, tomorrow
from tests.factories import UserFactory
from tests.helpers import recorded_selects, temporary_app
from tests.support.databases import fresh_database

BACKEND = "backend-developer"
SEARCH = f"/api/v1/mentors?career_path={BACKEND}&sort=relevance"
CACHED_URLS = (SEARCH, f"/careers/{BACKEND}", f"/api/v1/career-paths/{BACKEND}", "/careers", "/mentors")


@pytest.fixture
def paths(client: FlaskClient) -> None:
    load_paths()


def _backend_path() -> CareerPath:
    return db.session.scalars(select(CareerPath).where(CareerPath.slug == BACKEND)).one()


CHANGES: dict[str, Callable[[MentorProfile], object]] = {
    "price": lambda mentor: setattr(mentor, "price_cents", 4500),
    "vetting status": lambda mentor: setattr(mentor, "vetting_status", VettingStatus.SUSPENDED.value),
    "rating": lambda mentor: (setattr(mentor, "rating_avg", 4.5), setattr(mentor, "rating_count", 3)),
    "next free time": lambda mentor: setattr(mentor, "next_available_at", tomorrow()),
    "skill added": lambda mentor: db.session.add(
        MentorTag(profile_id=mentor.id, kind=TagKind.SKILL.value, value="rust")
    ),
    "name": lambda mentor: setattr(mentor.user, "name", "Renamed Mentor"),
    "career path skills": lambda _: db.session.add(CareerPathSkill(path_id=_backend_path().id, skill="go")),
    "career path text": lambda _: setattr(_backend_path(), "summary", "Another summary."),
}
NOT_CHANGES: dict[str, Callable[[MentorProfile], object]] = {
    "calendar touched": lambda mentor: calendar_version.bump_calendar_versions([mentor.id]),
    "a learner signed up": lambda _: UserFactory(roles=(Role.LEARNER,)),
}


@pytest.mark.usefixtures("paths")
@pytest.mark.parametrize(
    ("change", "shown"), [(name, True) for name in CHANGES] + [(name, False) for name in NOT_CHANGES]
)
def test_the_version_moves_with_every_change_search_shows_and_only_those(
    client: FlaskClient, change: str, shown: bool
) -> None:
    mentor = make_mentor("Casey Catalog", chose=(BACKEND,))
    db.session.commit()
    before = catalog.version()

    {**CHANGES, **NOT_CHANGES}[change](mentor)
    db.session.commit()

    assert (catalog.version() > before) is shown
    assert catalog.version() >= before


@pytest.mark.usefixtures("paths")
def test_a_hit_reads_only_the_version_and_answers_the_same(client: FlaskClient) -> None:
    make_mentor("Hana Hit", chose=(BACKEND,))
    db.session.commit()
    for url in CACHED_URLS:
        with recorded_selects() as miss:
            first = client.get(url)
        with recorded_selects() as hit:
            second = client.get(url)

        assert first.status_code == second.status_code == 200, url
        assert second.get_data() == first.get_data(), url
        assert second.headers["Content-Type"] == first.headers["Content-Type"], url
        assert second.headers.get("X-Pagination") == first.headers.get("X-Pagination"), url
        assert len(hit) == 1, hit
        assert "catalog_version" in hit[0]
        assert len(miss) > 1, url


@pytest.mark.usefixtures("paths")
def test_if_none_match_is_304_until_the_catalog_or_the_minute_changes(client: FlaskClient) -> None:
    mentor = make_mentor("Etta Etag", chose=(BACKEND,))
    db.session.commit()
    with time_machine.travel(tomorrow(), tick=False) as clock:
        first = client.get(SEARCH)
        etag = first.headers["ETag"]
        assert etag.startswith('W/"')
        assert first.headers["Cache-Control"] == "public, no-cache"

        unchanged = client.get(SEARCH, headers={"If-None-Match": etag})
        assert unchanged.status_code == 304
        assert unchanged.get_data() == b""
        assert unchanged.headers["ETag"] == etag

        mentor.price_cents = 6100
        db.session.commit()
        repriced = client.get(SEARCH, headers={"If-None-Match": etag})
        assert repriced.status_code == 200
        assert repriced.get_json()[0]["price_cents"] == 6100

        clock.shift(timedelta(minutes=1))
        next_minute = client.get(SEARCH, headers={"If-None-Match": repriced.headers["ETag"]})
        assert next_minute.status_code == 200


@pytest.mark.usefixtures("paths")
def test_a_rejected_query_is_not_kept(client: FlaskClient) -> None:
    assert client.get("/api/v1/mentors?max_price_cents=-1").status_code == 422
    assert client.get("/careers/no-such-path").status_code == 404
    assert client.get("/api/v1/mentors?max_price_cents=-1").status_code == 422


def test_with_real_commits_a_transaction_bumps_once_and_hand_written_sql_is_seen(
    database_url: str, tmp_path: Path
) -> None:
    """Outside the test transaction, as the web processes and workers run: PostgreSQL's deferred triggers
    bump once per commit, however many rows it changed, and a change made by plain SQL on another
    connection empties the cache as surely as one made by the app."""
    catalog.CATALOG_RESPONSES.clear()
    MENTOR_PAGES.clear()
    with fresh_database(database_url, tmp_path, prefix="catalog") as url, temporary_app(url) as app:
        with app.app_context():
            upgrade()
            load_paths()
            before = catalog.version()
            mentors = [make_mentor(f"Mentor {n}", chose=(BACKEND,), price_cents=7000 + n) for n in range(3)]
            db.session.commit()
            bumped = catalog.version() - before
            suspended_id = mentors[0].id
            calendar_version.bump_calendar_versions([mentors[1].id])
            db.session.commit()
            after_calendar = catalog.version()
        client = app.test_client()

        assert bumped == 1 if app.config["SQLALCHEMY_DATABASE_URI"].startswith("postgresql") else bumped >= 1
        assert after_calendar == before + bumped
        assert suspended_id in [mentor["id"] for mentor in client.get(SEARCH).get_json()]
        assert "Mentor 0" in client.get(f"/careers/{BACKEND}").get_data(as_text=True)
        assert client.get(f"/mentors/{suspended_id}").status_code == 200

        with app.app_context(), db.engine.begin() as connection:
            connection.execute(
                text("UPDATE mentor_profiles SET vetting_status = 'suspended' WHERE id = :id"),
                {"id": suspended_id},
            )

        assert suspended_id not in [mentor["id"] for mentor in client.get(SEARCH).get_json()]
        assert "Mentor 0" not in client.get(f"/careers/{BACKEND}").get_data(as_text=True)
        assert client.get(f"/mentors/{suspended_id}").status_code == 404
    catalog.CATALOG_RESPONSES.clear()
    MENTOR_PAGES.clear()
