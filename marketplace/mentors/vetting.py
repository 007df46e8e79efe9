"""The vetting state machine, in one place: every transition the product allows, and nothing else."""

from __future__ import annotations

import enum


class VettingStatus(enum.StrEnum):
    DRAFT = "draft"
    PENDING_REVIEW = "pending_review"
    APPROVED = "approved"
    CHANGES_REQUESTED = "changes_requested"
    REJECTED = "rejected"
    SUSPENDED = "suspended"


class VettingAction(enum.StrEnum):
    SUBMIT = "submit"
    APPROVE = "approve"
    REJECT = "reject"
    REQUEST_CHANGES = "request_changes"
    SUSPEND = "suspend"
    REINSTATE = "reinstate"


ADMIN_ACTIONS = frozenset(VettingAction) - {VettingAction.SUBMIT}


class RevisionAction(enum.StrEnum):
    """Steps of a profile revision: they change the profile's fields, never its vetting status."""

    SUBMIT = "submit_revision"
    WITHDRAW = "withdraw_revision"
    APPROVE = "approve_revision"
    REJECT = "reject_revision"


REVISION_DECISIONS = frozenset({RevisionAction.APPROVE, RevisionAction.REJECT})
# Once submitted, a profile's public fields change only through a revision an admin approves: while it is
# reviewed (so what the admin approves is what they read), while it is public, and while it is suspended.
REVISED_STATUSES = frozenset({VettingStatus.PENDING_REVIEW, VettingStatus.APPROVED, VettingStatus.SUSPENDED})
# The vetting queue's filter for profiles with a revision waiting, beside the vetting statuses.
REVISION_PENDING = "revision_pending"


def admin_decision(value: str) -> VettingAction | RevisionAction:
    return RevisionAction(value) if value in REVISION_DECISIONS else VettingAction(value)


TRANSITIONS: dict[tuple[VettingStatus, VettingAction], VettingStatus] = {
    (VettingStatus.DRAFT, VettingAction.SUBMIT): VettingStatus.PENDING_REVIEW,
    (VettingStatus.CHANGES_REQUESTED, VettingAction.SUBMIT): VettingStatus.PENDING_REVIEW,
    (VettingStatus.PENDING_REVIEW, VettingAction.APPROVE): VettingStatus.APPROVED,
    (VettingStatus.PENDING_REVIEW, VettingAction.REJECT): VettingStatus.REJECTED,
    (VettingStatus.PENDING_REVIEW, VettingAction.REQUEST_CHANGES): VettingStatus.CHANGES_REQUESTED,
    (VettingStatus.APPROVED, VettingAction.SUSPEND): VettingStatus.SUSPENDED,
    (VettingStatus.SUSPENDED, VettingAction.REINSTATE): VettingStatus.APPROVED,
}


class ForbiddenTransition(Exception):
    def __init__(self, status: VettingStatus, action: VettingAction) -> None:
        super().__init__(f"Cannot {action.value} a profile that is {status.value}.")
        self.status = status
        self.action = action


def next_status(status: VettingStatus, action: VettingAction) -> VettingStatus:
    try:
        return TRANSITIONS[(status, action)]
    except KeyError:
        raise ForbiddenTransition(status, action) from None
