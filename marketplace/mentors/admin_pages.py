"""The vetting pages: the queue, and a mentor's profile with its history and the decision form.

The decision is read with the API's `VettingDecisionSchema` and made by the API's `service.decide`; the
decisions offered are the ones the vetting state machine allows from the profile's status.
"""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, request, url_for
from flask.views import MethodView
from flask_login import current_user
from marshmallow import validate
from werkzeug.wrappers import Response

from marketplace.core.admin_pages import (
    ListArgsSchema,
    acted,
    admin_page,
    admin_render,
    documented,
    listing,
    listing_page,
    page_errors,
)
from marketplace.core.api import Blueprint
from marketplace.core.errors import DomainError
from marketplace.core.pages import Form, read_form
from marketplace.core.validation import fields
from marketplace.extensions import db
from marketplace.mentors import service
from marketplace.mentors.models import MentorProfile
from marketplace.mentors.schemas import NOTE_REQUIRED_FOR, VettingDecisionSchema
from marketplace.mentors.vetting import (
    ADMIN_ACTIONS,
    REVISION_PENDING,
    TRANSITIONS,
    RevisionAction,
    VettingStatus,
    admin_decision,
)

html = Blueprint("vetting_pages", __name__, url_prefix="/admin/vetting", description="Vetting pages (admin)")

# How each decision reads on the form.
DECISION_LABELS = {
    "approve": "Approve: the profile goes live",
    "request_changes": "Request changes: the mentor edits and submits again",
    "reject": "Reject",
    "suspend": "Suspend: the profile leaves the listing",
    "reinstate": "Reinstate: the profile is live again",
    RevisionAction.APPROVE.value: "Approve the proposed changes",
    RevisionAction.REJECT.value: "Reject the proposed changes",
}
QUEUE_STATES = [REVISION_PENDING, *(status.value for status in VettingStatus)]


class QueueArgsSchema(ListArgsSchema):
    status = fields.String(
        load_default=VettingStatus.PENDING_REVIEW.value, validate=validate.OneOf(QUEUE_STATES)
    )


def decisions_for(profile: MentorProfile) -> list[str]:
    """What an admin may decide now: the state machine's moves from this status, then the pending revision."""
    moves = [
        action.value
        for (status, action) in TRANSITIONS
        if status == profile.status and action in ADMIN_ACTIONS
    ]
    if profile.pending_revision is not None:
        moves += [RevisionAction.APPROVE.value, RevisionAction.REJECT.value]
    return moves


@html.route("")
class VettingQueuePage(MethodView):
    @listing_page(
        html, QueueArgsSchema, "Profiles in a vetting status (pending review first), or with changes waiting"
    )
    def get(self, args: dict[str, Any]) -> Response:
        page = listing(service.vetting_queue(args["status"]), args["page"])
        return admin_render(
            "vetting_queue.html",
            "Vetting queue",
            status_filter=args["status"],
            states=QUEUE_STATES,
            listing=page,
        )


@html.route("/<int:mentor_id>")
class VettingMentorPage(MethodView):
    @admin_page
    @documented(
        html,
        "A profile, its proposed changes, its vetting history and the decision form",
        (404, "No such profile"),
    )
    def get(self, mentor_id: int) -> Response:
        return self.show(Form(), 200)

    @admin_page
    @acted(
        html,
        "Decided: back to the profile, with the new status",
        (404, "No such profile"),
        (409, "The state machine forbids this decision now, or the revision changed meanwhile"),
        (422, "The form again, with what to change next to each field"),
    )
    def post(self, mentor_id: int) -> Response:
        data, form = read_form(VettingDecisionSchema())
        if data is None:
            return self.show(form, 422)
        try:
            profile = service.decide(
                current_user, mentor_id, admin_decision(data["decision"]), data["note"], data["revision_id"]
            )
        except DomainError as exc:
            return self.show(form.fail(exc), int(exc.status_code))
        flash(f"Saved: {profile.name}'s profile is {profile.status.value.replace('_', ' ')}.")
        return redirect(url_for("vetting_pages.VettingMentorPage", mentor_id=mentor_id), code=303)

    @staticmethod
    def show(form: Form, status: int) -> Response:
        mentor_id = int((request.view_args or {})["mentor_id"])
        history = service.vetting_history(mentor_id)  # 404 for a profile that is not there
        profile = db.session.get(MentorProfile, mentor_id)
        assert profile is not None
        return admin_render(
            "vetting_mentor.html",
            f"Vetting: {profile.name}",
            status,
            profile=profile,
            history=history,
            form=form,
            decisions=[(value, DECISION_LABELS[value]) for value in decisions_for(profile)],
            note_required=sorted(NOTE_REQUIRED_FOR),
        )


page_errors(html, {"vetting_pages.VettingMentorPage": VettingMentorPage.show})
