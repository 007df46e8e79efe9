from __future__ import annotations

import json

import pytest
from flask.testing import FlaskClient

from marketplace.extensions import db
from marketplace.mentors.vetting import VettingStatus
from tests.factories import MentorProfileFactory, UserFactory
from tests.helpers import assert_error_shape


def _ids(client: FlaskClient, query: str = "") -> list[int]:
    response = client.get(f"/api/v1/mentors{query}")
    assert response.status_code == 200, response.get_data(as_text=True)
    return [m["id"] for m in response.get_json()]


def test_only_approved_mentors_are_listed(client: FlaskClient) -> None:
    approved = MentorProfileFactory()
    hidden = [
        MentorProfileFactory(vetting_status=s.value) for s in VettingStatus if s is not VettingStatus.APPROVED
    ]
    db.session.commit()

    listed = _ids(client)

    assert listed == [approved.id]
    for profile in hidden:
        assert_error_shape(client.get(f"/api/v1/mentors/{profile.id}"), 404)


def test_filters(client: FlaskClient) -> None:
    cheap_python = MentorProfileFactory(price_cents=3000, tags={"skills": ["python"], "languages": ["en"]})
    pricey_go = MentorProfileFactory(
        price_cents=12000,
        tags={"skills": ["go"], "languages": ["de"], "career_paths": ["devops-engineer"]},
        user=UserFactory(name="Greta Gopher", roles=("mentor",)),
    )
    db.session.commit()

    assert _ids(client, "?skill=Python") == [cheap_python.id]
    assert _ids(client, "?language=de") == [pricey_go.id]
    assert _ids(client, "?career_path=devops-engineer") == [pricey_go.id]
    assert _ids(client, "?max_price_cents=5000") == [cheap_python.id]
    assert _ids(client, "?q=gopher") == [pricey_go.id]
    assert _ids(client, "?sort=price") == [cheap_python.id, pricey_go.id]


def test_pagination_header_follows_the_contract(client: FlaskClient) -> None:
    for _ in range(5):
        MentorProfileFactory()
    db.session.commit()

    response = client.get("/api/v1/mentors?page=2&page_size=2")

    assert len(response.get_json()) == 2
    meta = json.loads(response.headers["X-Pagination"])
    assert {k: meta[k] for k in ("total", "total_pages", "page", "page_size")} == {
        "total": 5,
        "total_pages": 3,
        "page": 2,
        "page_size": 2,
    }


@pytest.mark.parametrize(
    "query", ["?page=0", "?page_size=101", "?sort=bogus", "?max_price_cents=-5", "?page=abc"]
)
def test_bad_query_parameters_are_422(client: FlaskClient, query: str) -> None:
    assert_error_shape(client.get(f"/api/v1/mentors{query}"), 422)
