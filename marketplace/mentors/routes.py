from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_login import current_user

from marketplace.core.api import Blueprint
from marketplace.core.auth import login_required, roles_required
from marketplace.core.pagination import SelectPage
from marketplace.mentors import service
from marketplace.mentors.catalog import CATALOG_RESPONSES
from marketplace.mentors.models import MentorProfile, VettingEvent
from marketplace.mentors.schemas import (
    MentorProfileInputSchema,
    MentorProfileSchema,
    MentorSearchArgsSchema,
    PublicMentorSchema,
    VettingDecisionSchema,
    VettingEventSchema,
    VettingQueueArgsSchema,
)
from marketplace.mentors.vetting import admin_decision

blp = Blueprint("mentors", __name__, url_prefix="/api/v1", description="Mentor profiles, vetting and search")


@blp.route("/me/mentor-profile")
class OwnProfile(MethodView):
    @login_required
    @blp.response(200, MentorProfileSchema)
    @blp.alt_response(403, description="Only mentor accounts have a mentor profile")
    @blp.alt_response(404, description="No mentor profile yet")
    def get(self) -> MentorProfile:
        return service.own_profile(current_user)

    @login_required
    @blp.arguments(MentorProfileInputSchema)
    @blp.response(200, MentorProfileSchema)
    def put(self, data: dict[str, Any]) -> MentorProfile:
        """Create or update your profile (mentor role). Fields left out keep their value.

        Once the profile is submitted, changes to public fields (all but `timezone`) become a revision an
        admin approves; until then the profile keeps its public values and `revision` shows the proposal.
        """
        return service.save_own_profile(current_user, data)


@blp.route("/me/mentor-profile/submit")
class SubmitProfile(MethodView):
    @login_required
    @blp.response(200, MentorProfileSchema)
    @blp.alt_response(404, description="No mentor profile yet")
    @blp.alt_response(409, description="The profile is not a draft and has no changes requested")
    @blp.alt_response(422, description="The profile is incomplete; `errors` names the missing fields")
    def post(self) -> MentorProfile:
        return service.submit_profile(current_user)


@blp.route("/admin/vetting-queue")
class VettingQueue(MethodView):
    @roles_required("admin")
    @blp.arguments(VettingQueueArgsSchema, location="query")
    @blp.response(200, MentorProfileSchema(many=True))
    @blp.paginate(SelectPage)
    def get(self, args: dict[str, Any]) -> Any:
        """Profiles in a vetting status, or with `status=revision_pending` those whose changes wait for a
        decision (each item's `revision` holds them)."""
        return service.vetting_queue(args["status"])


@blp.route("/admin/mentors/<int:mentor_id>/vetting")
class VettingDecision(MethodView):
    @roles_required("admin")
    @blp.arguments(VettingDecisionSchema)
    @blp.response(200, MentorProfileSchema)
    @blp.alt_response(
        409, description="The state machine forbids this transition, or there is no such pending revision"
    )
    def post(self, data: dict[str, Any], mentor_id: int) -> MentorProfile:
        """Decide the profile's vetting, or (`approve_revision`/`reject_revision`) its pending revision:
        approving copies the proposed fields onto the public profile."""
        return service.decide(
            current_user, mentor_id, admin_decision(data["decision"]), data["note"], data["revision_id"]
        )


@blp.route("/admin/mentors/<int:mentor_id>/vetting-history")
class VettingHistory(MethodView):
    @roles_required("admin")
    @blp.response(200, VettingEventSchema(many=True))
    def get(self, mentor_id: int) -> list[VettingEvent]:
        return service.vetting_history(mentor_id)


@blp.route("/mentors")
class MentorList(MethodView):
    @CATALOG_RESPONSES
    @blp.arguments(MentorSearchArgsSchema, location="query")
    @blp.response(200, PublicMentorSchema(many=True))
    @blp.paginate(SelectPage)
    def get(self, args: dict[str, Any]) -> Any:
        """Approved mentors, filtered and sorted."""
        return service.search(args)


@blp.route("/mentors/<int:mentor_id>")
class MentorDetail(MethodView):
    @blp.response(200, PublicMentorSchema)
    def get(self, mentor_id: int) -> MentorProfile:
        return service.public_profile(mentor_id)

    @login_required
    @blp.arguments(MentorProfileInputSchema)
    @blp.response(200, MentorProfileSchema)
    def patch(self, data: dict[str, Any], mentor_id: int) -> MentorProfile:
        """Edit a profile by id: its owner only; anyone else gets 404. The rules of the PUT apply."""
        return service.update_profile_by_id(current_user, mentor_id, data)
