"""Money as people read it, from integer minor units (the API's `price_cents`) and an ISO 4217 code.

Pure: no Flask, no domain. Babel (CLDR) knows each currency's symbol and its number of decimals, so a yen
amount is whole yen (`¥5,000`) while a dollar amount has cents (`$90.00`).
"""

from __future__ import annotations

from decimal import Decimal

from babel.numbers import format_currency, get_currency_precision

# Pages and mails are written in English.
LOCALE = "en"
# A whole-unit pattern for amounts kept in major units without fractions (yearly salaries in the content).
_WHOLE_UNITS = "¤#,##0"


def major_units(minor: int, currency: str) -> Decimal:
    """9000 USD cents are 90.00 dollars; 5000 JPY minor units are 5000 yen (yen have no minor unit)."""
    return Decimal(minor).scaleb(-get_currency_precision(currency))


def minor_units(major: int, currency: str) -> int:
    """90 dollars are 9000 cents; 5000 yen are 5000 minor units."""
    return int(major * 10 ** get_currency_precision(currency))


def format_money(minor: int, currency: str, locale: str = LOCALE) -> str:
    """`$90.00`, `€72.50`, `¥5,000`, `CHF120.00`: the currency's own symbol and decimals."""
    return format_currency(major_units(minor, currency), currency, locale=locale)


def format_whole_amount(amount: int, currency: str, locale: str = LOCALE) -> str:
    """An amount already in whole major units, shown without decimals: `$120,000`, `€95,000`."""
    return format_currency(amount, currency, format=_WHOLE_UNITS, currency_digits=False, locale=locale)
