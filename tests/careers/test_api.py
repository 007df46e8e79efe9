"""`GET /api/v1/career-paths` and `GET /api/v1/career-paths/{slug}`."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient

from marketplace.careers.content import load_career_paths
from marketplace.extensions import db
from marketplace.mentors.vetting import VettingStatus
from tests.careers.support import make_mentor, tomorrow
from tests.helpers import assert_error_shape

pytestmark = pytest.mark.usefixtures("paths")

SEED_BOOKS = [
    "Microservice APIs",
    "High Performance Python",
    "Python Cookbook",
    "Designing Data-Intensive Applications",
]


def test_list_gives_every_path_by_title(client: FlaskClient) -> None:
    response = client.get("/api/v1/career-paths")

    assert response.status_code == 200
    body = response.get_json()
    assert len(body) == len(load_career_paths()) >= 12
    assert all(set(item) == {"slug", "title", "summary"} for item in body)
    assert [item["title"] for item in body] == sorted(item["title"] for item in body)
    assert {"slug": "backend-developer", "title": "Backend Developer"}.items() <= body[0].items()


def test_detail_carries_the_content_and_the_best_mentors(client: FlaskClient) -> None:
    best = make_mentor("Best Match", chose=("backend-developer",), rating=(4.9, 40), next_free=tomorrow())
    second = make_mentor("Second Match", chose=("backend-developer",))
    make_mentor("Pending Person", chose=("backend-developer",), status=VettingStatus.PENDING_REVIEW)
    make_mentor("Elsewhere", chose=("product-manager",))
    db.session.commit()

    response = client.get("/api/v1/career-paths/backend-developer")

    assert response.status_code == 200
    body = response.get_json()
    assert list(body) == [
        "slug",
        "title",
        "summary",
        "description",
        "skills",
        "books",
        "courses",
        "salary",
        "related",
        "mentors",
        "mentor_count",
    ]
    assert [book["title"] for book in body["books"]] == SEED_BOOKS
    assert body["books"][0]["authors"] == ["José Haro Peralta"]
    assert {course["title"] for course in body["courses"]} >= {
        "Advanced Python",
        "Python Bootcamp: From Zero to Hero",
    }
    assert body["salary"]["hike_amount"] == 30000
    assert body["salary"]["currency"] == "USD"
    assert {"slug": "devops-engineer", "title": "DevOps Engineer"}.items() <= next(
        item for item in body["related"] if item["slug"] == "devops-engineer"
    ).items()
    assert [mentor["id"] for mentor in body["mentors"]] == [best.id, second.id]
    assert body["mentor_count"] == 2
    assert "vetting_status" not in body["mentors"][0]
    assert {"rating_avg", "rating_count", "next_available_at", "price_cents"} <= set(body["mentors"][0])


def test_detail_shows_the_top_six_and_counts_all(client: FlaskClient) -> None:
    for _ in range(8):
        make_mentor(chose=("data-engineer",))
    db.session.commit()

    body = client.get("/api/v1/career-paths/data-engineer").get_json()

    assert len(body["mentors"]) == 6
    assert body["mentor_count"] == 8


def test_unknown_path_is_404(client: FlaskClient) -> None:
    assert_error_shape(client.get("/api/v1/career-paths/astronaut"), 404)
