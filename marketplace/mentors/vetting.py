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
