"""The Connect part of the Stripe stand-in: routes added to localstripe's aiohttp app, which has no Connect.

Express accounts (`/v1/accounts`), onboarding links (`/v1/account_links`), transfers and their reversals
(`/v1/transfers`), in Stripe's object shapes and kept in localstripe's store (so they persist with it). What
only Stripe's hosted pages or its banks do is under `/_config/connect/`: an onboarding page (the link's `url`)
and an endpoint that completes onboarding for tests, and one that pays out (or fails to pay out) a connected
account's balance. Each change sends a Connect event (`account` set at the top level), signed for every
webhook registered with localstripe exactly as localstripe signs its own. docs/stripe-stand-in.md lists what
Stripe does that this does not.
"""

from __future__ import annotations

import html
import json
import logging
import re
import secrets
import time
from typing import Any

from aiohttp import web
from localstripe import resources, webhooks
from localstripe.errors import UserError
from localstripe.server import get_post_data
from localstripe_redelivery import deliver

LINK_LIFETIME_SECONDS = 300
ONBOARDING_DUE = ["external_account", "individual.dob.day", "individual.first_name", "tos_acceptance.date"]
_ACCOUNT = "connect_account:"
_LINK = "connect_link:"
_TRANSFER = "connect_transfer:"
_PAYOUT = "connect_payout:"
_IDEMPOTENT = "connect_idempotency:"

log = logging.getLogger("aiohttp.access")


def _id(prefix: str) -> str:
    return prefix + secrets.token_hex(12)


def _get(key: str) -> dict[str, Any]:
    found = resources.store.get(key)
    if found is None:
        raise UserError(404, "No such object: " + key.split(":", 1)[1])
    return dict(found)


def _put(key: str, obj: dict[str, Any]) -> dict[str, Any]:
    resources.store[key] = obj
    resources.store.dump_to_disk()
    return obj


def _int(value: Any, name: str) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise UserError(400, f"Invalid integer: {name}") from None
    if number <= 0:
        raise UserError(400, f"{name} must be positive")
    return number


# --- events --------------------------------------------------------------------------------------------


def _emit(event_type: str, obj: dict[str, Any], account: str) -> dict[str, Any]:
    """A Connect event about `obj` in `account`, kept in the store and sent signed to every webhook."""
    created = int(time.time())
    event = {
        "id": _id("evt_"),
        "object": "event",
        "account": account,
        "api_version": "2024-06-20",
        "created": created,
        "data": {"object": obj},
        "livemode": False,
        "pending_webhooks": len(webhooks._webhooks),
        "request": {"id": None, "idempotency_key": None},
        "type": event_type,
    }
    _put("connect_event:" + event["id"], event)
    deliver(json.dumps(event).encode(), event_type)
    return event


# --- accounts ------------------------------------------------------------------------------------------


def _new_account(data: dict[str, Any]) -> dict[str, Any]:
    if data.get("type", "express") != "express":
        raise UserError(400, "The stand-in makes Express accounts only (type=express).")
    account_id = _id("acct_")
    return {
        "id": account_id,
        "object": "account",
        "type": "express",
        "business_type": None,
        "capabilities": {"transfers": "inactive"},
        "charges_enabled": False,
        "payouts_enabled": False,
        "details_submitted": False,
        "country": data.get("country", "US"),
        "default_currency": "usd",
        "email": data.get("email"),
        "created": int(time.time()),
        "metadata": data.get("metadata") or {},
        "requirements": {
            "currently_due": list(ONBOARDING_DUE),
            "eventually_due": list(ONBOARDING_DUE),
            "past_due": [],
            "pending_verification": [],
            "disabled_reason": "requirements.past_due",
            "current_deadline": None,
            "errors": [],
        },
        "balance": {"available": 0, "pending": 0},
    }


def _public(account: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in account.items() if key != "balance"}


async def create_account(request: web.Request) -> web.Response:
    data = await get_post_data(request) or {}
    replay = _replayed(request)
    if replay is not None:
        return web.json_response(replay)
    account = _put(_ACCOUNT + (new := _new_account(data))["id"], new)
    return web.json_response(_remember(request, _public(account)))


async def retrieve_account(request: web.Request) -> web.Response:
    return web.json_response(_public(_get(_ACCOUNT + request.match_info["id"])))


