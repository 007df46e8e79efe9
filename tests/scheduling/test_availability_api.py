from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import pytest
import time_machine
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import scoped_session

from marketplace.accounts.models import Role
from marketplace.extensions import db
from marketplace.mentors.models import MentorProfile
from marketplace.scheduling import service, slots
from marketplace.scheduling.models import (
    AvailabilitySchedule,
    DateOverride,
    OverrideInterval,
    RecurringInterval,
)
from tests.factories import AvailabilityScheduleFactory, MentorProfileFactory, UserFactory
from tests.helpers import ApiUser, assert_error_shape, recorded_selects

URL = "/api/v1/me/availability"
OVERRIDES = f"{URL}/overrides"
# A Wednesday; in Berlin it is 13:00 on 2027-01-06, so that is the mentor's "today".
NOW = datetime(2027, 1, 6, 12, 0, tzinfo=UTC)
TODAY = date(2027, 1, 6)

SCHEDULE = {
    "timezone": "Europe/Berlin",
    "weekly": [
        {"weekday": 2, "start": "10:00", "end": "18:00"},
        {"weekday": 0, "start": "12:00", "end": "13:00"},
        {"weekday": 0, "start": "09:00", "end": "12:00"},
        {"weekday": 6, "start": "20:00", "end": "24:00"},
    ],
    "buffer_minutes": 15,
    "min_notice_minutes": 240,
    "horizon_days": 30,
}


@pytest.fixture
def frozen_clock() -> Iterator[None]:
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def mentor(client: FlaskClient) -> ApiUser:
    return ApiUser(client, MentorProfileFactory(session_minutes=[60, 30]).user)


def _weekly(*intervals: tuple[int, str, str]) -> list[dict[str, Any]]:
    return [{"weekday": day, "start": start, "end": end} for day, start, end in intervals]


def _messages(body: dict[str, Any], *path: str) -> str:
    found: Any = body["errors"]
    for key in path:
        found = found[key]
    return " ".join(found)


def _schedule_of(mentor: ApiUser) -> AvailabilitySchedule:
    return db.session.scalar(
        select(AvailabilitySchedule).join(MentorProfile).where(MentorProfile.user_id == mentor.user.id)
    )


def _profile_of(mentor: ApiUser) -> MentorProfile:
    return db.session.scalar(select(MentorProfile).where(MentorProfile.user_id == mentor.user.id))


def test_put_then_get_round_trips_with_weekly_intervals_sorted(mentor: ApiUser) -> None:
    saved = mentor.put(URL, json=SCHEDULE)

    assert saved.status_code == 200, saved.get_json()
    expected = {
        **SCHEDULE,
        "weekly": _weekly(
            (0, "09:00", "12:00"), (0, "12:00", "13:00"), (2, "10:00", "18:00"), (6, "20:00", "24:00")
        ),
        "overrides": [],
    }
    assert saved.get_json() == expected
    assert mentor.get(URL).get_json() == expected


def test_settings_left_out_take_their_defaults(mentor: ApiUser) -> None:
    response = mentor.put(URL, json={"timezone": "Asia/Kolkata", "weekly": []})

    assert response.status_code == 200
    body = response.get_json()
    assert (body["buffer_minutes"], body["min_notice_minutes"], body["horizon_days"]) == (0, 120, 60)
    assert body["timezone"] == "Asia/Kolkata"
    assert body["weekly"] == []


@pytest.mark.usefixtures("frozen_clock")
def test_put_replaces_weekly_intervals_and_settings_but_keeps_overrides(mentor: ApiUser) -> None:
    mentor.put(URL, json=SCHEDULE)
    mentor.post(OVERRIDES, json={"date": "2027-01-08", "intervals": []})
    replacement = {"timezone": "America/New_York", "weekly": _weekly((4, "08:00", "10:00"))}

    response = mentor.put(URL, json=replacement)

    assert response.status_code == 200
    body = mentor.get(URL).get_json()
    assert body["timezone"] == "America/New_York"
    assert body["weekly"] == _weekly((4, "08:00", "10:00"))
    assert body["buffer_minutes"] == 0
    assert body["overrides"] == [{"date": "2027-01-08", "intervals": []}]
    schedule_id = _schedule_of(mentor).id
    rows = db.session.scalar(
        select(func.count())
        .select_from(RecurringInterval)
        .where(RecurringInterval.schedule_id == schedule_id)
    )
    assert rows == 1


def test_putting_the_same_intervals_again_does_not_trip_over_the_rows_it_replaces(mentor: ApiUser) -> None:
    assert mentor.put(URL, json=SCHEDULE).status_code == 200
    assert mentor.put(URL, json=SCHEDULE).status_code == 200

    assert len(mentor.get(URL).get_json()["weekly"]) == len(SCHEDULE["weekly"])


