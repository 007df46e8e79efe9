"""Mentor discovery through `GET /api/v1/mentors`: who is shown, in which order, and text search, on both
databases. Each ranking test varies one input and would fail if `search` dropped that rule."""

from __future__ import annotations

import json
import random
from datetime import timedelta

import pytest
from flask.testing import FlaskClient

from marketplace.accounts.models import Role
from marketplace.careers.content import load_career_paths
from marketplace.careers.service import sync_career_paths
from marketplace.core.time import utcnow
from marketplace.extensions import db
from marketplace.mentors import ranking
from marketplace.mentors.vetting import VettingStatus
from tests.careers.support import make_mentor, tomorrow
from tests.factories import UserFactory
from tests.helpers import ApiUser

BACKEND = "backend-developer"
BACKEND_SKILLS = ("python", "sql", "databases", "apis", "system design")


def _approved_edit(client: FlaskClient, owner: ApiUser, changes: dict[str, object]) -> None:
    """An approved mentor's edit of public fields, as the public sees it once an admin approves it."""
    assert owner.put("/api/v1/me/mentor-profile", json=changes).status_code == 200
    admin = ApiUser(client, UserFactory(roles=(Role.ADMIN,)))
    mentor_id = owner.get("/api/v1/me/mentor-profile").get_json()["id"]
    decided = admin.post(f"/api/v1/admin/mentors/{mentor_id}/vetting", json={"decision": "approve_revision"})
    assert decided.status_code == 200, decided.get_data(as_text=True)


def _ids(client: FlaskClient, query: str = "") -> list[int]:
    response = client.get(f"/api/v1/mentors{query}")
    assert response.status_code == 200, response.get_data(as_text=True)
    return [mentor["id"] for mentor in response.get_json()]


# --- who is shown ------------------------------------------------------------------------------------


@pytest.mark.usefixtures("paths")
def test_unapproved_mentors_are_never_shown(client: FlaskClient) -> None:
    shown = make_mentor("Vera Visible", chose=(BACKEND,), skills=BACKEND_SKILLS)
    hidden = [
        make_mentor(f"Hidden {status.value}", chose=(BACKEND,), skills=BACKEND_SKILLS, status=status)
        for status in VettingStatus
        if status is not VettingStatus.APPROVED
    ]
    db.session.commit()

    for query in ("", f"?career_path={BACKEND}", "?skill=python", "?q=hidden", "?q=python", "?language=en"):
        for sort in ("relevance", "rating", "price", "next_available"):
            assert set(_ids(client, f"{query}{'&' if query else '?'}sort={sort}")) <= {shown.id}, query
    detail = client.get(f"/api/v1/career-paths/{BACKEND}").get_json()
    assert [mentor["id"] for mentor in detail["mentors"]] == [shown.id]
    assert detail["mentor_count"] == 1
    page = client.get(f"/careers/{BACKEND}").get_data(as_text=True)
    listing = client.get(f"/mentors?career_path={BACKEND}").get_data(as_text=True)
    assert "Vera Visible" in page
    assert "Vera Visible" in listing
    assert "Hidden" not in page
    assert "Hidden" not in listing
    for profile in hidden:
        assert client.get(f"/mentors/{profile.id}").status_code == 404


@pytest.mark.usefixtures("paths")
def test_a_suspended_mentor_disappears_at_once(client: FlaskClient) -> None:
    admin = ApiUser(client, UserFactory(roles=(Role.ADMIN,)))
    mentor = make_mentor("Sam Suspended", chose=(BACKEND,))
    db.session.commit()
    assert _ids(client, f"?career_path={BACKEND}") == [mentor.id]

    response = admin.post(
        f"/api/v1/admin/mentors/{mentor.id}/vetting", json={"decision": "suspend", "note": "Under review."}
    )

    assert response.status_code == 200, response.get_data(as_text=True)
    assert _ids(client) == []
    assert _ids(client, f"?career_path={BACKEND}") == []
    assert client.get(f"/api/v1/career-paths/{BACKEND}").get_json()["mentors"] == []
    assert "Sam Suspended" not in client.get(f"/careers/{BACKEND}").get_data(as_text=True)
    assert client.get(f"/mentors/{mentor.id}").status_code == 404
    assert client.get(f"/api/v1/mentors/{mentor.id}").status_code == 404


