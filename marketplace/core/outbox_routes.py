"""Admin view of the outbox: rows parked after too many deliveries, and their retry."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from marshmallow import validate

from marketplace.core import outbox
from marketplace.core.api import Blueprint
from marketplace.core.auth import roles_required
from marketplace.core.outbox import MessageState, OutboxMessage
from marketplace.core.pagination import SelectPage
from marketplace.core.validation import QuerySchema, Schema, fields

blp = Blueprint("outbox", __name__, url_prefix="/api/v1", description="Work queued after commits (admin)")


class OutboxArgsSchema(QuerySchema):
    state = fields.String(
        load_default=MessageState.FAILED.value,
        validate=validate.OneOf([state.value for state in MessageState]),
    )


class OutboxMessageSchema(Schema):
    id = fields.Integer()
    task = fields.String()
    payload = fields.Dict(dump_only=True)
    state = fields.String()
    created_at = fields.DateTime()
    published_at = fields.DateTime(allow_none=True)
    completed_at = fields.DateTime(allow_none=True)
    attempts = fields.Integer()
    last_error = fields.String(allow_none=True)
    next_attempt_at = fields.DateTime(allow_none=True)
    parked_at = fields.DateTime(allow_none=True)


@blp.route("/admin/outbox")
class OutboxMessages(MethodView):
    @roles_required("admin")
    @blp.arguments(OutboxArgsSchema, location="query")
    @blp.response(200, OutboxMessageSchema(many=True))
    @blp.paginate(SelectPage)
    def get(self, args: dict[str, Any]) -> Any:
        """Outbox rows by state: `failed` (parked after too many deliveries, the default), `pending` or
        `completed`."""
        return outbox.messages_in(MessageState(args["state"]))


@blp.route("/admin/outbox/<int:message_id>/retry")
class RetryOutboxMessage(MethodView):
    @roles_required("admin")
    @blp.response(200, OutboxMessageSchema)
    @blp.alt_response(404, description="No such message")
    @blp.alt_response(409, description="The message is not parked")
    def post(self, message_id: int) -> OutboxMessage:
        """Send a parked row again with a fresh set of deliveries."""
        return outbox.retry(message_id)
