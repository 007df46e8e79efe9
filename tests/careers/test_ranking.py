"""The ranking rules on plain numbers: each test fails if its rule is dropped from `ranking.score`."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from marketplace.mentors import ranking
from marketplace.mentors.ranking import Candidate, score

NOW = datetime(2027, 3, 1, 12, 0, tzinfo=UTC)
BASE = Candidate(
    rating_avg=4.6,
    rating_count=12,
    next_available_at=NOW + timedelta(days=3),
    price_cents=8000,
    going_rate_cents=10_000,
)


def _ranked(*candidates: Candidate) -> list[Candidate]:
    return sorted(candidates, key=lambda c: score(c, NOW), reverse=True)


def test_one_five_star_review_ranks_below_fifty_at_four_point_eight() -> None:
    lucky = replace(BASE, rating_avg=5.0, rating_count=1)
    proven = replace(BASE, rating_avg=4.8, rating_count=50)

    assert _ranked(lucky, proven) == [proven, lucky]
    assert ranking.bayesian_rating(5.0, 1) == pytest.approx(45 / 11)
    assert ranking.bayesian_rating(4.8, 50) == pytest.approx(280 / 60)


def test_a_newcomer_starts_at_the_prior_and_many_good_reviews_beat_it() -> None:
    newcomer = replace(BASE, rating_avg=None, rating_count=0)
    good = replace(BASE, rating_avg=4.5, rating_count=30)
    poor = replace(BASE, rating_avg=3.0, rating_count=30)

    assert ranking.bayesian_rating(0.0, 0) == ranking.PRIOR_MEAN
    assert _ranked(poor, newcomer, good) == [good, newcomer, poor]


def test_no_free_slot_in_the_horizon_ranks_below_free_tomorrow() -> None:
    free_tomorrow = replace(BASE, next_available_at=NOW + timedelta(hours=20))
    never = replace(BASE, next_available_at=None)
    beyond_horizon = replace(BASE, next_available_at=NOW + timedelta(days=30))

    assert _ranked(never, free_tomorrow)[0] == free_tomorrow
    assert _ranked(beyond_horizon, free_tomorrow)[0] == free_tomorrow
    assert score(never, NOW) == score(beyond_horizon, NOW)


def test_sooner_is_better_step_by_step() -> None:
    soonest_first = [replace(BASE, next_available_at=NOW + timedelta(days=d)) for d in (0.5, 1.5, 5, 10)]
    assert _ranked(*reversed(soonest_first)) == soonest_first


def test_explicit_path_choice_beats_skill_overlap_alone() -> None:
    chose = replace(BASE, chose_path=True, skill_overlap=0)
    many_skills = replace(BASE, chose_path=False, skill_overlap=12)

    assert _ranked(many_skills, chose) == [chose, many_skills]


def test_more_shared_skills_rank_higher() -> None:
    by_overlap = [replace(BASE, chose_path=True, skill_overlap=n) for n in (5, 3, 1, 0)]
    assert _ranked(*reversed(by_overlap)) == by_overlap


def test_cheaper_ranks_higher_other_things_equal() -> None:
    cheap = replace(BASE, price_cents=4000)
    pricey = replace(BASE, price_cents=20000)

    assert _ranked(pricey, cheap) == [cheap, pricey]


def test_a_price_counts_against_the_going_rate_of_its_own_currency() -> None:
    """5,000 yen where the going rate is 10,000 yen beats $60 where the going rate is $50."""
    yen = replace(BASE, price_cents=5000, going_rate_cents=10_000)
    dollars = replace(BASE, price_cents=6000, going_rate_cents=5000)

    assert _ranked(dollars, yen) == [yen, dollars]
    assert ranking.price_score(5000, 5000) == 0.5


def test_a_path_matches_by_choice_or_by_enough_shared_skills() -> None:
    assert ranking.is_match(chose_path=True, skill_overlap=0)
    assert ranking.is_match(chose_path=False, skill_overlap=ranking.MIN_SKILL_OVERLAP)
    assert not ranking.is_match(chose_path=False, skill_overlap=ranking.MIN_SKILL_OVERLAP - 1)


def test_each_part_stays_within_zero_and_one() -> None:
    assert ranking.relevance(1, 100) < 1
    assert ranking.rating_score(5.0, 10_000) <= 1
    assert ranking.rating_score(1.0, 10_000) >= 0
    assert 0 < ranking.price_score(1_000_000, 10_000) < ranking.price_score(0, 10_000) == 1
    best = Candidate(5.0, 10_000, NOW, 0, 10_000, chose_path=True, skill_overlap=100)
    assert 0 < score(best, NOW) <= 1