@pytest.mark.usefixtures("paths")
def test_a_path_lists_who_chose_it_and_who_shares_enough_of_its_skills(client: FlaskClient) -> None:
    chose = make_mentor(chose=(BACKEND,))
    enough = make_mentor(skills=("python", "sql", "docker"))
    too_few = make_mentor(skills=("python", "sql", "knitting"))
    other_path = make_mentor(chose=("product-manager",), skills=("communication",))
    db.session.commit()

    listed = _ids(client, f"?career_path={BACKEND}")

    assert ranking.MIN_SKILL_OVERLAP == 3
    assert set(listed) == {chose.id, enough.id}
    assert too_few.id not in listed
    assert other_path.id not in listed


# --- the ranking rules, applied by the database ------------------------------------------------------


@pytest.mark.usefixtures("paths")
def test_no_free_slot_in_the_horizon_ranks_below_free_tomorrow(client: FlaskClient) -> None:
    # Created first, so it would win a tie on id if availability were ignored.
    never = make_mentor(chose=(BACKEND,), next_free=None)
    far = make_mentor(chose=(BACKEND,), next_free=utcnow() + timedelta(days=40))
    free = make_mentor(chose=(BACKEND,), next_free=tomorrow())
    db.session.commit()

    assert _ids(client, f"?career_path={BACKEND}")[0] == free.id
    assert _ids(client)[0] == free.id
    assert _ids(client, "?sort=next_available") == [free.id, far.id, never.id]


@pytest.mark.usefixtures("paths")
def test_one_five_star_review_ranks_below_fifty_at_four_point_eight(client: FlaskClient) -> None:
    lucky = make_mentor(chose=(BACKEND,), rating=(5.0, 1))
    proven = make_mentor(chose=(BACKEND,), rating=(4.8, 50))
    db.session.commit()

    assert _ids(client, f"?career_path={BACKEND}") == [proven.id, lucky.id]
    assert _ids(client, "?sort=rating") == [proven.id, lucky.id]


@pytest.mark.usefixtures("paths")
def test_explicit_path_choice_beats_skill_overlap_alone(client: FlaskClient) -> None:
    skilled = make_mentor(skills=BACKEND_SKILLS)
    chose = make_mentor(chose=(BACKEND,))
    db.session.commit()

    assert _ids(client, f"?career_path={BACKEND}") == [chose.id, skilled.id]


@pytest.mark.usefixtures("paths")
def test_more_shared_skills_rank_higher(client: FlaskClient) -> None:
    fewer = make_mentor(chose=(BACKEND,), skills=("python",))
    more = make_mentor(chose=(BACKEND,), skills=BACKEND_SKILLS)
    db.session.commit()

    assert _ids(client, f"?career_path={BACKEND}") == [more.id, fewer.id]


@pytest.mark.usefixtures("paths")
def test_the_database_sorts_exactly_by_ranking_score_and_pages_stably(client: FlaskClient) -> None:
    rng = random.Random(7)
    path_skills = set(client.get(f"/api/v1/career-paths/{BACKEND}").get_json()["skills"])
    pool = [*BACKEND_SKILLS, "go", "docker", "react", "knitting"]
    now = utcnow()
    mentors = [
        make_mentor(
            chose=(BACKEND,) if rng.random() < 0.5 else (),
            skills=tuple(rng.sample(pool, rng.randint(2, 6))),
            rating=(round(rng.uniform(3, 5), 3), rng.randint(1, 80)) if rng.random() < 0.8 else (None, 0),
            price_cents=rng.randrange(2000, 20000, 50),
            next_free=now + timedelta(hours=rng.uniform(1, 24 * 20)) if rng.random() < 0.8 else None,
        )
        for _ in range(30)
    ]
    db.session.commit()
    now = now.replace(second=0, microsecond=0)

    going_rate = sum(m.price_cents for m in mentors) / len(mentors)  # every one approved, in USD

    def candidate(profile: object) -> ranking.Candidate:
        return ranking.Candidate(
            rating_avg=profile.rating_avg,
            rating_count=profile.rating_count,
            next_available_at=profile.next_available_at,
            price_cents=profile.price_cents,
            going_rate_cents=going_rate,
            chose_path=BACKEND in profile.career_paths,
            skill_overlap=len(set(profile.skills) & path_skills),
        )

    matching = [m for m in mentors if ranking.is_match(BACKEND in m.career_paths, candidate(m).skill_overlap)]
    expected = [m.id for m in sorted(matching, key=lambda m: (-ranking.score(candidate(m), now), m.id))]
    paged: list[int] = []
    for page in (1, 2, 3, 4, 5):
        paged += _ids(client, f"?career_path={BACKEND}&page_size=7&page={page}")

    assert paged == expected
    assert len(expected) > 10


