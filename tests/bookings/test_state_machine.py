"""The table in bookings/models.py is the state machine: every (from, to) pair it allows is a move some
service function makes, and every pair it forbids is refused by every function that moves to `to`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from itertools import product

import pytest
import time_machine

from marketplace.bookings import no_shows, service, state_changes
from marketplace.bookings.models import TRANSITIONS, Booking, BookingStatus, NoShowParty, sources_of
from marketplace.core.errors import Conflict
from marketplace.core.time import utcnow
from marketplace.extensions import db
from marketplace.mentors.models import MentorProfile
from tests.helpers import ApiUser

S = BookingStatus
STATES = list(BookingStatus)


@dataclass(frozen=True)
class Move:
    """A public operation that moves a booking to `to`, and the states it moves from."""

    to: BookingStatus
    sources: frozenset[BookingStatus]
    run: Callable[[Booking, ApiUser, ApiUser], object]
    # How long after the booking is made the move is tried: the session is over and the hold has lapsed, so
    # only the state decides (a no-show is reported within a day of the end, completion waits for a day).
    wait: timedelta = timedelta(days=1)


def _refused_with_409(call: Callable[[], object]) -> bool:
    try:
        call()
    except Conflict:
        return False
    return True


MOVES = {
    "confirm_paid_booking": Move(
        S.CONFIRMED,
        frozenset({S.PENDING_PAYMENT, S.AWAITING_MENTOR}),
        lambda b, _l, _m: state_changes.confirm_paid_booking(b.id),
    ),
    "revive_paid_booking": Move(
        S.CONFIRMED, frozenset({S.EXPIRED}), lambda b, _l, _m: state_changes.revive_paid_booking(b.id)
    ),
    "release_unpaid_hold": Move(
        S.CANCELLED,
        frozenset({S.PENDING_PAYMENT}),
        lambda b, _l, _m: state_changes.release_unpaid_hold(b.id, "gone"),
    ),
    "cancel_unpaid_holds": Move(
        S.CANCELLED,
        frozenset({S.PENDING_PAYMENT}),
        lambda b, _l, _m: state_changes.cancel_unpaid_holds(b.mentor_id, "gone"),
    ),
    "cancel_booking": Move(
        S.CANCELLED,
        frozenset({S.PENDING_PAYMENT, S.AWAITING_MENTOR, S.CONFIRMED}),
        lambda b, learner, _m: _refused_with_409(lambda: service.cancel_booking(learner.user, b.id, None)),
    ),
    "expire_lapsed_holds": Move(
        S.EXPIRED,
        frozenset({S.PENDING_PAYMENT, S.AWAITING_MENTOR}),
        lambda _b, _l, _m: state_changes.expire_lapsed_holds(),
    ),
    "expire_request": Move(
        S.EXPIRED, frozenset({S.AWAITING_MENTOR}), lambda b, _l, _m: state_changes.expire_request(b)
    ),
    "await_mentor": Move(
        S.AWAITING_MENTOR,
        frozenset({S.PENDING_PAYMENT}),
        lambda b, _l, _m: state_changes.await_mentor(b.id, utcnow(), timedelta(hours=48)),
    ),
    "decline_request": Move(
        S.DECLINED, frozenset({S.AWAITING_MENTOR}), lambda b, _l, _m: state_changes.decline_request(b, None)
    ),
    "complete_finished": Move(
        S.COMPLETED,
        frozenset({S.CONFIRMED}),
        lambda _b, _l, _m: state_changes.complete_finished(),
        wait=timedelta(days=2),
    ),
    "report_no_show": Move(
        S.NO_SHOW,
        frozenset({S.CONFIRMED}),
        lambda b, _l, mentor: _refused_with_409(
            lambda: no_shows.report_no_show(mentor.user, b.id, NoShowParty.LEARNER, None)
        ),
    ),
}


def _booking_in(state: BookingStatus, mentor: MentorProfile, learner: ApiUser) -> Booking:
    """A booking already in `state` (written directly: how it got there is not what is tested here)."""
    start = utcnow() + timedelta(hours=4)
    paid = state in (S.CONFIRMED, S.COMPLETED, S.NO_SHOW)
    booking = Booking(
        mentor=mentor,
        learner=learner.user,
        status=state.value,
        start_at=start,
        end_at=start + timedelta(hours=1),
        blocked_until=start + timedelta(hours=1, minutes=15),
        duration_minutes=60,
        topic="Advice",
        price_cents=6000,
        currency="USD",
        hold_expires_at=utcnow() + timedelta(minutes=15),
        confirmed_at=utcnow() if paid else None,
    )
    db.session.add(booking)
    db.session.flush()
    return booking


def _status(booking: Booking) -> BookingStatus:
    return BookingStatus(db.session.scalar(db.select(Booking.status).where(Booking.id == booking.id)))


def test_the_moves_cover_exactly_the_table() -> None:
    """Together the operations move along every allowed pair, and none claims a pair the table forbids."""
    for to in STATES:
        moved_from = {source for move in MOVES.values() if move.to is to for source in move.sources}
        assert moved_from == sources_of(to), to


@pytest.mark.parametrize(("name", "source"), list(product(MOVES, STATES)))
def test_each_operation_moves_only_from_the_states_the_table_allows(
    name: str,
    source: BookingStatus,
    mentor: MentorProfile,
    mentor_api: ApiUser,
    learner: ApiUser,
    clock: time_machine.Coordinates,
) -> None:
    move = MOVES[name]
    booking = _booking_in(source, mentor, learner)
    clock.shift(move.wait)

    reported = bool(move.run(booking, learner, mentor_api))

    moved = source in move.sources
    assert move.to in TRANSITIONS[source] or not moved
    assert _status(booking) is (move.to if moved else source)
    assert reported is moved


@pytest.mark.parametrize(("source", "to"), list(product(STATES, STATES)))
def test_transition_wins_exactly_on_the_pairs_of_the_table(
    source: BookingStatus, to: BookingStatus, mentor: MentorProfile, learner: ApiUser
) -> None:
    booking = _booking_in(source, mentor, learner)

    won = state_changes.transition(booking, to)

    assert won is (to in TRANSITIONS[source])
    assert _status(booking) is (to if won else source)
    assert booking.state is _status(booking)


def test_a_use_case_may_narrow_the_sources_but_not_widen_them(
    mentor: MentorProfile, learner: ApiUser
) -> None:
    booking = _booking_in(S.CONFIRMED, mentor, learner)

    assert not state_changes.transition(booking, S.CANCELLED, only_from=(S.PENDING_PAYMENT,))
    with pytest.raises(ValueError, match="Not a booking transition"):
        state_changes.transition(booking, S.CONFIRMED, only_from=(S.CANCELLED,))
    assert _status(booking) is S.CONFIRMED
