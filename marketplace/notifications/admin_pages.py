"""The admin's page of mails that failed for good, each with the API's retry (`service.retry_email`)."""

from __future__ import annotations

from typing import Any

from flask import url_for
from flask.views import MethodView
from werkzeug.wrappers import Response

from marketplace.core.admin_pages import (
    ListArgsSchema,
    ParkedItem,
    acted,
    admin_page,
    listing,
    listing_page,
    page_errors,
    parked_page,
    retried,
)
from marketplace.core.api import Blueprint
from marketplace.notifications import service
from marketplace.notifications.models import EmailStatus
from marketplace.notifications.schemas import EmailArgsSchema

html = Blueprint("email_pages", __name__, url_prefix="/admin/emails", description="Email pages (admin)")


class EmailPageArgsSchema(ListArgsSchema, EmailArgsSchema):
    """The API's filter by state, and a page number."""


@html.route("")
class EmailListPage(MethodView):
    @listing_page(html, EmailPageArgsSchema, "Mails by state: failed ones (the default) with a retry button")
    def get(self, args: dict[str, Any]) -> Response:
        page = listing(service.emails_in(EmailStatus(args["state"])), args["page"])
        items = [
            ParkedItem(
                id=email.id,
                title=email.kind.replace("_", " "),
                detail=f"To {email.recipient}",
                attempts=email.attempts,
                last_error=email.last_error,
                since=email.sent_at or email.claimed_at or email.created_at,
                retry_url=url_for("email_pages.EmailRetryPage", email_id=email.id)
                if email.status == EmailStatus.FAILED.value
                else None,
            )
            for email in page.rows
        ]
        return parked_page("Emails", [s.value for s in EmailStatus], args["state"], items, page)


@html.route("/<int:email_id>/retry")
class EmailRetryPage(MethodView):
    @admin_page
    @acted(html, "Queued again: back to the failed mails", (404, "No such email"), (409, "It has not failed"))
    def post(self, email_id: int) -> Response:
        service.retry_email(email_id)
        return retried(f"Email {email_id} is queued again.", url_for("email_pages.EmailListPage"))


page_errors(html, {})