@pytest.mark.parametrize(
    ("change", "path", "message"),
    [
        (
            {"weekly": _weekly((0, "09:00", "12:00"), (2, "09:00", "10:00"), (0, "11:30", "13:00"))},
            ("weekly",),
            "Intervals overlap on Monday: 09:00-12:00 and 11:30-13:00.",
        ),
        ({"weekly": _weekly((6, "10:00", "11:00"), (6, "10:00", "10:30"))}, ("weekly",), "on Sunday"),
        ({"weekly": _weekly((0, "9:00", "12:00"))}, ("weekly", "0", "start"), "HH:MM"),
        ({"weekly": _weekly((0, "09:00", "12h30"))}, ("weekly", "0", "end"), "HH:MM"),
        ({"weekly": _weekly((0, "09:00\n", "12:00"))}, ("weekly", "0", "start"), "one line"),
        ({"weekly": _weekly((0, "0\u0669:00", "12:00"))}, ("weekly", "0", "start"), "HH:MM"),
        ({"weekly": _weekly((0, "09:00", "24:30"))}, ("weekly", "0", "end"), "HH:MM"),
        ({"weekly": _weekly((0, "24:00", "24:00"))}, ("weekly", "0", "start"), "HH:MM"),
        ({"weekly": _weekly((0, "12:00", "09:00"))}, ("weekly", "0", "end"), "End must be after start."),
        ({"weekly": _weekly((0, "09:00", "09:00"))}, ("weekly", "0", "end"), "End must be after start."),
        ({"weekly": _weekly((7, "09:00", "10:00"))}, ("weekly", "0", "weekday"), ""),
        ({"weekly": _weekly((-1, "09:00", "10:00"))}, ("weekly", "0", "weekday"), ""),
        (
            {"weekly": _weekly(*[(d, f"{h:02d}:00", f"{h:02d}:30") for d in range(7) for h in range(8)])},
            ("weekly",),
            "50",
        ),
        ({"timezone": "Mars/Olympus_Mons"}, ("timezone",), "IANA"),
        ({"timezone": None}, ("timezone",), ""),
        ({"horizon_days": 0}, ("horizon_days",), ""),
        ({"horizon_days": 366}, ("horizon_days",), ""),
        ({"buffer_minutes": -5}, ("buffer_minutes",), ""),
        ({"buffer_minutes": 241}, ("buffer_minutes",), ""),
        ({"min_notice_minutes": 30 * 24 * 60 + 1}, ("min_notice_minutes",), ""),
        ({"overrides": []}, ("overrides",), ""),
    ],
)
def test_bad_schedules_are_422_naming_the_field_and_save_nothing(
    mentor: ApiUser, change: dict[str, Any], path: tuple[str, ...], message: str
) -> None:
    body = assert_error_shape(mentor.put(URL, json={**SCHEDULE, **change}), 422)

    assert message in _messages(body, "json", *path)
    assert_error_shape(mentor.get(URL), 404)


def test_a_missing_timezone_or_weekly_is_422(mentor: ApiUser) -> None:
    body = assert_error_shape(mentor.put(URL, json={"buffer_minutes": 10}), 422)

    assert set(body["errors"]["json"]) == {"timezone", "weekly"}


def test_a_bad_put_leaves_the_saved_schedule_alone(mentor: ApiUser) -> None:
    mentor.put(URL, json=SCHEDULE)

    assert_error_shape(mentor.put(URL, json={**SCHEDULE, "weekly": _weekly((0, "10:00", "09:00"))}), 422)

    assert len(mentor.get(URL).get_json()["weekly"]) == len(SCHEDULE["weekly"])


def test_get_before_any_put_is_404_saying_what_to_do(mentor: ApiUser) -> None:
    body = assert_error_shape(mentor.get(URL), 404)

    assert "PUT /api/v1/me/availability" in body["message"]


def test_a_mentor_without_a_profile_gets_404(client: FlaskClient) -> None:
    mentor = ApiUser(client, UserFactory(roles=(Role.MENTOR,)))

    for response in (mentor.put(URL, json=SCHEDULE), mentor.get(URL)):
        body = assert_error_shape(response, 404)
        assert "mentor profile first" in body["message"]


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("get", URL, None),
        ("put", URL, SCHEDULE),
        ("post", OVERRIDES, {"date": "2027-01-08", "intervals": []}),
        ("delete", f"{OVERRIDES}/2027-01-08", None),
    ],
)
def test_learners_get_403_and_anonymous_callers_401(
    client: FlaskClient, method: str, path: str, body: dict[str, Any] | None
) -> None:
    learner = ApiUser(client, UserFactory(roles=(Role.LEARNER,)))
    kwargs = {"json": body} if body is not None else {}

    assert_error_shape(getattr(learner, method)(path, **kwargs), 403)
    assert_error_shape(getattr(client, method)(path, **kwargs), 401)
    assert db.session.scalar(select(func.count()).select_from(AvailabilitySchedule)) == 0


