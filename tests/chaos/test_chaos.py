"""The chaos run in short: the production shape (chaos/prodsim.py) under load, one fault of each kind with
short windows, and every invariant of `make chaos` checked afterwards."""

from __future__ import annotations

import pytest

from chaos.run import Plan, run_chaos

pytestmark = pytest.mark.slow(seconds=140)


def test_invariants_hold_through_one_fault_of_each_kind() -> None:
    outcome = run_chaos(Plan.short())

    assert [fault.name for fault in outcome.faults] == [
        "PostgreSQL restart",
        "Redis stopped 4s",
        "kill -9 gunicorn worker",
        "kill -9 web instance",
        "kill -9 Celery worker",
        "kill -9 active beat",
        "50 slow-loris sockets",
    ]
    broken = [check.name for check in outcome.checks if not check.ok]
    assert not broken, outcome.report
