"""Playing Stripe.js and Stripe's webhook signer against localstripe, for payment tests."""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from typing import Any

import requests

VISA = "4242424242424242"
DECLINED_AFTER_ATTACH = "4000000000000341"


class StripeTestClient:
    """What a learner's browser does with a client secret, done with plain HTTP against the stand-in."""

    def __init__(self, api_base: str, secret_key: str) -> None:
        self.api_base = api_base.rstrip("/")
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {secret_key}"

    def _post(self, path: str, data: dict[str, Any] | None = None) -> dict[str, Any]:
        response = self.session.post(f"{self.api_base}{path}", data=data or {}, timeout=10)
        return {"status_code": response.status_code, **response.json()}

    def intent(self, intent_id: str) -> dict[str, Any]:
        return self.session.get(f"{self.api_base}/v1/payment_intents/{intent_id}", timeout=10).json()

    def pay(self, intent_id: str, card_number: str = VISA) -> dict[str, Any]:
        """Attach a card to the PaymentIntent and confirm it; returns Stripe's answer to the confirmation."""
        method = self._post(
            "/v1/payment_methods",
            {
                "type": "card",
                "card[number]": card_number,
                "card[exp_month]": "12",
                "card[exp_year]": "2034",
                "card[cvc]": "123",
            },
        )
        self._post(f"/v1/payment_intents/{intent_id}", {"payment_method": method["id"]})
        return self._post(f"/v1/payment_intents/{intent_id}/confirm")


def signed_event(
    event_type: str,
    obj: dict[str, Any],
    secret: str,
    *,
    event_id: str | None = None,
    timestamp: int | None = None,
    account: str | None = None,
) -> tuple[bytes, str]:
    """An event body and its Stripe-Signature header, signed the way Stripe signs (HMAC-SHA256 of `t.body`)."""
    created = int(time.time()) if timestamp is None else timestamp
    event = {
        "id": event_id or f"evt_{secrets.token_hex(12)}",
        "object": "event",
        "type": event_type,
        "created": created,
        "livemode": False,
        "data": {"object": obj},
    }
    if account is not None:
        event["account"] = account  # a Connect event: it happened in this connected account
    payload = json.dumps(event).encode()
    signature = hmac.new(secret.encode(), f"{created}.".encode() + payload, hashlib.sha256).hexdigest()
    return payload, f"t={created},v1={signature}"