@pytest.mark.usefixtures("frozen_clock")
def test_overrides_are_created_replaced_listed_in_date_order_and_deleted(mentor: ApiUser) -> None:
    mentor.put(URL, json=SCHEDULE)

    created = mentor.post(
        OVERRIDES, json={"date": "2027-01-11", "intervals": [{"start": "10:00", "end": "11:00"}]}
    )
    assert created.status_code == 201
    assert created.get_json() == {"date": "2027-01-11", "intervals": [{"start": "10:00", "end": "11:00"}]}
    mentor.post(OVERRIDES, json={"date": "2027-01-08", "intervals": [{"start": "15:00", "end": "16:00"}]})

    replaced = mentor.post(
        OVERRIDES,
        json={
            "date": "2027-01-11",
            "intervals": [{"start": "16:00", "end": "24:00"}, {"start": "08:00", "end": "09:30"}],
        },
    )
    assert replaced.status_code == 201
    listed = mentor.get(URL).get_json()["overrides"]
    assert listed == [
        {"date": "2027-01-08", "intervals": [{"start": "15:00", "end": "16:00"}]},
        {
            "date": "2027-01-11",
            "intervals": [{"start": "08:00", "end": "09:30"}, {"start": "16:00", "end": "24:00"}],
        },
    ]

    assert mentor.delete(f"{OVERRIDES}/2027-01-11").status_code == 204
    assert [o["date"] for o in mentor.get(URL).get_json()["overrides"]] == ["2027-01-08"]
    body = assert_error_shape(mentor.delete(f"{OVERRIDES}/2027-01-11"), 404)
    assert "2027-01-11" in body["message"]


@pytest.mark.usefixtures("frozen_clock")
def test_a_day_off_is_an_override_without_intervals(mentor: ApiUser) -> None:
    mentor.put(URL, json=SCHEDULE)
    monday = date(2027, 1, 11)

    response = mentor.post(OVERRIDES, json={"date": monday.isoformat(), "intervals": []})

    assert response.status_code == 201
    assert mentor.get(URL).get_json()["overrides"] == [{"date": "2027-01-11", "intervals": []}]
    rules = service.rules_for(_profile_of(mentor))
    assert rules is not None
    assert rules.overrides == {monday: ()}
    assert (
        slots.free_slots(
            rules, [], NOW, datetime(2027, 1, 11, tzinfo=UTC), datetime(2027, 1, 12, tzinfo=UTC), 60
        )
        == []
    )


@pytest.mark.usefixtures("frozen_clock")
def test_only_overrides_from_the_mentors_today_on_are_listed(mentor: ApiUser) -> None:
    mentor.put(URL, json=SCHEDULE)
    schedule = _schedule_of(mentor)
    schedule.overrides.append(DateOverride(day=TODAY - timedelta(days=1)))
    db.session.commit()

    assert mentor.post(OVERRIDES, json={"date": TODAY.isoformat(), "intervals": []}).status_code == 201

    assert [o["date"] for o in mentor.get(URL).get_json()["overrides"]] == [TODAY.isoformat()]


@pytest.mark.usefixtures("frozen_clock")
def test_an_override_for_a_past_date_is_422(mentor: ApiUser) -> None:
    mentor.put(URL, json=SCHEDULE)

    body = assert_error_shape(mentor.post(OVERRIDES, json={"date": "2027-01-05", "intervals": []}), 422)

    assert "2027-01-06" in _messages(body, "date")
    assert mentor.get(URL).get_json()["overrides"] == []


@pytest.mark.parametrize(
    ("body", "path", "message"),
    [
        (
            {
                "date": "2027-01-11",
                "intervals": [{"start": "09:00", "end": "11:00"}, {"start": "10:00", "end": "12:00"}],
            },
            ("intervals",),
            "Intervals overlap on that date: 09:00-11:00 and 10:00-12:00.",
        ),
        (
            {"date": "2027-01-11", "intervals": [{"start": "09:00", "end": "9:30"}]},
            ("intervals", "0", "end"),
            "HH:MM",
        ),
        (
            {"date": "2027-01-11", "intervals": [{"start": "11:00", "end": "10:00"}]},
            ("intervals", "0", "end"),
            "after start",
        ),
        ({"date": "2027-02-30", "intervals": []}, ("date",), ""),
        ({"date": "2027-01-11"}, ("intervals",), ""),
        ({"intervals": []}, ("date",), ""),
    ],
)
@pytest.mark.usefixtures("frozen_clock")
def test_bad_overrides_are_422_naming_the_field(
    mentor: ApiUser, body: dict[str, Any], path: tuple[str, ...], message: str
) -> None:
    mentor.put(URL, json=SCHEDULE)

    error = assert_error_shape(mentor.post(OVERRIDES, json=body), 422)

    assert message in _messages(error, "json", *path)
    assert mentor.get(URL).get_json()["overrides"] == []


