"""Browser-facing hardening headers on every response: CSP, nosniff, Referrer-Policy, HSTS in production.

A small after-request hook rather than Flask-Talisman: the service needs five fixed headers and a policy
built from settings; Talisman would also force HTTPS redirects and cookie flags, which the proxy setup and
the config already own.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from flask import Flask, Response, current_app
from werkzeug.wrappers import Response as AnyResponse


def _sources(*values: str) -> str:
    """Join CSP source lists, dropping empties and repeats but keeping their order."""
    seen: dict[str, None] = {}
    for value in values:
        for source in value.split():
            seen.setdefault(source, None)
    return " ".join(seen) or "'none'"


def origin_of(url: str) -> str:
    """`https://js.stripe.com` for `https://js.stripe.com/v3/`: the CSP source that allows exactly that host."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else ""


def content_security_policy(config: dict[str, Any], stripe_js: bool = False) -> str:
    """Same-origin everything, no inline script; `CSP_EXTRA_*` make room for more sources.

    `stripe_js` (the checkout page only) also allows the origin of `STRIPE_JS_URL`, and no other host, to
    serve scripts, frames and the calls Stripe.js makes."""
    stripe = origin_of(str(config.get("STRIPE_JS_URL") or "")) if stripe_js else ""
    directives = {
        "default-src": "'self'",
        "script-src": _sources("'self'", stripe, config.get("CSP_EXTRA_SCRIPT_SRC", "")),
        "style-src": "'self'",
        "img-src": "'self' data:",
        "font-src": "'self'",
        "connect-src": _sources("'self'", stripe, config.get("CSP_EXTRA_CONNECT_SRC", "")),
        "frame-src": _sources(stripe, config.get("CSP_EXTRA_FRAME_SRC", "")),
        "object-src": "'none'",
        "base-uri": "'none'",
        "form-action": "'self'",
        "frame-ancestors": "'none'",
    }
    return "; ".join(f"{name} {value}" for name, value in directives.items())


def allow_stripe_js(response: AnyResponse) -> AnyResponse:
    """Give one page (checkout) the policy that lets Stripe.js load and run; every other page keeps none."""
    response.headers["Content-Security-Policy"] = content_security_policy(current_app.config, stripe_js=True)
    return response


def init_app(app: Flask) -> None:
    policy = content_security_policy(app.config)
    referrer_policy = app.config.get("REFERRER_POLICY", "strict-origin-when-cross-origin")
    hsts = (
        f"max-age={app.config.get('HSTS_MAX_AGE_SECONDS', 31536000)}; includeSubDomains"
        if app.config.get("HSTS_ENABLED")
        else None
    )

    @app.after_request
    def _security_headers(response: Response) -> Response:
        response.headers.setdefault("Content-Security-Policy", policy)
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers.setdefault("Referrer-Policy", referrer_policy)
        if hsts is not None:
            response.headers["Strict-Transport-Security"] = hsts
        return response
