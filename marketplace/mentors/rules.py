"""Field rules of a mentor profile: real language and currency codes, and prices Stripe can charge.

Pure: no Flask, no database. The code lists come from Babel (CLDR), so they are not kept by hand here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from functools import cache

from babel import Locale
from babel.core import get_global
from babel.numbers import get_currency_precision, get_territory_currencies

_PLAIN_LANGUAGE = re.compile(r"[a-z]{2,3}")
# CLDR names these codes, but they say "no language" or "several", not a language someone speaks.
_NOT_LANGUAGES = frozenset({"und", "zxx", "mul", "mis"})


@cache
def language_codes() -> frozenset[str]:
    """ISO 639 codes that CLDR names (its shortest form: `en`, `de`, `yue`)."""
    return frozenset(
        code
        for code in Locale("en").languages
        if isinstance(code, str) and _PLAIN_LANGUAGE.fullmatch(code) and code not in _NOT_LANGUAGES
    )


def canonical_language(code: str) -> str | None:
    """The CLDR code for `code` (`eng` and `en` give `en`, `iw` gives `he`), or None for no language."""
    alias: str | None = get_global("language_aliases").get(code)
    if alias is not None and alias in language_codes():
        return alias
    return code if code in language_codes() else None


@cache
def currencies_in_use() -> frozenset[str]:
    """ISO 4217 codes that are legal tender somewhere today: no funds (`XXX`, `XTS`), metals or old money."""
    return frozenset(
        code
        for territory in get_global("territory_currencies")
        for code in get_territory_currencies(territory, tender=True)
    )


@dataclass(frozen=True)
class CurrencyRule:
    stripe_minimum: Decimal  # Stripe's minimum charge, in the currency's major unit
    per_us_dollar: Decimal  # roughly how many units buy one US dollar: only for the sanity cap on prices


# Stripe's minimum charge amounts (docs.stripe.com/currencies, "Minimum and maximum charge amounts") for the
# currencies mentors may price in. Another of Stripe's currencies needs only its row here.
CURRENCY_RULES: dict[str, CurrencyRule] = {
    "USD": CurrencyRule(Decimal("0.50"), Decimal(1)),
    "EUR": CurrencyRule(Decimal("0.50"), Decimal(1)),
    "GBP": CurrencyRule(Decimal("0.30"), Decimal(1)),
    "CHF": CurrencyRule(Decimal("0.50"), Decimal(1)),
    "CAD": CurrencyRule(Decimal("0.50"), Decimal("1.4")),
    "AUD": CurrencyRule(Decimal("0.50"), Decimal("1.5")),
    "SGD": CurrencyRule(Decimal("0.50"), Decimal("1.3")),
    "PLN": CurrencyRule(Decimal("2.00"), Decimal(4)),
    "DKK": CurrencyRule(Decimal("2.50"), Decimal(7)),
    "SEK": CurrencyRule(Decimal("3.00"), Decimal(10)),
    "NOK": CurrencyRule(Decimal("3.00"), Decimal(10)),
    "INR": CurrencyRule(Decimal("0.50"), Decimal(85)),
    "JPY": CurrencyRule(Decimal(50), Decimal(150)),  # zero-decimal: amounts are whole yen
}


def currency_error(code: str) -> str | None:
    if code not in currencies_in_use():
        return "Not an ISO 4217 currency in use (e.g. 'EUR')."
    if code not in CURRENCY_RULES:
        return f"Prices can be in {', '.join(sorted(CURRENCY_RULES))}."
    return None


def to_minor_units(amount: Decimal, currency: str) -> int:
    """Stripe counts amounts in the minor unit: cents, or whole units for zero-decimal currencies (JPY)."""
    return int(amount * 10 ** get_currency_precision(currency))


def format_amount(minor: int, currency: str) -> str:
    digits = get_currency_precision(currency)
    return f"{Decimal(minor).scaleb(-digits):.{digits}f} {currency}"


def price_bounds(currency: str, max_hourly_usd: int) -> tuple[int, int]:
    """The lowest and highest hourly rate, in minor units: Stripe's minimum, and about `max_hourly_usd`."""
    rule = CURRENCY_RULES[currency]
    return (
        to_minor_units(rule.stripe_minimum, currency),
        to_minor_units(rule.per_us_dollar * max_hourly_usd, currency),
    )


def price_error(
    price_cents: int, currency: str, session_minutes: list[int], max_hourly_usd: int
) -> str | None:
    """Why this hourly rate cannot be charged, or None. Every session length offered must cost at least
    Stripe's minimum: a session's price is its share of the hourly rate (rounded up from a half), so a
    share of at least the minimum before rounding is enough."""
    lowest, highest = price_bounds(currency, max_hourly_usd)
    if price_cents < lowest:
        return f"At least {format_amount(lowest, currency)}, Stripe's minimum charge."
    if price_cents > highest:
        return f"At most {format_amount(highest, currency)} an hour."
    shortest = min(session_minutes, default=60)
    if price_cents * shortest < lowest * 60:
        return (
            f"A {shortest}-minute session would cost less than {format_amount(lowest, currency)}, "
            "Stripe's minimum charge: raise the price or offer longer sessions."
        )
    return None
