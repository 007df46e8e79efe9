"""Demo data for `make run`: an admin, learners and a dozen mentors across the vetting states.

Every account is looked up by email first, so seeding twice changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from marketplace.accounts import service as accounts
from marketplace.accounts.models import Role, User
from marketplace.mentors import service as mentors
from marketplace.mentors.vetting import VettingAction

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
    admin = accounts.find_user_by_email(ADMIN_EMAIL)
    if admin is None:
        admin = accounts.create_admin(email=ADMIN_EMAIL, password=DEMO_PASSWORD, name="Demo Admin")
        created += 1
    for email, name, timezone in DEMO_LEARNERS:
        if accounts.find_user_by_email(email) is None:
            accounts.register(
                email=email, password=DEMO_PASSWORD, name=name, role=Role.LEARNER, timezone=timezone
            )
            created += 1
    for mentor in DEMO_MENTORS:
        if accounts.find_user_by_email(mentor.email) is None:
            _create_mentor(mentor, admin)
            created += 1
    return created


def _create_mentor(spec: DemoMentor, admin: User) -> None:
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
    if spec.decisions is None:
        return
    mentors.submit_profile(user)
    for action in spec.decisions:
        mentors.decide(admin, profile.id, action, note=f"Demo: {action.value}.")
