"""The whole API under schemathesis with every check, as a learner, a mentor and an admin at once (Bearer tokens),
against gunicorn on PostgreSQL: no answer is a server error and every answer is what the OpenAPI document says.

Each role's run leaves its terminal output and reports (JSON summary, NDJSON events with every failing
request) in test-artifacts/schemathesis/<role>/.
"""

from __future__ import annotations

import itertools
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask_migrate import upgrade

from marketplace.accounts.models import Role
from marketplace.accounts.service import issue_token
from marketplace.bookings.models import Booking, BookingStatus, RefundStatus, Review
from marketplace.bookings.service import rotate_calendar_feed
from marketplace.careers.content import load_career_paths
from marketplace.careers.service import sync_career_paths
from marketplace.extensions import db
from marketplace.mentors.service import decide
from marketplace.mentors.vetting import VettingAction, VettingStatus
from marketplace.payments.models import EarningEntry, EarningKind
from marketplace.scheduling.service import save_availability, save_override
from tests.factories import BookingFactory, MentorProfileFactory, UserFactory
from tests.helpers import temporary_app
from tests.support.databases import fresh_database
from tests.support.live_server import live_server
from tests.support.servers import PROJECT_ROOT

pytestmark = [pytest.mark.slow(seconds=230), pytest.mark.postgres_only]

ARTIFACTS = PROJECT_ROOT / "test-artifacts" / "schemathesis"
# Each role fuzzes the operations it has a use for (the learner also every public one); a role's refusals
# elsewhere are the authorization matrix's business. Filters as schemathesis options.
ROLE_OPERATIONS = {
    "learner": [
        "--exclude-path-regex",
        # Revoking tokens by id would, sooner or later, revoke the learner's own and end its run in 401s;
        # tests/accounts and the authorization matrix cover that route.
        r"^/api/v1/(admin/|auth/tokens/|me/(mentor-profile|availability|earnings|calendar-feed))",
    ],
    "mentor": ["--include-path-regex", r"^/api/v1/(me|bookings|mentors/\{mentor_id\}$)"],
    "admin": ["--include-path-regex", r"^/api/v1/(admin/|bookings)"],
}
# Bounds the run to a few minutes on two busy cores: examples per operation and phase, and a fixed seed so
# a failure in CI replays the same requests here (the roles' interleaving may differ).
MAX_EXAMPLES = 5
SEED = 20261202
RUN_TIMEOUT_SECONDS = 600

# Every check schemathesis has runs (`--checks all`) except these, each for the reason given.
CHECKS_LEFT_OUT = {
    "positive_data_acceptance": (
        "it wants 2xx for every request the schema allows, but well-formed requests can still be wrong by "
        "rules no JSON Schema states, and the service rightly answers them 422 (or 400): a session length "
        "the mentor does not offer, a start that is not a free slot, a date that has passed, a time zone "
        "name missing from the IANA database, an Idempotency-Key reused for another request, a webhook "
        "without a valid Stripe signature"
    ),
}


@dataclass
class Run:
    role: str
    report: dict[str, Any]
    output: str
    directory: Path

    def failures(self) -> list[dict[str, Any]]:
        return self.report["failures"]

    def describe(self) -> str:
        lines = [f"{self.role}: {self.report['test_cases']['generated']} cases"]
        lines += [
            f"  {failure['title']} x{failure['count']} in {', '.join(failure['operations'])}"
            for failure in self.failures()
        ]
        lines += [f"  error: {error['title']} x{error['count']}" for error in self.report["errors"]]
        return "\n".join(lines)


def _in_days(days: int, hour: int) -> datetime:
    return datetime.now(UTC).replace(hour=hour, minute=0, second=0, microsecond=0) + timedelta(days=days)


def _booking(mentor: Any, learner: Any, status: BookingStatus, start: datetime, **fields: Any) -> Booking:
    return BookingFactory(
        mentor=mentor,
        learner=learner,
        status=status.value,
        start_at=start,
        topic="Fuzzing a marketplace",
        hold_expires_at=start - timedelta(days=1) if start < datetime.now(UTC) else _in_days(0, 23),
        **fields,
    )


def _seed(url: str) -> dict[str, str]:
    """Something for most routes to find, with every nullable field null somewhere; a token per role."""
    with temporary_app(url) as app, app.app_context():
        upgrade()
        sync_career_paths(load_career_paths())
        admin = UserFactory(roles=(Role.ADMIN,))
        learner = UserFactory(roles=(Role.LEARNER,))
        mentor = MentorProfileFactory(price_cents=6000, currency="USD", timezone="UTC")
        save_availability(
            mentor.user,
            {
                "timezone": "UTC",
                "weekly": [{"weekday": day, "start": "00:00", "end": "24:00"} for day in range(7)],
                "buffer_minutes": 0,
                "min_notice_minutes": 0,
                "horizon_days": 60,
            },
        )
        save_override(mentor.user, {"day": _in_days(9, 0).date(), "intervals": []})
        rotate_calendar_feed(mentor.user)
        MentorProfileFactory(
            headline=None,
            bio=None,
            years_experience=None,
            price_cents=None,
            currency=None,
            timezone=None,
            vetting_status=VettingStatus.DRAFT.value,
            tags={"skills": [], "languages": [], "career_paths": []},
        )
        for action, note in ((VettingAction.APPROVE, None), (VettingAction.REQUEST_CHANGES, "Add a bio.")):
            waiting = MentorProfileFactory(vetting_status=VettingStatus.PENDING_REVIEW.value)
            decide(admin, waiting.id, action, note)
        MentorProfileFactory(vetting_status=VettingStatus.PENDING_REVIEW.value)

        _booking(mentor, learner, BookingStatus.PENDING_PAYMENT, _in_days(2, 10))
        _booking(mentor, learner, BookingStatus.CONFIRMED, _in_days(3, 10), confirmed_at=_in_days(0, 0))
        completed = _booking(mentor, learner, BookingStatus.COMPLETED, _in_days(-3, 10))
        db.session.add(
            Review(
                booking_id=completed.id, mentor_id=mentor.id, learner_id=learner.id, rating=5, comment=None
            )
        )
        _booking(mentor, learner, BookingStatus.COMPLETED, _in_days(-2, 10))
        _booking(
            mentor,
            learner,
            BookingStatus.CANCELLED,
            _in_days(4, 10),
            cancelled_at=_in_days(0, 0),
            cancelled_by_id=learner.id,
            refund_amount_cents=6000,
            refund_status=RefundStatus.PENDING.value,
        )
        db.session.add(
            EarningEntry(
                mentor_id=mentor.id,
                booking_id=completed.id,
                kind=EarningKind.SESSION.value,
                amount_cents=4800,
                currency="USD",
            )
        )
        tokens = {
            "learner": issue_token(learner),
            "mentor": issue_token(mentor.user),
            "admin": issue_token(admin),
        }
        db.session.commit()
        return tokens