def test_deleting_with_a_malformed_date_is_422(mentor: ApiUser) -> None:
    mentor.put(URL, json=SCHEDULE)

    body = assert_error_shape(mentor.delete(f"{OVERRIDES}/next-monday"), 422)

    assert "date" in body["errors"]


def test_overrides_need_a_schedule_first(mentor: ApiUser) -> None:
    body = assert_error_shape(mentor.post(OVERRIDES, json={"date": "2099-01-05", "intervals": []}), 404)

    assert "PUT /api/v1/me/availability" in body["message"]
    assert_error_shape(mentor.delete(f"{OVERRIDES}/2099-01-05"), 404)


@pytest.mark.usefixtures("frozen_clock")
def test_rules_for_gives_the_slot_engine_everything_it_needs(mentor: ApiUser) -> None:
    mentor.put(URL, json=SCHEDULE)
    mentor.post(OVERRIDES, json={"date": "2027-01-11", "intervals": [{"start": "10:00", "end": "11:00"}]})
    mentor.post(OVERRIDES, json={"date": "2027-01-12", "intervals": []})

    rules = service.rules_for(_profile_of(mentor))

    assert rules == slots.AvailabilityRules(
        timezone="Europe/Berlin",
        weekly=(
            slots.WeeklyInterval(0, time(9), time(12)),
            slots.WeeklyInterval(0, time(12), time(13)),
            slots.WeeklyInterval(2, time(10), time(18)),
            slots.WeeklyInterval(6, time(20), time(0)),  # 24:00 is slots.py's following midnight
        ),
        overrides={
            date(2027, 1, 11): (slots.LocalInterval(time(10), time(11)),),
            date(2027, 1, 12): (),
        },
        buffer_minutes=15,
        min_notice_minutes=240,
        horizon_days=30,
        session_minutes=(30, 60),
    )


def test_rules_for_is_none_without_a_schedule_or_without_session_lengths(db_session: scoped_session) -> None:
    assert service.rules_for(MentorProfileFactory()) is None

    schedule = AvailabilityScheduleFactory(profile=MentorProfileFactory(session_minutes=[]))
    profile = db.session.get(MentorProfile, schedule.profile_id)
    assert service.rules_for(profile) is None


def test_rules_for_loads_everything_in_three_queries(db_session: scoped_session) -> None:
    schedule = AvailabilityScheduleFactory()
    for offset in range(5):
        interval = OverrideInterval(start="10:00", end="11:00")
        schedule.overrides.append(
            DateOverride(day=date(2027, 1, 4) + timedelta(days=offset), intervals=[interval])
        )
    db.session.flush()
    profile_id = schedule.profile_id
    db.session.expunge_all()
    profile = db.session.get(MentorProfile, profile_id)

    with recorded_selects() as statements:
        rules = service.rules_for(profile)

    assert rules is not None
    assert len(rules.weekly) == 5
    assert all(len(intervals) == 1 for intervals in rules.overrides.values())
    assert len(rules.overrides) == 5
    assert len(statements) <= 3, statements


def test_a_berlin_monday_rule_starts_at_nine_berlin_time_in_winter_and_summer(
    db_session: scoped_session,
) -> None:
    schedule = AvailabilityScheduleFactory(
        profile=MentorProfileFactory(session_minutes=[60]),
        weekly=[RecurringInterval(weekday=0, start="09:00", end="12:00")],
    )
    rules = service.rules_for(db.session.get(MentorProfile, schedule.profile_id))
    assert rules is not None

    def starts(monday: date) -> list[datetime]:
        day = datetime.combine(monday, time(0), tzinfo=UTC)
        found = slots.free_slots(rules, [], day - timedelta(days=3), day, day + timedelta(days=1), 60)
        return [slot.start for slot in found]

    winter, summer = date(2027, 1, 4), date(2027, 7, 5)
    assert starts(winter) == [
        datetime.combine(winter, time(h, m), tzinfo=UTC)
        for h, m in ((8, 0), (8, 30), (9, 0), (9, 30), (10, 0))
    ]
    assert starts(summer) == [
        datetime.combine(summer, time(h, m), tzinfo=UTC)
        for h, m in ((7, 0), (7, 30), (8, 0), (8, 30), (9, 0))
    ]