def complete_onboarding(account_id: str) -> dict[str, Any]:
    """What a mentor finishing Stripe's hosted onboarding amounts to: every requirement met."""
    account = _get(_ACCOUNT + account_id)
    account.update(
        charges_enabled=True,
        payouts_enabled=True,
        details_submitted=True,
        capabilities={"transfers": "active"},
        requirements={**account["requirements"], "currently_due": [], "eventually_due": [],
                      "past_due": [], "disabled_reason": None},
    )  # fmt: skip
    _put(_ACCOUNT + account_id, account)
    _emit("account.updated", _public(account), account_id)
    return account


async def complete_account(request: web.Request) -> web.Response:
    return web.json_response(_public(complete_onboarding(request.match_info["id"])))


async def disable_account(request: web.Request) -> web.Response:
    """What Stripe does to an account it stops paying (`rejected.fraud`, `requirements.past_due`, ...):
    transfers and payouts off; `account.updated` is sent unless `notify=0` (a webhook Stripe never delivered)."""
    data = await get_post_data(request) or {}
    account_id = request.match_info["id"]
    account = _get(_ACCOUNT + account_id)
    account.update(charges_enabled=False, payouts_enabled=False, capabilities={"transfers": "inactive"},
                   requirements={**account["requirements"],
                                 "disabled_reason": str(data.get("reason") or "rejected.other")})  # fmt: skip
    _put(_ACCOUNT + account_id, account)
    if str(data.get("notify", "1")) != "0":
        _emit("account.updated", _public(account), account_id)
    return web.json_response(_public(account))


# --- account links -------------------------------------------------------------------------------------


async def create_account_link(request: web.Request) -> web.Response:
    data = await get_post_data(request) or {}
    account_id = data.get("account")
    _get(_ACCOUNT + str(account_id))
    for field in ("refresh_url", "return_url"):
        if not str(data.get(field, "")).startswith(("http://", "https://")):
            raise UserError(400, f"Invalid URL: {field}")
    if data.get("type") != "account_onboarding":
        raise UserError(400, "type must be account_onboarding")
    token = secrets.token_urlsafe(24)
    created = int(time.time())
    link = {
        "object": "account_link",
        "created": created,
        "expires_at": created + LINK_LIFETIME_SECONDS,
        "url": f"{request.url.origin()}/_config/connect/onboarding/{token}",
    }
    _put(_LINK + token, {**link, "account": account_id, "used": False,
                         "refresh_url": data["refresh_url"], "return_url": data["return_url"]})  # fmt: skip
    return web.json_response(link)


def _usable_link(token: str) -> dict[str, Any]:
    """The link behind `token`; a used or expired one sends the browser to its refresh URL, as Stripe does."""
    link = _get(_LINK + token)
    if link["used"] or link["expires_at"] < time.time():
        raise web.HTTPFound(link["refresh_url"])
    return link


async def onboarding_page(request: web.Request) -> web.Response:
    link = _usable_link(request.match_info["token"])
    page = (
        "<!doctype html><title>Stand-in onboarding</title><h1>Stripe stand-in: Express onboarding</h1>"
        f"<p>Account {html.escape(link['account'])}</p><form method=post><button>Complete onboarding</button></form>"
    )
    return web.Response(text=page, content_type="text/html")


async def finish_onboarding(request: web.Request) -> web.Response:
    token = request.match_info["token"]
    link = _usable_link(token)
    _put(_LINK + token, {**link, "used": True})
    complete_onboarding(link["account"])
    raise web.HTTPFound(link["return_url"])


# --- transfers and reversals ---------------------------------------------------------------------------


def _idempotency_key(request: web.Request) -> str | None:
    key = request.headers.get("Idempotency-Key")
    return f"{_IDEMPOTENT}{request.path}:{key}" if key else None


def _replayed(request: web.Request) -> dict[str, Any] | None:
    key = _idempotency_key(request)
    found = resources.store.get(key) if key else None
    return dict(found) if found is not None else None


def _remember(request: web.Request, response: dict[str, Any]) -> dict[str, Any]:
    key = _idempotency_key(request)
    if key:
        _put(key, response)
    return response


def _charge(charge_id: str) -> Any:
    charge = resources.store.get("charge:" + charge_id)
    if charge is None or charge.status != "succeeded":
        raise UserError(400, f"No such charge, or not succeeded: '{charge_id}'")
    return charge


