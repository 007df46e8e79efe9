"""The server-rendered pages without a browser: what each shows, their metadata, size and basic
accessibility, and the HTML error pages."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from flask.testing import FlaskClient

from marketplace.bookings.availability.service import list_free_slots
from marketplace.extensions import db
from marketplace.mentors.calendar_version import bump_calendar_versions
from marketplace.mentors.models import MentorProfile
from marketplace.mentors.vetting import VettingStatus
from marketplace.scheduling.models import RecurringInterval
from tests.careers.support import add_review, load_paths, make_mentor, tomorrow
from tests.factories import AvailabilityScheduleFactory, BookingFactory, UserFactory
from tests.pages.html_checks import assert_good_page

BASE = "http://localhost"


@dataclass
class World:
    maria: MentorProfile
    cheap: MentorProfile
    pending: MentorProfile


@pytest.fixture
def world(client: FlaskClient) -> World:
    load_paths()
    maria = make_mentor(
        "Maria Alvarez",
        chose=("backend-developer",),
        skills=("python", "sql", "apis"),
        languages=("en", "es"),
        rating=(4.8, 50),
        price_cents=9000,
        next_free=tomorrow(),
        headline="Staff backend engineer",
        bio="Payments and distributed systems.\nInterview practice too.",
    )
    AvailabilityScheduleFactory(profile=maria)
    learner = UserFactory(name="Ada Lovelace")
    add_review(maria, learner, 5, "Clear, practical advice.")
    cheap = make_mentor("Carl Cheap", chose=("backend-developer",), price_cents=4000)
    pending = make_mentor("Penny Pending", chose=("backend-developer",), status=VettingStatus.PENDING_REVIEW)
    db.session.commit()
    return World(maria, cheap, pending)


def _page(client: FlaskClient, url: str, status: int = 200) -> str:
    response = client.get(url)
    assert response.status_code == status, response.get_data(as_text=True)[:500]
    assert response.mimetype == "text/html"
    return response.get_data(as_text=True)


def test_career_index_links_every_path(client: FlaskClient, world: World) -> None:
    html = _page(client, "/careers")

    structured = assert_good_page(html, f"{BASE}/careers")
    assert structured["@type"] == "ItemList"
    assert structured["numberOfItems"] >= 12
    assert 'href="/careers/backend-developer"' in html
    assert 'href="/careers/product-manager"' in html


def test_career_page_shows_content_salary_mentors_and_browse_all(client: FlaskClient, world: World) -> None:
    html = _page(client, "/careers/backend-developer")

    structured = assert_good_page(html, f"{BASE}/careers/backend-developer")
    assert structured["@type"] == "Occupation"
    assert structured["estimatedSalary"][1]["median"] == 90000
    for title in (
        "Microservice APIs",
        "High Performance Python",
        "Python Cookbook",
        "Designing Data-Intensive",
    ):
        assert title in html
    assert "$30,000 a year" in html
    assert "$60,000 a year" in html
    assert "Maria Alvarez" in html
    assert "4.8" in html
    assert "$90.00 an hour" in html
    assert f'href="/mentors/{world.maria.id}"' in html
    assert "Penny Pending" not in html
    assert 'href="/mentors?career_path=backend-developer">Browse all 2 Backend Developer mentors</a>' in html
    assert 'href="/careers/devops-engineer"' in html


def test_mentor_listing_filters_and_keeps_the_form_state(client: FlaskClient, world: World) -> None:
    everyone = _page(client, "/mentors?career_path=backend-developer")
    cheap = _page(client, "/mentors?career_path=backend-developer&max_price=50&sort=price&q=&skill=")

    structured = assert_good_page(everyone, f"{BASE}/mentors?career_path=backend-developer")
    assert structured["numberOfItems"] == 2
    assert "<h1>Backend Developer mentors</h1>" in everyone
    assert "Maria Alvarez" in everyone
    assert "Carl Cheap" in everyone
    assert_good_page(cheap, f"{BASE}/mentors?career_path=backend-developer")
    assert "Carl Cheap" in cheap
    assert "Maria Alvarez" not in cheap
    assert (
        'name="max_price" type="number" min="0" max="10000" step="1" inputmode="numeric" value="50"' in cheap
    )
    assert '<option value="price" selected>' in cheap


def test_mentor_listing_pages_through_results(client: FlaskClient, world: World) -> None:
    for number in range(25):
        make_mentor(f"Extra Mentor {number}", chose=("mobile-developer",))
    db.session.commit()

    first = _page(client, "/mentors?career_path=mobile-developer&max_price=100")
    second = _page(client, "/mentors?career_path=mobile-developer&max_price=100&page=2")

    assert '<h2 id="results">25 mentors</h2>' in first
    assert len(re.findall(r'class="card mentor-card"', first)) == 20
    assert len(re.findall(r'class="card mentor-card"', second)) == 5
    assert 'rel="next" href="/mentors?page=2&amp;career_path=mobile-developer' in first
    assert "max_price=100" in re.search(r'rel="next" href="([^"]+)"', first).group(1)
    assert 'rel="prev"' in second


def test_mentor_profile_shows_reviews_and_free_times_in_the_chosen_zone(
    client: FlaskClient, world: World
) -> None:
    zone = ZoneInfo("America/New_York")
    html = _page(client, f"/mentors/{world.maria.id}?tz=America/New_York")

    structured = assert_good_page(html, f"{BASE}/mentors/{world.maria.id}")
    assert structured["mainEntity"]["name"] == "Maria Alvarez"
    assert structured["mainEntity"]["makesOffer"]["price"] == "90.00"
    assert "Clear, practical advice." in html
    assert "Ada," in html
    assert "Lovelace" not in html
    assert "Spanish" in html
    assert 'data-tz="America/New_York"' in html
    slots = list_free_slots(world.maria.id, None, None, zone, None)
    assert slots
    first = slots[0].start
    starts = re.findall(r'data-start="([^"]+)".*?data-local="time">([^<]+)</time>', html)
    assert starts[0] == (f"{first.astimezone(UTC):%Y-%m-%dT%H:%M:%S}Z", f"{first.astimezone(zone):%H:%M}")
    assert len(starts) == len(slots)
    assert 'href="/careers/backend-developer"' in html


def test_the_mentor_page_is_kept_until_the_mentors_calendar_moves(client: FlaskClient, world: World) -> None:
    url = f"/mentors/{world.maria.id}"
    shown = re.findall(r'data-start="([^"]+)"', _page(client, url))
    first = list_free_slots(world.maria.id, None, None, UTC, None)[0]
    BookingFactory(mentor=world.maria, start_at=first.start, end_at=first.end, blocked_until=first.end)
    db.session.commit()

    kept = re.findall(r'data-start="([^"]+)"', _page(client, url))
    bump_calendar_versions([world.maria.id])
    db.session.commit()
    fresh = re.findall(r'data-start="([^"]+)"', _page(client, url))

    taken = f"{first.start:%Y-%m-%dT%H:%M:%S}Z"
    assert shown[0] == taken
    assert kept == shown  # the booking was written past the service, so the version did not move
    assert taken not in fresh
    assert len(fresh) < len(shown)


def test_a_mentor_offering_no_session_length_has_a_page_without_free_times(
    client: FlaskClient, world: World
) -> None:
    AvailabilityScheduleFactory(profile=world.cheap)
    world.cheap.session_minutes = []
    db.session.commit()

    html = _page(client, f"/mentors/{world.cheap.id}")

    assert "Carl Cheap" in html
    assert "data-start=" not in html


def test_without_a_zone_the_server_renders_utc(client: FlaskClient, world: World) -> None:
    html = _page(client, f"/mentors/{world.maria.id}")

    start, shown = re.findall(r'data-start="([^"]+)".*?data-local="time">([^<]+)</time>', html)[0]
    assert shown == start[11:16]
    assert "data-tz=" not in html


def test_a_round_the_clock_calendar_still_makes_a_small_page(client: FlaskClient, world: World) -> None:
    AvailabilityScheduleFactory(
        profile=world.cheap,
        weekly=[RecurringInterval(weekday=day, start="00:00", end="24:00") for day in range(7)],
    )
    db.session.commit()

    html = _page(client, f"/mentors/{world.cheap.id}")

    assert_good_page(html, f"{BASE}/mentors/{world.cheap.id}")
    assert f'<a href="/mentors/{world.cheap.id}/book">see them all, for every length</a>' in html


@pytest.mark.parametrize(
    "url", ["/careers/astronaut", "/mentors/999999", "pending"], ids=["path", "no-mentor", "pending"]
)
def test_unknown_or_unlisted_pages_are_html_404s(client: FlaskClient, world: World, url: str) -> None:
    url = f"/mentors/{world.pending.id}" if url == "pending" else url

    html = _page(client, url, status=404)

    assert_good_page(html, f"{BASE}{url}")
    assert "<h1>Page not found</h1>" in html


def test_filters_that_make_no_sense_get_an_html_page(client: FlaskClient, world: World) -> None:
    html = _page(client, "/mentors?max_price=lots&sort=random", status=422)

    assert_good_page(html, f"{BASE}/mentors")
    assert "max_price" in html
    assert "sort" in html


def test_pages_are_listed_in_the_openapi_document(client: FlaskClient) -> None:
    paths = client.get("/api/openapi.json").get_json()["paths"]

    for path in ("/careers", "/careers/{slug}", "/mentors", "/mentors/{mentor_id}"):
        assert "text/html" in paths[path]["get"]["responses"]["200"]["content"], path
    assert paths["/careers/{slug}"]["get"]["responses"]["404"]


def test_times_are_iso_utc(world: World) -> None:
    assert world.maria.next_available_at is not None
    assert world.maria.next_available_at.tzinfo is not None
    assert datetime.now(UTC) < world.maria.next_available_at


@pytest.mark.parametrize(
    ("price_minor", "currency", "shown", "offer_price"),
    [(9000, "USD", "$90.00", "90.00"), (7250, "EUR", "€72.50", "72.50"), (8000, "JPY", "¥8,000", "8000")],
    ids=["USD", "EUR", "JPY"],
)
def test_prices_show_in_the_currencys_own_units(
    client: FlaskClient, price_minor: int, currency: str, shown: str, offer_price: str
) -> None:
    """Prices are minor units: cents for dollars and euros, but whole yen (JPY has no minor unit)."""
    load_paths()
    mentor = make_mentor(
        "Priced Mentor", chose=("devops-engineer",), price_cents=price_minor, currency=currency
    )
    db.session.commit()

    career = _page(client, "/careers/devops-engineer")
    profile = _page(client, f"/mentors/{mentor.id}")

    assert f"{shown} an hour" in career
    assert f"{shown} an hour" in profile
    offer = assert_good_page(profile, f"{BASE}/mentors/{mentor.id}")["mainEntity"]["makesOffer"]
    assert (offer["price"], offer["priceCurrency"]) == (offer_price, currency)


def test_languages_are_named_in_english(client: FlaskClient) -> None:
    mentor = make_mentor("Polyglot Mentor", languages=("de", "ja", "yue"))
    db.session.commit()

    html = _page(client, f"/mentors/{mentor.id}")

    assert "German, Japanese, Cantonese" in html
