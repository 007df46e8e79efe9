"""The browser part of the Stripe stand-in: a Stripe.js copy whose card Element and `confirmCardPayment` pay a
PaymentIntent with the publishable key and the intent's client secret, as Stripe.js does.

localstripe's own copy (at the same `/js.stripe.com/v3/`) ignores the card a page collects: its
`confirmCardPayment` only answers a 3-D Secure prompt for an intent that already has a card. This serves
`localstripe-browser-v3.js` there instead, and `POST /_config/browser/payment_intents/{id}/confirm` (the
publishable key, the client secret and the card) attaches a new card to the intent and confirms it through
localstripe's own code, so declines, charges and the signed `payment_intent.*` webhooks are localstripe's; an
authorization (manual capture) also sends the `payment_intent.amount_capturable_updated` Stripe sends.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web
from localstripe import resources
from localstripe.errors import UserError
from localstripe.webhooks import schedule_webhook

SCRIPT = Path(__file__).with_name("localstripe-browser-v3.js")
SCRIPT_PATH = "/js.stripe.com/v3/"
CARD_FIELDS = ("number", "exp_month", "exp_year", "cvc")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def serve_script(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answer localstripe's Stripe.js path with this copy (its route was added first, so it cannot be replaced)."""
    if request.method == "GET" and request.path == SCRIPT_PATH:
        return web.Response(text=SCRIPT.read_text(), content_type="application/javascript")
    return await handler(request)


async def confirm_with_card(request: web.Request) -> web.Response:
    """Stripe.js's confirmation: the intent named by its client secret is paid with the card typed."""
    try:
        data: dict[str, Any] = json.loads(await request.text())
        key, secret, card = data["key"], data["client_secret"], data["card"]
        card = {name: str(card[name]) for name in CARD_FIELDS}
    except (ValueError, KeyError, TypeError):
        raise UserError(400, "Bad request") from None
    if not (isinstance(key, str) and key.startswith("pk_")):
        raise UserError(401, "Unauthorized")
    intent = resources.PaymentIntent._api_retrieve(request.match_info["id"])
    if secret != intent.client_secret:
        raise UserError(401, "Unauthorized")
    if intent.status != "requires_payment_method":
        raise UserError(
            400,
            f"This PaymentIntent's status is {intent.status}.",
            {"code": "payment_intent_unexpected_state"},
        )
    method = resources.PaymentMethod(type="card", card=card)
    intent.payment_method = method.id
    try:
        intent._confirm(on_failure_now=intent._report_failure)
    except UserError as declined:
        declined.body["error"].update(
            type="card_error", payment_intent={"id": intent.id, "status": intent.status}
        )
        raise
    if intent.status == "requires_capture":  # manual capture: localstripe announces no authorization itself
        schedule_webhook(resources.Event("payment_intent.amount_capturable_updated", intent))
    return web.json_response(intent._export())


def install(app: web.Application) -> None:
    """Add the browser part to localstripe's app (before it starts serving)."""
    app.middlewares.append(serve_script)
    app.router.add_post("/_config/browser/payment_intents/{id}/confirm", confirm_with_card)