# --- filters and sorts -------------------------------------------------------------------------------


def test_filters_combine(client: FlaskClient) -> None:
    cheap_soon = make_mentor(skills=("go",), languages=("de", "en"), price_cents=3000, next_free=tomorrow())
    pricey_later = make_mentor(
        skills=("go",), languages=("en",), price_cents=15000, next_free=utcnow() + timedelta(days=9)
    )
    db.session.commit()

    assert _ids(client, "?skill=Go&sort=price") == [cheap_soon.id, pricey_later.id]
    assert _ids(client, "?language=DE") == [cheap_soon.id]
    assert _ids(client, "?max_price_cents=5000") == [cheap_soon.id]
    assert _ids(client, "?available_within_days=3") == [cheap_soon.id]
    assert set(_ids(client, "?available_within_days=10")) == {cheap_soon.id, pricey_later.id}
    assert _ids(client, "?sort=price&max_price_cents=") == [cheap_soon.id, pricey_later.id]
    meta = json.loads(client.get("/api/v1/mentors?page_size=1").headers["X-Pagination"])
    assert (meta["total"], meta["total_pages"]) == (2, 2)


# --- full-text search --------------------------------------------------------------------------------


def test_text_search_finds_by_name_headline_bio_and_skill(client: FlaskClient) -> None:
    zelda = make_mentor(
        "Zelda Quartz",
        headline="Compiler wizard",
        bio="I love parsers.\n\nAnd tea, mostly green.",
        skills=("ocaml", "ci/cd"),
    )
    other = make_mentor(
        "Other Person", headline="Frontend lead", bio="React and design", skills=("typescript",)
    )
    accents = make_mentor("José Núñez", headline="Data person", bio="Pipelines.", skills=("sql",))
    db.session.commit()

    assert _ids(client, "?q=zelda") == [zelda.id]
    assert _ids(client, "?q=QUARTZ") == [zelda.id]
    assert _ids(client, "?q=compiler") == [zelda.id]
    assert _ids(client, "?q=parsers.") == [zelda.id]
    assert _ids(client, "?q=ocaml") == [zelda.id]
    assert _ids(client, "?q=cd") == [zelda.id]
    assert _ids(client, "?q=typesc") == [other.id]
    assert _ids(client, "?q=zelda%20green") == [zelda.id]
    assert _ids(client, "?q=zelda%20react") == []
    assert _ids(client, "?q=n%C3%BA%C3%B1ez") == [accents.id]
    assert set(_ids(client, "?q=%25%25")) == {zelda.id, other.id, accents.id}


def test_a_text_query_ranks_the_best_text_match_first(client: FlaskClient) -> None:
    focused = make_mentor(
        "Kai Focus",
        headline="Kubernetes operator",
        bio="Kubernetes clusters and kubernetes upgrades.",
        skills=("kubernetes",),
    )
    popular = make_mentor(
        "Pat Popular",
        headline="Generalist engineer",
        bio="Python services, databases, team leadership, hiring, roadmaps, and once a kubernetes migration.",
        skills=("python", "sql"),
        rating=(5.0, 80),
        price_cents=1000,
        next_free=tomorrow(),
    )
    db.session.commit()

    assert _ids(client, "?q=kubernetes") == [focused.id, popular.id]
    assert _ids(client, "?q=kubernetes&sort=rating") == [popular.id, focused.id]
    assert _ids(client) == [popular.id, focused.id]