@pytest.fixture
def marketplace(database_url: str, tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    ARTIFACTS.mkdir(parents=True)
    with fresh_database(database_url, tmp_path, prefix="fuzz") as url:
        tokens = _seed(url)
        with live_server(url, log_path=ARTIFACTS / "gunicorn.log") as base_url:
            yield base_url, tokens


def _schemathesis(base_url: str, role: str, token: str) -> subprocess.Popen[str]:
    """Start one role's run; the roles run at once, against the same server and data."""
    directory = ARTIFACTS / role
    directory.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable, "-m", "schemathesis.cli", "run", f"{base_url}/api/openapi.json",
        "--url", base_url,
        "--header", f"Authorization: Bearer {token}",
        *ROLE_OPERATIONS[role],
        "--checks", "all",
        "--exclude-checks", ",".join(CHECKS_LEFT_OUT),
        "--max-examples", str(MAX_EXAMPLES),
        "--seed", str(SEED),
        "--generation-database", "none",
        # One worker: hypothesis parses lambdas with `ast.parse`, which CPython 3.11 before 3.11.8 cannot do
        # from two threads at once (SystemError: AST constructor recursion depth mismatch).
        "--workers", "1",
        "--request-timeout", "30",
        "--report", "json,ndjson",
        "--report-json-path", str(directory / "report.json"),
        "--report-ndjson-path", str(directory / "events.ndjson"),
        "--no-color",
    ]  # fmt: skip
    return subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=directory
    )


def _finished(role: str, process: subprocess.Popen[str]) -> Run:
    try:
        output, _ = process.communicate(timeout=RUN_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        output, _ = process.communicate()
    directory = ARTIFACTS / role
    (directory / "output.txt").write_text(output)
    report_path = directory / "report.json"
    assert report_path.exists(), (
        f"schemathesis wrote no report (exit {process.returncode}):\n{output[-4000:]}"
    )
    return Run(role, json.loads(report_path.read_text()), output, directory)


def _server_errors(log: str) -> dict[str, list[str]]:
    """The requests gunicorn logged a traceback for, by cause: the exception and the project's last frame."""
    causes: dict[str, list[str]] = {}
    for block in re.split(r"^\[[^\]]+\] \[\d+\] \[ERROR\] Error handling request ", log, flags=re.M)[1:]:
        request, *rest = block.splitlines()
        traceback = list(itertools.takewhile(lambda line: not line.startswith("["), rest))
        frames = [
            f"marketplace/{frame[1]}:{frame[2]} in {frame[3]}"
            for frame in (
                re.search(r'/marketplace/([^"]+)", line (\d+), in (\w+)', line) for line in traceback
            )
            if frame
        ]
        exceptions = [line for line in traceback if re.match(r"[\w.]+(Error|Exception)\w*:", line)]
        cause = f"{exceptions[-1][:200] if exceptions else 'unknown'} ({frames[-1] if frames else 'no frame of ours'})"
        causes.setdefault(cause, []).append(request)
    return causes


def test_every_answer_is_documented_and_none_is_a_server_error(
    marketplace: tuple[str, dict[str, str]],
) -> None:
    base_url, tokens = marketplace

    started = {role: _schemathesis(base_url, role, tokens[role]) for role in ROLE_OPERATIONS}
    runs = [_finished(role, process) for role, process in started.items()]

    summary = "\n".join(run.describe() for run in runs)
    server_errors = _server_errors((ARTIFACTS / "gunicorn.log").read_text(errors="replace"))
    if server_errors:
        summary += "\nServer errors by cause (count, first request):\n" + "\n".join(
            f"  {len(requests)}x {cause}\n     e.g. {requests[0][:300]}"
            for cause, requests in server_errors.items()
        )
    (ARTIFACTS / "summary.txt").write_text(summary + "\n")
    for run in runs:
        assert run.report["complete"], f"{run.role}: the run did not finish\n{run.output[-4000:]}"
        assert run.report["operations"]["tested"] > 0, run.output[-4000:]
    assert not [run for run in runs if run.failures() or run.report["errors"]], (
        f"{summary}\n\nDetails in {ARTIFACTS}/<role>/output.txt"
    )
