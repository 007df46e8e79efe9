"""Light, steady load through nginx: learners hold slots, pay through the Stripe stand-in (which sends its
webhooks through nginx), cancel and reschedule; mentors edit their availability; visitors read pages.

Each learner, mentor and visitor is a thread with a loop bounded by a stop event. Every call is recorded
(when, what, status); what the learners paid is remembered, for the checks afterwards.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import requests

from chaos.prodsim import STRIPE_SETTINGS
from tests.support.stripe_client import StripeTestClient

PRICE_CENTS = 6000
REQUEST_TIMEOUT = 30.0
# Most sessions are booked a few hours ahead, so reminders (prodsim's offsets) fall due during a run; the
# others more than a day ahead, where cancelling refunds in full and rescheduling is allowed
# (CANCELLATION_FULL_REFUND_HOURS, 24).
SOON_HOURS = 6
LATER_HOURS = (25, 48)


@dataclass(frozen=True)
class World:
    """Who the load plays: approved mentors (open round the clock in UTC) and learners, with API tokens."""

    mentor_ids: list[int]
    mentor_tokens: list[str]
    learner_tokens: list[str]


def seed(database_url: str, mentors: int = 6, learners: int = 10) -> World:
    """Write the mentors and learners with the app's own code (the database is migrated already)."""
    from marketplace.accounts.models import Role
    from marketplace.accounts.service import issue_token
    from marketplace.extensions import db
    from marketplace.scheduling.service import save_availability
    from tests.factories import MentorProfileFactory, UserFactory
    from tests.helpers import temporary_app

    with temporary_app(database_url) as app, app.app_context():
        profiles = [
            MentorProfileFactory(price_cents=PRICE_CENTS, currency="USD", timezone="UTC")
            for _ in range(mentors)
        ]
        for profile in profiles:
            save_availability(profile.user, availability(horizon_days=14, buffer_minutes=0))
        world = World(
            mentor_ids=[profile.id for profile in profiles],
            mentor_tokens=[issue_token(profile.user) for profile in profiles],
            learner_tokens=[issue_token(UserFactory(roles=(Role.LEARNER,))) for _ in range(learners)],
        )
        db.session.commit()
    return world


def availability(horizon_days: int, buffer_minutes: int) -> dict[str, Any]:
    return {
        "timezone": "UTC",
        "weekly": [{"weekday": day, "start": "00:00", "end": "24:00"} for day in range(7)],
        "buffer_minutes": buffer_minutes,
        "min_notice_minutes": 0,
        "horizon_days": horizon_days,
    }


@dataclass(frozen=True)
class Paid:
    """A PaymentIntent the stand-in reported succeeded, and the booking it paid for."""

    booking_id: int
    payment_intent_id: str
    amount_cents: int
    at: float