def _transferred_from(charge_id: str) -> int:
    return sum(
        transfer["amount"] - transfer["amount_reversed"]
        for key, transfer in resources.store.items()
        if key.startswith(_TRANSFER) and transfer.get("source_transaction") == charge_id
    )


_BALANCE_INSUFFICIENT = "connect_platform:balance_insufficient"


async def set_platform_balance(request: web.Request) -> web.Response:
    """`insufficient=1` makes every new transfer fail as Stripe's do when the platform's available balance
    cannot cover them (`balance_insufficient`); `insufficient=0` ends it."""
    data = await get_post_data(request) or {}
    insufficient = str(data.get("insufficient", "0")) == "1"
    _put(_BALANCE_INSUFFICIENT, {"on": insufficient})
    return web.json_response({"balance_insufficient": insufficient})


def _refuse_without_balance() -> None:
    if (resources.store.get(_BALANCE_INSUFFICIENT) or {}).get("on"):
        raise UserError(
            400,
            "You have insufficient available funds in your Stripe account.",
            {"code": "balance_insufficient"},
        )


async def create_transfer(request: web.Request) -> web.Response:
    data = await get_post_data(request) or {}
    replay = _replayed(request)
    if replay is not None:
        return web.json_response(replay)
    _refuse_without_balance()
    amount = _int(data.get("amount"), "amount")
    currency = str(data.get("currency", "")).lower()
    account = _get(_ACCOUNT + str(data.get("destination")))
    if account["capabilities"].get("transfers") != "active":
        raise UserError(400, "Your destination account needs to have the transfers capability enabled.")
    source = data.get("source_transaction")
    if source is not None:
        charge = _charge(str(source))
        if charge.currency.lower() != currency:
            raise UserError(400, "The currency of source_transaction's balance transaction must match.")
        if amount + _transferred_from(str(source)) > charge.amount - (charge.amount_refunded or 0):
            raise UserError(400, "Transfer amount exceeds the source transaction's available amount.")
    transfer_id = _id("tr_")
    transfer = {
        "id": transfer_id,
        "object": "transfer",
        "amount": amount,
        "amount_reversed": 0,
        "balance_transaction": _id("txn_"),
        "created": int(time.time()),
        "currency": currency,
        "description": data.get("description"),
        "destination": account["id"],
        "destination_payment": _id("py_"),
        "livemode": False,
        "metadata": data.get("metadata") or {},
        "reversals": {"object": "list", "data": [], "has_more": False, "total_count": 0,
                      "url": f"/v1/transfers/{transfer_id}/reversals"},
        "reversed": False,
        "source_transaction": source,
        "source_type": "card",
        "transfer_group": data.get("transfer_group"),
    }  # fmt: skip
    _put(_TRANSFER + transfer_id, transfer)
    account["balance"]["available"] += amount
    _put(_ACCOUNT + account["id"], account)
    _emit("transfer.created", transfer, account["id"])
    return web.json_response(_remember(request, transfer))


async def retrieve_transfer(request: web.Request) -> web.Response:
    return web.json_response(_get(_TRANSFER + request.match_info["id"]))


async def list_transfers(request: web.Request) -> web.Response:
    wanted = {key: request.query[key] for key in ("destination", "transfer_group") if key in request.query}
    found = [
        transfer
        for key, transfer in resources.store.items()
        if key.startswith(_TRANSFER) and all(transfer.get(k) == v for k, v in wanted.items())
    ]
    found.sort(key=lambda transfer: transfer["created"], reverse=True)
    return web.json_response({"object": "list", "data": found, "has_more": False, "url": "/v1/transfers"})


async def create_reversal(request: web.Request) -> web.Response:
    data = await get_post_data(request) or {}
    replay = _replayed(request)
    if replay is not None:
        return web.json_response(replay)
    transfer = _get(_TRANSFER + request.match_info["id"])
    remaining = transfer["amount"] - transfer["amount_reversed"]
    amount = _int(data["amount"], "amount") if "amount" in data else remaining
    if amount > remaining:
        raise UserError(400, "Reversal amount exceeds the amount left on the transfer.")
    reversal = {
        "id": _id("trr_"),
        "object": "transfer_reversal",
        "amount": amount,
        "balance_transaction": _id("txn_"),
        "created": int(time.time()),
        "currency": transfer["currency"],
        "destination_payment_refund": _id("pyr_"),
        "metadata": data.get("metadata") or {},
        "source_refund": None,
        "transfer": transfer["id"],
    }
    transfer["amount_reversed"] += amount
    transfer["reversed"] = transfer["amount_reversed"] == transfer["amount"]
    reversals = transfer["reversals"]
    transfer["reversals"] = {**reversals, "data": [reversal, *reversals["data"]],
                             "total_count": reversals["total_count"] + 1}  # fmt: skip
    _put(_TRANSFER + transfer["id"], transfer)
    account = _get(_ACCOUNT + transfer["destination"])
    account["balance"]["available"] -= amount
    _put(_ACCOUNT + account["id"], account)
    _emit("transfer.reversed", transfer, account["id"])
    return web.json_response(_remember(request, reversal))


