"""The calendar version moves with every change to a mentor's free slots, and `next_available_at` follows.

`OPERATIONS` lists every way the slots change; `test_every_booking_transition_is_an_operation` fails when a
booking state change is added to the model without being added here, so a new path cannot forget the bump
unnoticed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import time_machine
from flask.testing import FlaskClient
from sqlalchemy import func, select, update

from marketplace.accounts.models import Role
from marketplace.bookings import state_changes
from marketplace.bookings.models import TRANSITIONS, Booking, BookingStatus
from marketplace.bookings.tasks import refresh_stale_next_available
from marketplace.core.outbox import OutboxMessage
from marketplace.core.time import utcnow
from marketplace.extensions import db
from marketplace.mentors import calendar_version
from marketplace.mentors.models import MentorProfile
from marketplace.mentors.vetting import VettingStatus
from marketplace.payments import service as payments
from tests.factories import MentorProfileFactory, UserFactory
from tests.helpers import ApiUser

NOW = datetime(2027, 1, 4, 6, 0, tzinfo=UTC)  # Monday, 07:00 in Berlin
MONDAY_11 = "2027-01-04T11:00:00+01:00"
THURSDAY_10 = "2027-01-07T10:00:00+01:00"
WEEKDAYS_9_TO_17 = [{"weekday": day, "start": "09:00", "end": "17:00"} for day in range(5)]


@dataclass
class World:
    client: FlaskClient
    clock: time_machine.Coordinates
    mentor: MentorProfile
    mentor_api: ApiUser
    learner: ApiUser

    @property
    def mentor_id(self) -> int:
        return self.mentor.id

    def availability(self, **changes: Any) -> Any:
        body = {
            "timezone": "Europe/Berlin",
            "weekly": WEEKDAYS_9_TO_17,
            "buffer_minutes": 15,
            "min_notice_minutes": 120,
            "horizon_days": 60,
            **changes,
        }
        response = self.mentor_api.put("/api/v1/me/availability", json=body)
        assert response.status_code == 200, response.get_data(as_text=True)
        return response

    def hold(self, start: str = MONDAY_11, duration: int = 60) -> int:
        response = self.learner.post(
            "/api/v1/bookings",
            json={
                "mentor_id": self.mentor_id,
                "start": start,
                "duration_minutes": duration,
                "topic": "Advice",
            },
        )
        assert response.status_code == 201, response.get_data(as_text=True)
        return int(response.get_json()["id"])

    def confirmed(self, start: str = MONDAY_11) -> int:
        booking_id = self.hold(start)
        assert state_changes.confirm_paid_booking(booking_id)
        db.session.commit()
        return booking_id

    def awaiting(self) -> int:
        """A request whose card is authorized, waiting for the mentor (who confirms requests)."""
        booking_id = self.hold()
        assert state_changes.await_mentor(booking_id, utcnow(), timedelta(hours=48))
        db.session.commit()
        return booking_id

    def expired(self) -> int:
        booking_id = self.hold()
        self.clock.shift(timedelta(minutes=16))
        assert state_changes.expire_lapsed_holds() == [booking_id]
        db.session.commit()
        return booking_id

    def post(self, api: ApiUser, path: str, body: Any = None, status: int = 200) -> None:
        self.call("post", api, path, status, body)

    def call(self, method: str, api: ApiUser, path: str, status: int, body: Any = None) -> None:
        kwargs = {} if body is None else {"json": body}
        response = getattr(api, method)(path, **kwargs)
        assert response.status_code == status, response.get_data(as_text=True)


@pytest.fixture
def world(client: FlaskClient, clock: time_machine.Coordinates) -> World:
    """A Berlin mentor offering 30 and 60 minutes on weekdays 9-17 (15 min buffer, 2 h notice)."""
    profile = MentorProfileFactory(
        session_minutes=[30, 60], user=UserFactory(roles=(Role.MENTOR,), timezone="Europe/Berlin")
    )
    learner = UserFactory(roles=(Role.LEARNER,))
    world = World(client, clock, profile, ApiUser(client, profile.user), ApiUser(client, learner))
    world.availability()
    return world


def _version(mentor_id: int) -> int:
    return int(db.session.scalar(select(MentorProfile.calendar_version).where(MentorProfile.id == mentor_id)))


def _refreshes_queued(mentor_id: int) -> int:
    return int(
        db.session.scalar(
            select(func.count())
            .select_from(OutboxMessage)
            .where(
                OutboxMessage.task == calendar_version.REFRESH_TASK,
                OutboxMessage.payload["profile_id"].as_integer() == mentor_id,
            )
        )
    )


def _next_available(mentor_id: int) -> datetime | None:
    return db.session.scalar(select(MentorProfile.next_available_at).where(MentorProfile.id == mentor_id))


# --- every operation that changes free slots bumps the version once ---------------------------------


@dataclass(frozen=True)
class Operation:
    act: Callable[[World, Any], object]
    setup: Callable[[World], Any] = lambda _world: None
    transition: tuple[BookingStatus, BookingStatus] | None = None


def _admin_decides(world: World, decision: str) -> None:
    admin = ApiUser(world.client, UserFactory(roles=(Role.ADMIN,)))
    world.post(admin, f"/api/v1/admin/mentors/{world.mentor_id}/vetting", {"decision": decision, "note": "x"})


def _settle_expired(_world: World, booking_id: int) -> None:
    assert payments.settle_paid_booking(db.session.get(Booking, booking_id)) == "confirmed after expiry"
    db.session.commit()


def _commit_after(call: Callable[[], object]) -> None:
    assert call()
    db.session.commit()


PENDING, CONFIRMED = BookingStatus.PENDING_PAYMENT, BookingStatus.CONFIRMED
AWAITING = BookingStatus.AWAITING_MENTOR

OPERATIONS: dict[str, Operation] = {
    "availability saved": Operation(lambda w, _: w.availability(buffer_minutes=30)),
    "override set": Operation(
        lambda w, _: w.post(
            w.mentor_api, "/api/v1/me/availability/overrides", {"date": "2027-01-05", "intervals": []}, 201
        )
    ),
    "override removed": Operation(
        act=lambda w, _: w.call("delete", w.mentor_api, "/api/v1/me/availability/overrides/2027-01-05", 204),
        setup=lambda w: w.post(
            w.mentor_api, "/api/v1/me/availability/overrides", {"date": "2027-01-05", "intervals": []}, 201
        ),
    ),
    # An approved mentor's new lengths are a revision: the slots change when an admin approves it.
    "session lengths changed": Operation(
        act=lambda w, _: _admin_decides(w, "approve_revision"),
        setup=lambda w: w.call(
            "put", w.mentor_api, "/api/v1/me/mentor-profile", 200, {"session_minutes": [30]}
        ),
    ),
    "vetting status changed": Operation(lambda w, _: _admin_decides(w, "suspend")),
    "hold created": Operation(lambda w, _: w.hold()),
    "hold confirmed": Operation(
        act=lambda _w, booking_id: _commit_after(lambda: state_changes.confirm_paid_booking(booking_id)),
        setup=lambda w: w.hold(),
        transition=(PENDING, CONFIRMED),
    ),
    "hold cancelled": Operation(
        act=lambda w, booking_id: w.post(w.learner, f"/api/v1/bookings/{booking_id}/cancel", {}),
        setup=lambda w: w.hold(),
        transition=(PENDING, BookingStatus.CANCELLED),
    ),
    "hold released": Operation(
        act=lambda _w, booking_id: _commit_after(
            lambda: state_changes.release_unpaid_hold(booking_id, "gone")
        ),
        setup=lambda w: w.hold(),
        transition=(PENDING, BookingStatus.CANCELLED),
    ),
    "hold expired": Operation(
        act=lambda w, _: (
            w.clock.shift(timedelta(minutes=16)),
            _commit_after(state_changes.expire_lapsed_holds),
        ),
        setup=lambda w: w.hold(),
        transition=(PENDING, BookingStatus.EXPIRED),
    ),
    "confirmed booking cancelled": Operation(
        act=lambda w, booking_id: w.post(w.mentor_api, f"/api/v1/bookings/{booking_id}/cancel", {}),
        setup=lambda w: w.confirmed(THURSDAY_10),
        transition=(CONFIRMED, BookingStatus.CANCELLED),
    ),
    "booking rescheduled": Operation(
        act=lambda w, booking_id: w.post(
            w.learner, f"/api/v1/bookings/{booking_id}/reschedule", {"start": "2027-01-08T14:00:00+01:00"}
        ),
        setup=lambda w: w.confirmed(THURSDAY_10),
    ),
    "session completed": Operation(
        act=lambda w, _: (w.clock.shift(timedelta(hours=32)), _commit_after(state_changes.complete_finished)),
        setup=lambda w: w.confirmed(MONDAY_11),
        transition=(CONFIRMED, BookingStatus.COMPLETED),
    ),
    "no-show reported": Operation(
        act=lambda w, booking_id: (
            w.clock.shift(timedelta(hours=4, minutes=10)),
            w.post(w.mentor_api, f"/api/v1/bookings/{booking_id}/no-show", {"who": "learner"}),
        ),
        setup=lambda w: w.confirmed(MONDAY_11),
        transition=(CONFIRMED, BookingStatus.NO_SHOW),
    ),
    "card authorized for a request": Operation(
        act=lambda _w, booking_id: _commit_after(
            lambda: state_changes.await_mentor(booking_id, utcnow(), timedelta(hours=48))
        ),
        setup=lambda w: w.hold(),
        transition=(PENDING, AWAITING),
    ),
    "request accepted and captured": Operation(
        act=lambda _w, booking_id: _commit_after(lambda: state_changes.confirm_paid_booking(booking_id)),
        setup=World.awaiting,
        transition=(AWAITING, CONFIRMED),
    ),
    "request declined": Operation(
        act=lambda w, booking_id: w.post(w.mentor_api, f"/api/v1/bookings/{booking_id}/decline", {}),
        setup=World.awaiting,
        transition=(AWAITING, BookingStatus.DECLINED),
    ),
    "request withdrawn": Operation(
        act=lambda w, booking_id: w.post(w.learner, f"/api/v1/bookings/{booking_id}/cancel", {}),
        setup=World.awaiting,
        transition=(AWAITING, BookingStatus.CANCELLED),
    ),
    "request unanswered": Operation(
        act=lambda w, _: (
            w.clock.shift(timedelta(hours=49)),
            _commit_after(state_changes.expire_lapsed_holds),
        ),
        setup=World.awaiting,
        transition=(AWAITING, BookingStatus.EXPIRED),
    ),
    "late payment revives an expired hold": Operation(
        act=_settle_expired, setup=World.expired, transition=(BookingStatus.EXPIRED, CONFIRMED)
    ),
}


@pytest.mark.parametrize("name", OPERATIONS)
def test_an_operation_that_changes_free_slots_bumps_the_version_once(world: World, name: str) -> None:
    operation = OPERATIONS[name]
    state = operation.setup(world)
    version, queued = _version(world.mentor_id), _refreshes_queued(world.mentor_id)

    operation.act(world, state)

    assert _version(world.mentor_id) == version + 1
    assert _refreshes_queued(world.mentor_id) == queued + 1


def test_every_booking_transition_is_an_operation() -> None:
    transitions = {(before, after) for before, afters in TRANSITIONS.items() for after in afters}

    assert transitions == {op.transition for op in OPERATIONS.values() if op.transition is not None}


def test_edits_that_leave_the_slots_alone_do_not_bump(world: World) -> None:
    version = _version(world.mentor_id)

    profile = {"headline": "Staff engineer", "session_minutes": [60, 30]}  # the lengths it already offers
    assert world.mentor_api.put("/api/v1/me/mentor-profile", json=profile).status_code == 200

    assert _version(world.mentor_id) == version


def test_touches_in_one_transaction_bump_once_and_a_rollback_forgets_them(world: World) -> None:
    version, queued = _version(world.mentor_id), _refreshes_queued(world.mentor_id)

    calendar_version.bump_calendar_versions([world.mentor_id])
    db.session.rollback()
    assert _version(world.mentor_id) == version

    calendar_version.bump_calendar_versions([world.mentor_id])
    with db.session.begin_nested():
        calendar_version.bump_calendar_versions([world.mentor_id, world.mentor_id])
    try:
        with db.session.begin_nested():
            calendar_version.bump_calendar_versions([world.mentor_id])
            raise RuntimeError("rolled back")
    except RuntimeError:
        pass
    db.session.commit()

    assert _version(world.mentor_id) == version + 1
    assert _refreshes_queued(world.mentor_id) == queued + 1


def test_a_hold_over_a_lapsed_one_bumps_once(world: World) -> None:
    """Creating a hold expires the lapsed one first: two changes, one transaction, one bump."""
    world.hold()
    world.clock.shift(timedelta(minutes=26))  # lapsed, and past the cooldown on holding it again
    version = _version(world.mentor_id)

    world.hold()

    assert _version(world.mentor_id) == version + 1


# --- next_available_at -------------------------------------------------------------------------------


@pytest.fixture
def sparse(world: World) -> World:
    """One free 30-minute slot in the whole horizon: Tuesday 10:00 Berlin (09:00 UTC)."""
    world.availability(
        weekly=[{"weekday": 1, "start": "10:00", "end": "10:30"}], horizon_days=7, buffer_minutes=0
    )
    return world


TUESDAY_10_UTC = datetime(2027, 1, 5, 9, 0, tzinfo=UTC)


def test_next_available_is_the_first_free_slot_of_the_shortest_length(sparse: World) -> None:
    assert _next_available(sparse.mentor_id) == TUESDAY_10_UTC


def test_booking_the_only_free_slot_clears_it_and_cancelling_brings_it_back(sparse: World) -> None:
    booking_id = sparse.hold("2027-01-05T10:00:00+01:00", duration=30)
    assert _next_available(sparse.mentor_id) is None

    sparse.post(sparse.learner, f"/api/v1/bookings/{booking_id}/cancel", {})

    assert _next_available(sparse.mentor_id) == TUESDAY_10_UTC


def test_booking_the_first_free_slot_moves_it_to_the_next(world: World) -> None:
    first = _next_available(world.mentor_id)
    assert first == datetime(2027, 1, 4, 8, 0, tzinfo=UTC)  # Monday 09:00 Berlin, after the 2 h notice

    world.hold("2027-01-04T09:00:00+01:00", duration=30)

    # 09:30 + the 15-minute buffer: the next grid start is 10:00.
    assert _next_available(world.mentor_id) == datetime(2027, 1, 4, 9, 0, tzinfo=UTC)


def test_an_availability_change_moves_it(sparse: World) -> None:
    sparse.availability(
        weekly=[{"weekday": 0, "start": "15:00", "end": "16:00"}], horizon_days=7, buffer_minutes=0
    )

    assert _next_available(sparse.mentor_id) == datetime(2027, 1, 4, 14, 0, tzinfo=UTC)


def test_no_availability_or_no_approval_means_none(sparse: World) -> None:
    sparse.availability(weekly=[])
    assert _next_available(sparse.mentor_id) is None

    sparse.availability()
    assert _next_available(sparse.mentor_id) is not None
    _admin_decides(sparse, "suspend")
    assert _next_available(sparse.mentor_id) is None


def test_a_refresh_computed_for_an_older_version_is_not_stored(world: World) -> None:
    stored = _next_available(world.mentor_id)
    version = _version(world.mentor_id)

    assert not calendar_version.set_next_available(world.mentor_id, version - 1, NOW + timedelta(days=30))
    assert _next_available(world.mentor_id) == stored


def test_the_sweep_refreshes_approved_mentors_whose_time_passed_or_who_have_none(world: World) -> None:
    """Time passing moves the first free slot with no write to bump anything: beat catches up."""
    suspended = MentorProfileFactory(vetting_status=VettingStatus.SUSPENDED.value)
    db.session.execute(update(MentorProfile).values(next_available_at=NOW - timedelta(hours=1)))
    db.session.commit()
    world.clock.shift(timedelta(days=1))  # Tuesday 07:00 Berlin

    refresh_stale_next_available()

    assert _next_available(world.mentor_id) == datetime(2027, 1, 5, 8, 0, tzinfo=UTC)
    assert _next_available(suspended.id) == NOW - timedelta(hours=1)
