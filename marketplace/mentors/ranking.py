"""How mentors are ranked: relevance to a career path, a Bayesian-averaged rating, how soon they are free,
and price, blended into one score. Pure (stdlib only), so each rule is unit-tested on plain numbers.

The arithmetic parts are written with operators only, so ``mentors.service.search`` passes SQL column
expressions through the very same functions to build its ORDER BY: the API and the pages sort in the
database (and paginate) by exactly the formula tested here. Availability is a table of steps that the
SQL side turns into a CASE, and `is_match` is mirrored by ``mentors.service.path_match_clause``; a test
checks that the database's order equals sorting by `score`.

    score = 0.45 * relevance + 0.30 * rating + 0.15 * availability + 0.10 * price      (each part in [0, 1])

- relevance = 0.6 * chose_path + 0.4 * overlap / (overlap + 2); a mentor who chose the path always has
  more relevance than one matching by skills alone, and more shared skills rank higher with diminishing
  returns. It is 0 for everyone when no career path is asked for.
- rating = (bayesian - 1) / 4 with bayesian = (C * m + avg * n) / (C + n), prior mean m = 4.0 and weight
  C = 10 reviews: one 5-star review gives 4.09, fifty 4.8s give 4.67, a newcomer starts at 4.0.
- availability = 1.0 if free within a day, 0.8 within two, 0.5 within a week, 0.25 within two weeks,
  else (nothing free in the horizon, or unknown) 0.
- price = T / (T + price_cents) with T the going rate in the mentor's own currency (the average hourly
  price of the approved mentors who charge in it): cheaper is better, gently, and a price is compared only
  with prices in the same currency (a yen amount is never weighed against dollar cents). A mentor at the
  going rate scores 0.5.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

WEIGHT_RELEVANCE = 0.45
WEIGHT_RATING = 0.30
WEIGHT_AVAILABILITY = 0.15
WEIGHT_PRICE = 0.10

CHOSEN_PATH = 0.6
SKILL_OVERLAP = 0.4
OVERLAP_HALF = 2.0
# A mentor who did not choose a path still matches it by sharing this many of its skills.
MIN_SKILL_OVERLAP = 3

PRIOR_MEAN = 4.0
PRIOR_WEIGHT = 10.0

# (free within this many days, availability score), soonest first; later or never scores 0.
AVAILABILITY_STEPS: tuple[tuple[int, float], ...] = ((1, 1.0), (2, 0.8), (7, 0.5), (14, 0.25))


class Number(Protocol):
    """A float here; a SQL column expression when the search query builds its ORDER BY."""

    def __add__(self, other: Any, /) -> Any: ...
    def __radd__(self, other: Any, /) -> Any: ...
    def __sub__(self, other: Any, /) -> Any: ...
    def __mul__(self, other: Any, /) -> Any: ...
    def __rmul__(self, other: Any, /) -> Any: ...
    def __truediv__(self, other: Any, /) -> Any: ...
    def __rtruediv__(self, other: Any, /) -> Any: ...


def relevance(chose_path: Number, skill_overlap: Number) -> Any:
    """`chose_path` is 1 or 0; `skill_overlap` counts the path's skills the mentor lists."""
    return CHOSEN_PATH * chose_path + SKILL_OVERLAP * skill_overlap / (skill_overlap + OVERLAP_HALF)


def is_match(chose_path: bool, skill_overlap: int) -> bool:
    """Who belongs on a path's page and in "Browse all N mentors" (the SQL filter says the same)."""
    return chose_path or skill_overlap >= MIN_SKILL_OVERLAP


def bayesian_rating(rating_avg: Number, rating_count: Number) -> Any:
    """The average pulled towards the prior by C phantom reviews; `rating_avg` is 0 when there are none."""
    return (PRIOR_WEIGHT * PRIOR_MEAN + rating_avg * rating_count) / (PRIOR_WEIGHT + rating_count)


def rating_score(rating_avg: Number, rating_count: Number) -> Any:
    return (bayesian_rating(rating_avg, rating_count) - 1.0) / 4.0


def price_score(price_cents: Number, going_rate_cents: Number) -> Any:
    """Both in the same currency's minor units."""
    return going_rate_cents / (going_rate_cents + price_cents)


def availability_score(next_available_at: datetime | None, now: datetime) -> float:
    if next_available_at is None:
        return 0.0
    for days, score in AVAILABILITY_STEPS:
        if next_available_at <= now + timedelta(days=days):
            return score
    return 0.0


def combine(relevance: Number, rating: Number, availability: Number, price: Number) -> Any:
    return (
        WEIGHT_RELEVANCE * relevance
        + WEIGHT_RATING * rating
        + WEIGHT_AVAILABILITY * availability
        + WEIGHT_PRICE * price
    )


@dataclass(frozen=True)
class Candidate:
    """What the ranking reads about one mentor, relative to the career path asked for (if any)."""

    rating_avg: float | None = None
    rating_count: int = 0
    next_available_at: datetime | None = None
    price_cents: int | None = None
    # The average price of the approved mentors in this mentor's currency.
    going_rate_cents: float | None = None
    chose_path: bool = False
    skill_overlap: int = 0


def score(candidate: Candidate, now: datetime) -> float:
    """The score the database sorts by, for one mentor; higher ranks first."""
    return float(
        combine(
            relevance(int(candidate.chose_path), candidate.skill_overlap),
            rating_score(candidate.rating_avg or 0.0, candidate.rating_count),
            availability_score(candidate.next_available_at, now),
            0.0
            if candidate.price_cents is None or candidate.going_rate_cents is None
            else price_score(candidate.price_cents, candidate.going_rate_cents),
        )
    )
