from __future__ import annotations

from datetime import date
from typing import Any

from flask.views import MethodView
from flask_login import current_user
from marshmallow import ValidationError

from marketplace.core.api import Blueprint
from marketplace.core.auth import login_required
from marketplace.core.errors import Unprocessable
from marketplace.core.validation import fields
from marketplace.scheduling import service
from marketplace.scheduling.models import AvailabilitySchedule, DateOverride
from marketplace.scheduling.schemas import AvailabilitySchema, DateOverrideSchema

blp = Blueprint("scheduling", __name__, url_prefix="/api/v1", description="Mentor availability")


@blp.route("/me/availability")
class OwnAvailability(MethodView):
    @login_required
    @blp.response(200, AvailabilitySchema)
    @blp.alt_response(403, description="Only mentor accounts have availability")
    @blp.alt_response(404, description="No mentor profile, or no availability saved yet")
    def get(self) -> AvailabilitySchedule:
        return service.own_availability(current_user)

    @login_required
    @blp.arguments(AvailabilitySchema)
    @blp.response(200, AvailabilitySchema)
    @blp.alt_response(404, description="No mentor profile yet")
    def put(self, data: dict[str, Any]) -> AvailabilitySchedule:
        """Replace the weekly intervals and settings (mentor role); settings left out take their defaults.

        Date overrides are kept: edit them through /me/availability/overrides.
        """
        return service.save_availability(current_user, data)


@blp.route("/me/availability/overrides")
class Overrides(MethodView):
    @login_required
    @blp.arguments(DateOverrideSchema)
    @blp.response(201, DateOverrideSchema)
    @blp.alt_response(404, description="No availability saved yet")
    def post(self, data: dict[str, Any]) -> DateOverride:
        """Set one date's intervals (an empty list is a day off). Posting a date again replaces its
        override and also answers 201, so a client need not know whether one existed."""
        return service.save_override(current_user, data)


@blp.route(
    "/me/availability/overrides/<day>",
    parameters=[{"in": "path", "name": "day", "schema": {"type": "string", "format": "date"}}],
)
class Override(MethodView):
    @login_required
    @blp.response(204)
    @blp.alt_response(404, description="No override on that date")
    @blp.alt_response(422, description="`day` is not a YYYY-MM-DD date")
    def delete(self, day: str) -> None:
        """Remove a date's override, so the weekly intervals apply again. `day` is YYYY-MM-DD."""
        service.delete_override(current_user, _parse_day(day))


_DAY = fields.Date()


def _parse_day(value: str) -> date:
    try:
        return _DAY.deserialize(value)
    except ValidationError as exc:
        raise Unprocessable("Not a date.", {"date": ["Use YYYY-MM-DD.", *exc.messages]}) from None
