"""Every allowed and every forbidden vetting transition, checked against the contract's diagram."""

from __future__ import annotations

import itertools

import pytest

from marketplace.mentors.vetting import (
    TRANSITIONS,
    ForbiddenTransition,
    VettingAction,
    VettingStatus,
    next_status,
)

S, A = VettingStatus, VettingAction
CONTRACT = {
    (S.DRAFT, A.SUBMIT): S.PENDING_REVIEW,
    (S.CHANGES_REQUESTED, A.SUBMIT): S.PENDING_REVIEW,
    (S.PENDING_REVIEW, A.APPROVE): S.APPROVED,
    (S.PENDING_REVIEW, A.REJECT): S.REJECTED,
    (S.PENDING_REVIEW, A.REQUEST_CHANGES): S.CHANGES_REQUESTED,
    (S.APPROVED, A.SUSPEND): S.SUSPENDED,
    (S.SUSPENDED, A.REINSTATE): S.APPROVED,
}
FORBIDDEN = [pair for pair in itertools.product(S, A) if pair not in CONTRACT]


def test_the_machine_is_exactly_the_contract() -> None:
    assert TRANSITIONS == CONTRACT


@pytest.mark.parametrize(("status", "action"), list(CONTRACT), ids=lambda v: v.value)
def test_allowed_transition(status: VettingStatus, action: VettingAction) -> None:
    assert next_status(status, action) is CONTRACT[(status, action)]


@pytest.mark.parametrize(("status", "action"), FORBIDDEN, ids=lambda v: v.value)
def test_forbidden_transition(status: VettingStatus, action: VettingAction) -> None:
    with pytest.raises(ForbiddenTransition):
        next_status(status, action)