@dataclass
class Record:
    """What the load did: calls per outcome, payments made, errors seen by clients."""

    paid: list[Paid] = field(default_factory=list)
    statuses: dict[str, int] = field(default_factory=dict)
    client_errors: list[tuple[float, str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, key: str) -> None:
        with self.lock:
            self.statuses[key] = self.statuses.get(key, 0) + 1

    def add_paid(self, paid: Paid) -> None:
        with self.lock:
            self.paid.append(paid)

    def add_client_error(self, what: str, error: Exception) -> None:
        with self.lock:
            self.client_errors.append((time.time(), what, repr(error)[:200]))


class Actor(threading.Thread):
    """One person's loop: `step()` until the stop event is set, a short pause between steps."""

    def __init__(self, name: str, base_url: str, token: str | None, record: Record, stop: threading.Event,
                 rng: random.Random) -> None:  # fmt: skip
        super().__init__(name=name, daemon=True)
        self.base_url = base_url
        self.record = record
        self.stop_event = stop
        self.rng = rng
        self.http = requests.Session()
        if token:
            self.http.headers["Authorization"] = f"Bearer {token}"

    def call(self, method: str, path: str, label: str, **kwargs: Any) -> requests.Response | None:
        try:
            response = self.http.request(method, self.base_url + path, timeout=REQUEST_TIMEOUT, **kwargs)
        except requests.RequestException as exc:
            self.record.count(f"{label} error")
            self.record.add_client_error(label, exc)
            return None
        self.record.count(f"{label} {response.status_code}")
        return response

    def run(self) -> None:
        with self.http:
            while not self.stop_event.is_set():
                try:
                    self.step()
                except Exception as exc:  # a load thread reports and goes on; the checks judge
                    self.record.add_client_error(f"{self.name} step", exc)
                self.stop_event.wait(self.rng.uniform(0.3, 1.2))
        self.closing()

    def closing(self) -> None:
        """What the thread closes besides its HTTP session when the load stops."""

    def step(self) -> None:
        raise NotImplementedError


class Learner(Actor):
    def __init__(self, *args: Any, mentor_ids: list[int], stripe: StripeTestClient, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.mentor_ids = mentor_ids
        self.stripe = stripe
        self.confirmed: list[int] = []
        self.unpaid: list[int] = []

    def closing(self) -> None:
        self.stripe.session.close()

    def free_slots(self, mentor_id: int, later: bool) -> list[str]:
        """The mentor's free hour-long slots starting within SOON_HOURS, or (`later`) in LATER_HOURS."""
        today = datetime.now(UTC).date()
        response = self.call(
            "GET",
            f"/api/v1/mentors/{mentor_id}/slots",
            "slots",
            params={"from": today.isoformat(), "to": (today + timedelta(days=2)).isoformat(), "duration": 60,
                    "tz": "UTC"},
        )  # fmt: skip
        if response is None or response.status_code != 200:
            return []
        now = datetime.now(UTC)
        if later:
            first, last = now + timedelta(hours=LATER_HOURS[0]), now + timedelta(hours=LATER_HOURS[1])
        else:
            first, last = now, now + timedelta(hours=SOON_HOURS)
        return [
            slot["start"] for slot in response.json() if first < datetime.fromisoformat(slot["start"]) < last
        ]

    def step(self) -> None:
        choice = self.rng.random()
        if self.confirmed and choice < 0.05:
            self.cancel()
        elif self.confirmed and choice < 0.13:
            self.reschedule()
        else:
            self.hold_and_pay()

    def hold_and_pay(self) -> None:
        mentor_id = self.rng.choice(self.mentor_ids)
        slots = self.free_slots(mentor_id, later=self.rng.random() < 0.4)
        if not slots:
            return
        response = self.call(
            "POST",
            "/api/v1/bookings",
            "hold",
            json={
                "mentor_id": mentor_id,
                "start": self.rng.choice(slots),
                "duration_minutes": 60,
                "topic": "chaos",
            },
            headers={"Idempotency-Key": str(uuid.uuid4())},
        )
        if response is not None and response.status_code == 429 and self.unpaid:
            # Too many unpaid holds: give up the oldest one.
            self.call(
                "POST",
                f"/api/v1/bookings/{self.unpaid.pop(0)}/cancel",
                "cancel hold",
                json={"reason": "chaos"},
            )
        if response is None or response.status_code != 201:
            return
        booking = response.json()
        if self.rng.random() < 0.1:
            self.unpaid.append(booking["id"])
            return  # left unpaid: it lapses, or is cancelled when the learner needs another hold
        intent_id = booking["payment"]["payment_intent_id"]
        try:
            outcome = self.stripe.pay(intent_id)
        except (requests.RequestException, ValueError) as exc:
            self.record.add_client_error("stripe pay", exc)
            return
        if outcome.get("status") == "succeeded":
            self.record.add_paid(Paid(booking["id"], intent_id, booking["price_cents"], time.time()))
            self.confirmed.append(booking["id"])

    def _confirmed_booking(self) -> dict[str, Any] | None:
        """One of this learner's paid bookings that is still confirmed (as the API shows it), if any."""
        booking_id = self.rng.choice(self.confirmed)
        response = self.call("GET", f"/api/v1/bookings/{booking_id}", "booking")
        if response is None or response.status_code != 200:
            return None
        booking: dict[str, Any] = response.json()
        if booking["status"] != "confirmed":
            if booking["status"] != "pending_payment":
                self.confirmed.remove(booking_id)
            return None
        return booking

    def cancel(self) -> None:
        booking = self._confirmed_booking()
        if booking is None:
            return
        response = self.call(
            "POST", f"/api/v1/bookings/{booking['id']}/cancel", "cancel", json={"reason": "chaos"}
        )
        if response is not None and response.status_code == 200:
            self.confirmed.remove(booking["id"])

    def reschedule(self) -> None:
        booking = self._confirmed_booking()
        if booking is None:
            return
        slots = self.free_slots(booking["mentor_id"], later=True)
        if slots:
            self.call(
                "POST",
                f"/api/v1/bookings/{booking['id']}/reschedule",
                "reschedule",
                json={"start": self.rng.choice(slots)},
            )


class Mentor(Actor):
    def step(self) -> None:
        self.call(
            "PUT",
            "/api/v1/me/availability",
            "availability",
            json=availability(
                horizon_days=self.rng.choice([13, 14]), buffer_minutes=self.rng.choice([0, 0, 15])
            ),
        )
        self.stop_event.wait(2.0)


class Visitor(Actor):
    def __init__(self, *args: Any, mentor_ids: list[int], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.mentor_ids = mentor_ids

    def step(self) -> None:
        mentor_id = self.rng.choice(self.mentor_ids)
        path, label = self.rng.choice(
            [
                ("/mentors", "page /mentors"),
                (f"/mentors/{mentor_id}", "page /mentors/<id>"),
                ("/api/v1/mentors", "list mentors"),
                (f"/api/v1/mentors/{mentor_id}", "mentor"),
                ("/careers", "page /careers"),
            ]
        )
        self.call("GET", path, label)


def start_load(base_url: str, stripe_api_base: str, world: World, record: Record, stop: threading.Event,
               visitors: int = 2, seed_value: int = 11) -> list[Actor]:  # fmt: skip
    """Start one thread per learner and mentor of the world, and `visitors` readers; returns them running."""
    rng = random.Random(seed_value)
    actors: list[Actor] = []

    def spawn(make: Callable[[random.Random], Actor]) -> None:
        actors.append(make(random.Random(rng.random())))

    secret = STRIPE_SETTINGS["STRIPE_SECRET_KEY"]
    for number, token in enumerate(world.learner_tokens):
        spawn(lambda r, n=number, t=token: Learner(f"learner-{n}", base_url, t, record, stop, r,
                                                   mentor_ids=world.mentor_ids,
                                                   stripe=StripeTestClient(stripe_api_base, secret)))  # fmt: skip
    for number, token in enumerate(world.mentor_tokens):
        spawn(lambda r, n=number, t=token: Mentor(f"mentor-{n}", base_url, t, record, stop, r))
    for number in range(visitors):
        spawn(lambda r, n=number: Visitor(f"visitor-{n}", base_url, None, record, stop, r,
                                          mentor_ids=world.mentor_ids))  # fmt: skip
    for actor in actors:
        actor.start()
    return actors