def test_the_best_match_weighs_a_price_against_its_own_currencys_going_rate(client: FlaskClient) -> None:
    """9,000 yen is cheap among yen prices; 6,000 cents is dear among dollar prices, though fewer minor
    units (weighed on one scale, the dollars would rank first)."""
    cheap_yen = make_mentor(price_cents=9000, currency="JPY")
    make_mentor(price_cents=30000, currency="JPY")
    dear_dollars = make_mentor(price_cents=6000, currency="USD")
    make_mentor(price_cents=2000, currency="USD")
    db.session.commit()

    ranked = _ids(client)
    assert ranked.index(cheap_yen.id) < ranked.index(dear_dollars.id)


def test_prices_compare_only_within_one_currency(client: FlaskClient) -> None:
    usd_high = make_mentor(price_cents=9000, currency="USD")
    eur_low = make_mentor(price_cents=5000, currency="EUR")
    usd_low = make_mentor(price_cents=3000, currency="USD")
    eur_high = make_mentor(price_cents=8000, currency="EUR")
    db.session.commit()

    assert _ids(client, "?sort=price") == [eur_low.id, eur_high.id, usd_low.id, usd_high.id]
    assert _ids(client, "?sort=price&currency=usd") == [usd_low.id, usd_high.id]
    assert _ids(client, "?currency=EUR&max_price_cents=6000") == [eur_low.id]


def test_the_search_index_follows_profile_and_name_changes(client: FlaskClient) -> None:
    mentor = make_mentor("Nina Oldname", headline="Kotlin developer", skills=("kotlin",))
    db.session.commit()
    owner = ApiUser(client, mentor.user)

    _approved_edit(client, owner, {"headline": "Swift developer", "skills": ["swift"]})
    mentor.user.name = "Nina Newname"
    db.session.commit()

    assert _ids(client, "?q=kotlin") == []
    assert _ids(client, "?q=swift") == [mentor.id]
    assert _ids(client, "?q=oldname") == []
    assert _ids(client, "?q=newname") == [mentor.id]


# --- the derived tables stay right, whichever write changes their sources ----------------------------


def test_a_chosen_path_matches_even_before_the_content_is_loaded(client: FlaskClient) -> None:
    chose = make_mentor(chose=(BACKEND,), skills=BACKEND_SKILLS)
    make_mentor(skills=BACKEND_SKILLS)
    db.session.commit()

    assert _ids(client, f"?career_path={BACKEND}") == [chose.id]


@pytest.mark.usefixtures("paths")
def test_matches_follow_the_mentors_own_edits(client: FlaskClient) -> None:
    mentor = make_mentor(chose=("product-manager",), skills=("communication",))
    db.session.commit()
    owner = ApiUser(client, mentor.user)
    assert _ids(client, f"?career_path={BACKEND}") == []

    _approved_edit(client, owner, {"skills": ["python", "sql", "docker"]})
    by_skills = _ids(client, f"?career_path={BACKEND}")
    _approved_edit(client, owner, {"career_paths": ["backend-developer"], "skills": ["go"]})
    by_choice = _ids(client, f"?career_path={BACKEND}")
    no_longer = _ids(client, "?career_path=product-manager")

    assert by_skills == [mentor.id]
    assert by_choice == [mentor.id]
    assert no_longer == []


@pytest.mark.usefixtures("paths")
def test_matches_follow_edited_and_removed_content(client: FlaskClient) -> None:
    chose = make_mentor(chose=(BACKEND,))
    rustacean = make_mentor(skills=("rust", "python", "sql"))
    db.session.commit()
    items = load_career_paths()
    backend = next(item for item in items if item["slug"] == BACKEND)
    assert "rust" not in backend["skills"]

    backend["skills"] = ["rust", *backend["skills"][:-1]]
    sync_career_paths(items)
    db.session.commit()
    with_rust = _ids(client, f"?career_path={BACKEND}")
    sync_career_paths([item for item in items if item["slug"] != BACKEND])
    db.session.commit()
    removed = _ids(client, f"?career_path={BACKEND}")

    assert set(with_rust) == {chose.id, rustacean.id}
    assert removed == [chose.id]
