from __future__ import annotations

from typing import Any

from flask.views import MethodView

from marketplace.core.api import Blueprint
from marketplace.core.auth import roles_required
from marketplace.core.pagination import SelectPage
from marketplace.notifications import service
from marketplace.notifications.models import EmailStatus, SentEmail
from marketplace.notifications.schemas import EmailArgsSchema, EmailSchema

blp = Blueprint("notifications", __name__, url_prefix="/api/v1", description="Email delivery (admin)")


@blp.route("/admin/emails")
class Emails(MethodView):
    @roles_required("admin")
    @blp.arguments(EmailArgsSchema, location="query")
    @blp.response(200, EmailSchema(many=True))
    @blp.paginate(SelectPage)
    def get(self, args: dict[str, Any]) -> Any:
        """Messages by state: `failed` (unrenderable, refused for good or out of retries; the default),
        `pending`, `sending` or `sent`."""
        return service.emails_in(EmailStatus(args["state"]))


@blp.route("/admin/emails/<int:email_id>/retry")
class RetryEmail(MethodView):
    @roles_required("admin")
    @blp.response(200, EmailSchema)
    @blp.alt_response(404, description="No such email")
    @blp.alt_response(409, description="The email has not failed")
    def post(self, email_id: int) -> SentEmail:
        """Send a failed message again (its other recipients are not mailed twice)."""
        return service.retry_email(email_id)
