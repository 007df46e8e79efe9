"""Stripe behind the few calls the marketplace makes, each with a timeout and a deterministic idempotency key.

This module and `payments` alone import `stripe`; everything else sees plain values and two exceptions.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from typing import Any

import stripe
from flask import Flask, current_app


class PaymentProviderUnavailable(Exception):
    """Stripe could not be reached or answered with a server error: worth retrying later."""


class PaymentRejected(Exception):
    """Stripe refused the request itself (bad parameters, a state that does not allow it)."""


class InvalidWebhook(Exception):
    """The body or its Stripe-Signature does not verify against the webhook secret."""


@dataclass(frozen=True)
class Intent:
    id: str
    status: str
    client_secret: str | None
    amount: int
    currency: str
    metadata: dict[str, str]


@dataclass(frozen=True)
class RefundResult:
    id: str
    status: str


@dataclass(frozen=True)
class ConnectedAccount:
    id: str
    charges_enabled: bool
    payouts_enabled: bool
    transfers_enabled: bool
    details_submitted: bool
    requirements_due: list[str]
    disabled_reason: str | None


@dataclass(frozen=True)
class OnboardingLink:
    url: str
    expires_at: int


@dataclass(frozen=True)
class TransferResult:
    id: str
    amount: int
    amount_reversed: int


class StripeGateway:
    def __init__(
        self, secret_key: str, api_base: str | None, timeout: float, max_network_retries: int
    ) -> None:
        addresses = {"api": api_base} if api_base else None
        self._client = stripe.StripeClient(
            secret_key,
            base_addresses=addresses,  # type: ignore[arg-type]
            max_network_retries=max_network_retries,
            http_client=stripe.RequestsClient(timeout=timeout),
        )

    def _call(self, operation: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return operation(*args, **kwargs)
        except (stripe.APIConnectionError, stripe.RateLimitError) as exc:
            raise PaymentProviderUnavailable(str(exc)) from exc
        except stripe.StripeError as exc:
            if exc.http_status is None or exc.http_status >= 500:
                raise PaymentProviderUnavailable(str(exc)) from exc
            raise PaymentRejected(str(exc)) from exc

    def create_intent(
        self,
        *,
        amount: int,
        currency: str,
        metadata: dict[str, str],
        transfer_group: str,
        idempotency_key: str,
        capture_method: str = "automatic",
    ) -> Intent:
        """`capture_method="manual"` only authorizes the card; `capture_intent` charges it later."""
        intent = self._call(
            self._client.v1.payment_intents.create,
            params={
                "amount": amount,
                "currency": currency.lower(),
                "metadata": metadata,
                "payment_method_types": ["card"],
                "transfer_group": transfer_group,
                "capture_method": capture_method,
            },
            options={"idempotency_key": idempotency_key},
        )
        return _intent(intent)

    def retrieve_intent(self, intent_id: str) -> Intent:
        return _intent(self._call(self._client.v1.payment_intents.retrieve, intent_id))

    def capture_intent(self, intent_id: str, idempotency_key: str) -> Intent:
        return _intent(
            self._call(
                self._client.v1.payment_intents.capture,
                intent_id,
                options={"idempotency_key": idempotency_key},
            )
        )

    def cancel_intent(self, intent_id: str) -> Intent:
        return _intent(self._call(self._client.v1.payment_intents.cancel, intent_id))

    def refund(self, *, intent_id: str, amount: int, idempotency_key: str) -> RefundResult:
        refund = self._call(
            self._client.v1.refunds.create,
            params={"payment_intent": intent_id, "amount": amount},
            options={"idempotency_key": idempotency_key},
        )
        return RefundResult(id=refund.id, status=refund.status)

    def charge_of(self, intent_id: str) -> str | None:
        """The id of the PaymentIntent's successful charge (a transfer's `source_transaction`)."""
        data = self._call(self._client.v1.payment_intents.retrieve, intent_id).to_dict()
        charge = data.get("latest_charge")
        return str(charge.get("id") if isinstance(charge, dict) else charge) if charge else None

    def create_account(self, *, metadata: dict[str, str], idempotency_key: str) -> ConnectedAccount:
        account = self._call(
            self._client.v1.accounts.create,
            params={
                "type": "express",
                "metadata": metadata,
                "capabilities": {"transfers": {"requested": True}},
            },
            options={"idempotency_key": idempotency_key},
        )
        return connected_account(account.to_dict())

    def retrieve_account(self, account_id: str) -> ConnectedAccount:
        return connected_account(self._call(self._client.v1.accounts.retrieve, account_id).to_dict())

    def onboarding_link(self, *, account_id: str, refresh_url: str, return_url: str) -> OnboardingLink:
        link = self._call(
            self._client.v1.account_links.create,
            params={
                "account": account_id,
                "refresh_url": refresh_url,
                "return_url": return_url,
                "type": "account_onboarding",
            },
        )
        return OnboardingLink(url=link.url, expires_at=int(link.expires_at))

    def create_transfer(
        self,
        *,
        amount: int,
        currency: str,
        destination: str,
        source_transaction: str,
        transfer_group: str,
        metadata: dict[str, str],
        idempotency_key: str,
    ) -> TransferResult:
        transfer = self._call(
            self._client.v1.transfers.create,
            params={
                "amount": amount,
                "currency": currency.lower(),
                "destination": destination,
                "source_transaction": source_transaction,
                "transfer_group": transfer_group,
                "metadata": metadata,
            },
            options={"idempotency_key": idempotency_key},
        )
        return TransferResult(transfer.id, int(transfer.amount), int(transfer.amount_reversed))

    def transfer_from(self, *, transfer_group: str, source_transaction: str) -> TransferResult | None:
        """The transfer already made from this charge for `transfer_group` (one per booking), if any: looked
        up before a transfer is tried again under a new idempotency key, so a retry never pays twice."""
        found = self._call(self._client.v1.transfers.list, params={"transfer_group": transfer_group})
        for transfer in found.data:
            if transfer.source_transaction == source_transaction:
                return TransferResult(transfer.id, int(transfer.amount), int(transfer.amount_reversed))
        return None

    def reverse_transfer(self, transfer_id: str, *, amount: int, idempotency_key: str) -> int:
        """Reverse `amount` of a transfer; returns the amount reversed by this reversal."""
        reversal = self._call(
            self._client.v1.transfers.reversals.create,
            transfer_id,
            params={"amount": amount},
            options={"idempotency_key": idempotency_key},
        )
        return int(reversal.amount)


def _intent(obj: Any) -> Intent:
    data = obj.to_dict()
    return Intent(
        id=data["id"],
        status=data["status"],
        client_secret=data.get("client_secret"),
        amount=int(data["amount"]),
        currency=str(data["currency"]).upper(),
        metadata=dict(data.get("metadata") or {}),
    )


def connected_account(data: dict[str, Any]) -> ConnectedAccount:
    """A connected account's state, from the API's answer or an `account.updated` event."""
    requirements = data.get("requirements") or {}
    capabilities = data.get("capabilities") or {}
    due = requirements.get("currently_due") or []
    return ConnectedAccount(
        id=str(data["id"]),
        charges_enabled=data.get("charges_enabled") is True,
        payouts_enabled=data.get("payouts_enabled") is True,
        transfers_enabled=isinstance(capabilities, dict) and capabilities.get("transfers") == "active",
        details_submitted=data.get("details_submitted") is True,
        requirements_due=[str(item)[:100] for item in due][:50] if isinstance(due, list) else [],
        disabled_reason=str(requirements["disabled_reason"])[:255]
        if requirements.get("disabled_reason")
        else None,
    )


# Stripe's ids are short ASCII words (`evt_1Nx...`, `pi_3Ox...`); anything else is not one it made, and a key
# past the column's length (or with a NUL) would fail the statement that looks it up.
STRIPE_ID = re.compile(r"[A-Za-z0-9_]{1,255}")
_EVENT_TYPE = re.compile(r"[a-z0-9_.]{1,100}")


def verify_webhook(payload: bytes, signature: str | None, secret: str) -> dict[str, Any]:
    """Check the signature on the raw body with Stripe's default tolerance, on both sides of now; return the
    event as plain data. The SDK refuses only signatures too old; one dated too far ahead is refused here."""
    if not secret:
        raise InvalidWebhook("STRIPE_WEBHOOK_SECRET is not configured.")
    tolerance = stripe.Webhook.DEFAULT_TOLERANCE
    try:
        stripe.WebhookSignature.verify_header(payload.decode("utf-8"), signature or "", secret, tolerance)
        event = json.loads(payload)
    except (ValueError, stripe.SignatureVerificationError) as exc:
        raise InvalidWebhook(str(exc)) from exc
    if _signed_at(signature or "") > time.time() + tolerance:
        raise InvalidWebhook("Timestamp outside the tolerance zone (in the future).")
    if (
        not isinstance(event, dict)
        or not isinstance(event.get("id"), str)
        or not isinstance(event.get("type"), str)
    ):
        raise InvalidWebhook("Not a Stripe event.")
    if not STRIPE_ID.fullmatch(event["id"]) or not _EVENT_TYPE.fullmatch(event["type"]):
        raise InvalidWebhook("Malformed event id or type.")
    return event


def _signed_at(header: str) -> int:
    """The `t=` of a Stripe-Signature header that verified (read as the SDK reads it)."""
    items = [item.split("=", 2) for item in header.split(",")]
    return int(next(item[1] for item in items if item[0] == "t"))


def init_app(app: Flask) -> None:
    if app.config["STRIPE_SECRET_KEY"]:
        app.extensions["stripe_gateway"] = StripeGateway(
            app.config["STRIPE_SECRET_KEY"],
            app.config["STRIPE_API_BASE"] or None,
            timeout=float(app.config["STRIPE_TIMEOUT_SECONDS"]),
            max_network_retries=int(app.config["STRIPE_MAX_NETWORK_RETRIES"]),
        )
        app.extensions["stripe_request_gateway"] = StripeGateway(
            app.config["STRIPE_SECRET_KEY"],
            app.config["STRIPE_API_BASE"] or None,
            timeout=float(app.config["STRIPE_REQUEST_TIMEOUT_SECONDS"]),
            max_network_retries=0,
        )


def _configured(name: str) -> StripeGateway:
    try:
        found: StripeGateway = current_app.extensions[name]
        return found
    except KeyError:
        raise PaymentProviderUnavailable(
            "Payments are not configured (STRIPE_SECRET_KEY is empty)."
        ) from None


def gateway() -> StripeGateway:
    """For workers: `STRIPE_TIMEOUT_SECONDS`, with `STRIPE_MAX_NETWORK_RETRIES` retries."""
    return _configured("stripe_gateway")


def request_gateway() -> StripeGateway:
    """For calls a person's request waits for: `STRIPE_REQUEST_TIMEOUT_SECONDS` and no retry, so a slow
    Stripe costs the request seconds, not a worker for half a minute."""
    return _configured("stripe_request_gateway")
