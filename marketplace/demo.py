"""Demo data for `make run`: an admin, learners and a dozen mentors across the vetting states.

Every account is looked up by email first, so seeding twice changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from typing import cast
from zoneinfo import ZoneInfo

from marketplace.accounts import service as accounts
from marketplace.accounts.models import Role, User
from marketplace.bookings import service as bookings
from marketplace.bookings import state_changes
from marketplace.bookings.availability.service import list_free_slots
from marketplace.bookings.models import Booking, BookingStatus
from marketplace.careers import service as careers
from marketplace.careers.content import load_career_paths
from marketplace.core.time import utcnow
from marketplace.extensions import db
from marketplace.mentors import service as mentors
from marketplace.mentors.models import MentorProfile
from marketplace.mentors.vetting import VettingAction, VettingStatus
from marketplace.scheduling import service as scheduling
from marketplace.scheduling.slots import Slot

DEMO_PASSWORD = "demo-password-123"
ADMIN_EMAIL = "admin@demo.test"


@dataclass(frozen=True)
class DemoMentor:
    email: str
    name: str
    timezone: str
    headline: str
    bio: str
    skills: list[str]
    career_paths: list[str]
    languages: list[str]
    years_experience: int
    price_cents: int
    currency: str = "USD"
    session_minutes: list[int] = field(default_factory=lambda: [30, 60])
    # The admin decisions applied after submission, in order; None means never submitted.
    decisions: tuple[VettingAction, ...] | None = (VettingAction.APPROVE,)
    # Local working hours on weekdays, and whether Saturday mornings are open too.
    hours: tuple[str, str] = ("09:00", "17:00")
    saturdays: bool = False


DEMO_LEARNERS = (
    ("ada@demo.test", "Ada Learner", "Europe/London"),
    ("ben@demo.test", "Ben Learner", "America/New_York"),
    ("chen@demo.test", "Chen Learner", "Asia/Singapore"),
)

DEMO_MENTORS = (
    DemoMentor(
        "maria@demo.test",
        "Maria Alvarez",
        "Europe/Madrid",
        "Staff backend engineer, payments and distributed systems",
        "Twelve years building payment platforms in Python and Go. I help engineers design APIs, "
        "reason about consistency and prepare for system design interviews.",
        ["python", "apis", "system design", "databases", "sql"],
        ["backend-developer"],
        ["en", "es"],
        12,
        9000,
    ),
    DemoMentor(
        "kenji@demo.test",
        "Kenji Watanabe",
        "Asia/Tokyo",
        "Frontend lead: React, TypeScript and accessibility",
        "I lead a frontend team shipping a design system used by forty product teams. Let's work on "
        "your React architecture, TypeScript and accessible UI.",
        ["javascript", "typescript", "react", "html", "css"],
        ["frontend-developer"],
        ["en", "ja"],
        9,
        7000,
    ),
    DemoMentor(
        "priya@demo.test",
        "Priya Raman",
        "Asia/Kolkata",
        "Machine-learning engineer taking models to production",
        "From notebooks to reliable services: feature pipelines, model serving and monitoring. "
        "Former data scientist, now ML platform engineer.",
        ["python", "machine learning", "deep learning", "mlops"],
        ["machine-learning-engineer", "data-scientist"],
        ["en", "hi"],
        8,
        6500,
        "USD",
        [45, 60],
    ),
    DemoMentor(
        "tom@demo.test",
        "Tom Becker",
        "Europe/Berlin",
        "DevOps and platform engineer, Kubernetes in anger",
        "I run Kubernetes clusters for a living and teach teams to automate deployments, observe "
        "their systems and sleep through the night.",
        ["linux", "docker", "kubernetes", "ci/cd", "cloud"],
        ["devops-engineer"],
        ["en", "de"],
        11,
        8000,
        "EUR",
    ),
    DemoMentor(
        "lucia@demo.test",
        "Lucia Ferreira",
        "America/Sao_Paulo",
        "Data engineer: pipelines, warehouses and SQL that scales",
        "Batch and streaming pipelines, dbt, warehouse modelling. I help analysts become data engineers.",
        ["python", "sql", "data modeling", "databases"],
        ["data-engineer"],
        ["en", "pt"],
        7,
        5500,
    ),
    DemoMentor(
        "sam@demo.test",
        "Sam Okafor",
        "America/New_York",
        "Engineering manager coaching new leads",
        "Eight years managing teams from five to forty engineers. Hiring, one-on-ones, growing people "
        "and shipping predictably.",
        ["leadership", "hiring", "mentoring"],
        ["engineering-manager"],
        ["en"],
        15,
        12000,
        "USD",
        [30, 60, 90],
    ),
    DemoMentor(
        "olga@demo.test",
        "Olga Petrova",
        "Europe/Warsaw",
        "Security engineer: application security and threat modelling",
        "Pen-tester turned AppSec lead. We can review your code for vulnerabilities or plan your move "
        "into security.",
        ["security", "python", "linux"],
        ["security-engineer", "backend-developer"],
        ["en", "pl", "ru"],
        10,
        8500,
    ),
    DemoMentor(
        "noah@demo.test",
        "Noah Kim",
        "America/Los_Angeles",
        "Full-stack engineer and startup CTO",
        "Built three products from zero with TypeScript, Python and Postgres. Practical advice on "
        "shipping fast without making a mess.",
        ["javascript", "typescript", "python", "sql", "react"],
        ["full-stack-developer", "backend-developer"],
        ["en", "ko"],
        10,
        7500,
    ),
    DemoMentor(
        "ines@demo.test",
        "Ines Dubois",
        "Europe/Paris",
        "Mobile developer, iOS and Android",
        "Swift and Kotlin apps with millions of installs. Portfolio reviews and interview practice.",
        ["swift", "kotlin", "mobile"],
        ["mobile-developer"],
        ["en", "fr"],
        6,
        6000,
        "EUR",
        decisions=(),
    ),
    DemoMentor(
        "raj@demo.test",
        "Raj Mehta",
        "Asia/Kolkata",
        "QA automation engineer",
        "Test strategy and automation with Playwright and pytest.",
        ["testing", "python", "javascript"],
        ["qa-automation-engineer"],
        ["en", "hi"],
        5,
        3000,
        decisions=(VettingAction.REQUEST_CHANGES,),
    ),
    DemoMentor(
        "eva@demo.test",
        "Eva Lind",
        "Europe/Stockholm",
        "Product manager in B2B SaaS",
        "Discovery, roadmaps and working with engineers.",
        ["product strategy", "communication"],
        ["product-manager"],
        ["en", "sv"],
        9,
        9500,
        decisions=(VettingAction.APPROVE, VettingAction.SUSPEND),
    ),
    DemoMentor(
        "dan@demo.test",
        "Dan Novak",
        "Europe/Prague",
        "Backend developer",
        "Java and Spring.",
        ["java"],
        ["backend-developer"],
        ["en", "cs"],
        3,
        2500,
        decisions=None,
    ),
)

DEMO_LOGINS = (
    ("admin", ADMIN_EMAIL, DEMO_PASSWORD),
    ("learner", DEMO_LEARNERS[0][0], DEMO_PASSWORD),
    ("mentor", DEMO_MENTORS[0].email, DEMO_PASSWORD),
)


def seed() -> int:
    """Create what is missing; return how many accounts were created."""
    created = 0
    learners: list[User] = []
    careers.sync_career_paths(load_career_paths())
    admin = accounts.find_user_by_email(ADMIN_EMAIL)
    if admin is None:
        admin = accounts.create_admin(email=ADMIN_EMAIL, password=DEMO_PASSWORD, name="Demo Admin")
        created += 1
    for email, name, timezone in DEMO_LEARNERS:
        learner = accounts.find_user_by_email(email)
        if learner is None:
            learner = accounts.register(
                email=email, password=DEMO_PASSWORD, name=name, role=Role.LEARNER, timezone=timezone
            )
            created += 1
        learners.append(learner)
    for position, mentor in enumerate(DEMO_MENTORS):
        if accounts.find_user_by_email(mentor.email) is None:
            profile = _create_mentor(mentor, admin)
            if profile.status is VettingStatus.APPROVED:
                _add_bookings(profile, learners, position)
            created += 1
    return created


def _create_mentor(spec: DemoMentor, admin: User) -> MentorProfile:
    user = accounts.register(
        email=spec.email, password=DEMO_PASSWORD, name=spec.name, role=Role.MENTOR, timezone=spec.timezone
    )
    profile = mentors.save_own_profile(
        user,
        {
            "headline": spec.headline,
            "bio": spec.bio,
            "skills": spec.skills,
            "career_paths": spec.career_paths,
            "languages": spec.languages,
            "years_experience": spec.years_experience,
            "price_cents": spec.price_cents,
            "currency": spec.currency,
            "session_minutes": spec.session_minutes,
            "timezone": spec.timezone,
        },
    )
    start, end = spec.hours
    weekly = [{"weekday": day, "start": start, "end": end} for day in range(5)]
    if spec.saturdays:
        weekly.append({"weekday": 5, "start": "10:00", "end": "13:00"})
    scheduling.save_availability(
        user,
        {
            "timezone": spec.timezone,
            "weekly": weekly,
            "buffer_minutes": 15,
            "min_notice_minutes": 180,
            "horizon_days": 60,
        },
    )
    if spec.decisions is None:
        return profile
    mentors.submit_profile(user)
    for action in spec.decisions:
        mentors.decide(admin, profile.id, action, note=f"Demo: {action.value}.")
    return profile


def _add_bookings(profile: MentorProfile, learners: list[User], position: int) -> None:
    """A living calendar: confirmed and cancelled upcoming sessions, a reviewed past one, and for the first
    mentors an unpaid hold (each learner keeps at most one, well under the unpaid-hold limit).

    Demo confirmations skip the card payment, which only a learner's browser can make."""
    # Every demo mentor has a time zone.
    upcoming = list_free_slots(profile.id, None, None, ZoneInfo(cast(str, profile.timezone)), 60)
    picks: list[Slot] = upcoming[2::9][:4]
    for index, slot in enumerate(picks):
        if index == 0 and position >= len(learners):
            continue
        learner = learners[(position + index) % len(learners)]
        booking = bookings.create_booking(learner, profile.id, slot.start, 60, "Demo: career conversation")
        if index in (1, 2):
            state_changes.confirm_paid_booking(booking.id)
        if index == 3:
            # Cancelled before paying, so the demo never asks the payment provider for a refund.
            bookings.cancel_booking(learner, booking.id, "Demo: something came up")
    _add_past_session(profile, learners[position % len(learners)])


def _add_past_session(profile: MentorProfile, learner: User) -> None:
    """Past sessions cannot be booked through the API, so the demo writes one directly and reviews it."""
    zone = ZoneInfo(cast(str, profile.timezone))  # every demo mentor has a time zone
    day = (utcnow().astimezone(zone) - timedelta(days=7)).date()
    start = datetime.combine(day, time(10, 0), zone)
    past = Booking(
        mentor=profile,
        learner=learner,
        status=BookingStatus.COMPLETED.value,
        start_at=start,
        end_at=start + timedelta(hours=1),
        blocked_until=start + timedelta(hours=1, minutes=15),
        duration_minutes=60,
        topic="Demo: first session",
        price_cents=profile.price_cents or 0,
        currency=profile.currency or "USD",
        hold_expires_at=start - timedelta(days=2),
        confirmed_at=start - timedelta(days=2),
    )
    db.session.add(past)
    db.session.flush()
    bookings.add_review(learner, past.id, 5, "Clear, practical advice. Would book again.")