# --- payouts of a connected account (what its bank does) -----------------------------------------------


async def pay_out(request: web.Request) -> web.Response:
    """Pay out a connected account's available balance (or `amount`), as `paid` or, with `fail=1`, `failed`."""
    data = await get_post_data(request) or {}
    account = _get(_ACCOUNT + request.match_info["id"])
    amount = _int(data["amount"], "amount") if "amount" in data else account["balance"]["available"]
    failed = str(data.get("fail", "")).lower() in ("1", "true")
    payout = {
        "id": _id("po_"),
        "object": "payout",
        "amount": amount,
        "arrival_date": int(time.time()),
        "automatic": True,
        "created": int(time.time()),
        "currency": account["default_currency"],
        "destination": _id("ba_"),
        "failure_code": "account_closed" if failed else None,
        "failure_message": "The bank account has been closed." if failed else None,
        "livemode": False,
        "metadata": {},
        "method": "standard",
        "status": "failed" if failed else "paid",
        "type": "bank_account",
    }
    _put(_PAYOUT + payout["id"], payout)
    if not failed:
        account["balance"]["available"] -= amount
        _put(_ACCOUNT + account["id"], account)
    _emit(f"payout.{payout['status']}", payout, account["id"])
    return web.json_response(payout)


def install(app: web.Application) -> None:
    """Add the Connect routes to localstripe's app (before it starts serving)."""
    _accept_transfer_group()
    app.middlewares.append(capture_only_authorized)
    app.router.add_post("/v1/accounts", create_account)
    app.router.add_get("/v1/accounts/{id}", retrieve_account)
    app.router.add_post("/v1/account_links", create_account_link)
    app.router.add_post("/v1/transfers", create_transfer)
    app.router.add_get("/v1/transfers", list_transfers)
    app.router.add_get("/v1/transfers/{id}", retrieve_transfer)
    app.router.add_post("/v1/transfers/{id}/reversals", create_reversal)
    app.router.add_get("/_config/connect/onboarding/{token}", onboarding_page)
    app.router.add_post("/_config/connect/onboarding/{token}", finish_onboarding)
    app.router.add_post("/_config/connect/accounts/{id}/complete", complete_account)
    app.router.add_post("/_config/connect/accounts/{id}/payouts", pay_out)
    app.router.add_post("/_config/connect/accounts/{id}/disable", disable_account)
    app.router.add_post("/_config/connect/balance", set_platform_balance)


def _accept_transfer_group() -> None:
    """localstripe's PaymentIntent refuses `transfer_group`; Stripe keeps it on the intent and its charge."""
    original = resources.PaymentIntent.__init__

    def init(self: Any, *args: Any, transfer_group: str | None = None, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        self.transfer_group = transfer_group

    resources.PaymentIntent.__init__ = init  # type: ignore[method-assign]


_CAPTURE = re.compile(r"/v1/payment_intents/([A-Za-z0-9_]+)/capture")


@web.middleware
async def capture_only_authorized(request: web.Request, handler: Any) -> web.StreamResponse:
    """localstripe captures the charge of a cancelled PaymentIntent; Stripe refuses any capture of an intent
    that is not `requires_capture` (an authorization released or lapsed can no longer be charged)."""
    found = _CAPTURE.fullmatch(request.path) if request.method == "POST" else None
    intent = resources.store.get("payment_intent:" + found[1]) if found else None
    if intent is not None and intent.status != "requires_capture":
        message = f"This PaymentIntent could not be captured because it has a status of {intent.status}."
        return UserError(400, message, {"code": "payment_intent_unexpected_state"}).to_response()
    response: web.StreamResponse = await handler(request)
    return response
