"""Webhook redelivery for the Stripe stand-in: an event whose endpoint did not answer 2xx is sent again.

Stripe re-sends an undelivered event with exponential backoff for up to three days; localstripe sends each
event once, so an event refused during a database restart (the intake answers 503) was lost for good and
the booking waited for reconciliation. Here the schedule is compressed to minutes, so tests and the chaos run
see the redelivery: the same event, signed again with the time of each attempt, as Stripe does.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import time
from typing import Any

import aiohttp
from localstripe import webhooks

# Seconds before each further attempt (Stripe: about 1 hour, then growing, for three days).
RETRY_DELAYS_SECONDS = (2, 4, 8, 16, 32, 64)
REQUEST_TIMEOUT_SECONDS = 10

log = logging.getLogger("aiohttp.access")
_deliveries: set[asyncio.Task[None]] = set()


async def _attempt(hook: Any, payload: bytes, event_type: str) -> bool:
    signed_at = int(time.time())
    signature = hmac.new(hook.secret.encode(), b"%d.%s" % (signed_at, payload), hashlib.sha256).hexdigest()
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        "Stripe-Signature": f"t={signed_at},v1={signature}",
    }
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_SECONDS)) as session,
            session.post(hook.url, data=payload, headers=headers) as response,
        ):
            log.info('webhook "%s" answered %d', event_type, response.status)
            return 200 <= response.status < 300
    except (aiohttp.ClientError, TimeoutError) as exc:
        log.info('webhook "%s" failed: %s', event_type, exc)
        return False


async def _deliver_to(hook: Any, payload: bytes, event_type: str) -> None:
    if await _attempt(hook, payload, event_type):
        return
    for delay in RETRY_DELAYS_SECONDS:
        await asyncio.sleep(delay)
        if await _attempt(hook, payload, event_type):
            return
    log.info('webhook "%s" given up after %d attempts', event_type, len(RETRY_DELAYS_SECONDS) + 1)


def deliver(payload: bytes, event_type: str) -> None:
    """Send `payload` to every registered webhook that wants `event_type`, each until it answers 2xx."""
    for hook in list(webhooks._webhooks.values()):
        if hook.events is not None and event_type not in hook.events:
            continue
        delivery = asyncio.ensure_future(_deliver_to(hook, payload, event_type))
        _deliveries.add(delivery)
        delivery.add_done_callback(_deliveries.discard)


async def _send_webhook(event: Any) -> None:
    """localstripe's sender, with redelivery: its one-second pause (so the API answer comes first) kept."""
    payload = json.dumps(event._export(), indent=2, sort_keys=True).encode("utf-8")
    await asyncio.sleep(1)
    deliver(payload, event.type)


def install() -> None:
    webhooks._send_webhook = _send_webhook
