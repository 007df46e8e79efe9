"""Marshmallow field types bounded to what the database holds; schemas use these in place of marshmallow's.

Import this module as `fields` (`from marketplace.core.validation import fields`): the field names are
marshmallow's, so a schema swaps its import and keeps its declarations. The checks run while a value is
deserialized, before the field's own validators, so those only ever see bounded values:

- integers: strict (a JSON `1.5` or `"100"` is not an integer), within the 32-bit signed range of an SQL
  `Integer` unless narrower bounds are given; in a `QuerySchema`, where every value is a string, digits are
  parsed, then bounded the same way;
- text: no NUL or other control character, no lone surrogate (`multiline=True` keeps `\\n`, `\\r`, `\\t` for
  free text), and at most `DEFAULT_MAX_LENGTH` characters unless a `Length` validator says otherwise;
- dates and datetimes: years `MIN_YEAR` to `MAX_YEAR`, so converting to UTC or adding days cannot overflow.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any

from marshmallow import ValidationError, validate
from marshmallow import fields as ma_fields
from marshmallow import types as ma_types
from marshmallow.fields import (
    UUID,
    Boolean,
    Constant,
    Dict,
    Enum,
    Field,
    Float,
    Function,
    List,
    Method,
    Nested,
    Pluck,
    Raw,
    Tuple,
)

__all__ = [
    "UUID",
    "AwareDateTime",
    "Boolean",
    "Constant",
    "Date",
    "DateTime",
    "Dict",
    "Email",
    "Enum",
    "Field",
    "Float",
    "Function",
    "Integer",
    "List",
    "Method",
    "NaiveDateTime",
    "Nested",
    "Pluck",
    "Raw",
    "String",
    "Tuple",
    "Url",
]

INT32_MIN = -(2**31)
INT32_MAX = 2**31 - 1
MIN_YEAR = 2000
MAX_YEAR = 2100
DEFAULT_MAX_LENGTH = 255
# The longest date-time RFC 3339 allows with fractions and an offset is well under this.
MAX_TEMPORAL_LENGTH = 64

_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_CONTROL_EXCEPT_LINES = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")
_QUERY_INTEGER = re.compile(r"[+-]?[0-9]{1,20}\Z")


def has_control_characters(value: str, *, multiline: bool = False) -> bool:
    """NUL, other C0/C1 controls or a lone surrogate (which no database text column can store)."""
    return (_CONTROL_EXCEPT_LINES if multiline else _CONTROL).search(value) is not None


class BoundedField:
    """Marks the field types whose input is bounded; the base `Schema` accepts no other for loading."""


class _CleanText(BoundedField):
    validators: list[ma_types.Validator]
    default_error_messages: ma_types.ErrorMessages = {
        "control": "Must be one line without control characters.",
        "control_multiline": "Must not contain control characters other than line breaks and tabs.",
        "too_long": "Longer than maximum length {max}.",
    }

    def __init__(self, *args: Any, multiline: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.multiline = multiline
        limits = [v.max for v in self.validators if isinstance(v, validate.Length) and v.max is not None]
        # The default bound is enforced on input but not documented: an output-only field (a career path's
        # description, a stored note) would otherwise be documented, and checked, as at most this long.
        self.max_length = min(limits, default=DEFAULT_MAX_LENGTH)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text: str = super()._deserialize(value, attr, data, **kwargs)  # type: ignore[misc]
        if len(text) > self.max_length:
            raise self.make_error("too_long", max=self.max_length)  # type: ignore[attr-defined]
        if has_control_characters(text, multiline=self.multiline):
            raise self.make_error("control_multiline" if self.multiline else "control")  # type: ignore[attr-defined]
        return text


class String(_CleanText, ma_fields.String):
    pass


class Email(_CleanText, ma_fields.Email):
    pass


class Url(_CleanText, ma_fields.Url):
    pass


class Integer(BoundedField, ma_fields.Integer):
    """Strict and bounded; `min`/`max` default to the range of an SQL `Integer` column."""

    default_error_messages = {"range": "Must be between {min} and {max}."}

    def __init__(
        self, *, strict: bool = True, min: int = INT32_MIN, max: int = INT32_MAX, **kwargs: Any
    ) -> None:
        super().__init__(strict=strict, **kwargs)
        self.min = min
        self.max = max
        # Listed as a validator too, so the OpenAPI document states the bounds.
        self.validators.insert(0, validate.Range(min=min, max=max))

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> int:
        if isinstance(value, str) and getattr(self.root, "reads_query_string", False):
            if not _QUERY_INTEGER.match(value):
                raise self.make_error("invalid")
            value = int(value)
        number = super()._deserialize(value, attr, data, **kwargs)
        if not self.min <= number <= self.max:
            raise self.make_error("range", min=self.min, max=self.max)
        return number


class _BoundedTemporal(BoundedField):
    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if isinstance(value, str) and len(value) > MAX_TEMPORAL_LENGTH:
            raise self.make_error("invalid", input=value, obj_type=self.OBJ_TYPE)  # type: ignore[attr-defined]
        parsed: date = super()._deserialize(value, attr, data, **kwargs)  # type: ignore[misc]
        if not MIN_YEAR <= parsed.year <= MAX_YEAR:
            raise ValidationError(f"Must be in the years {MIN_YEAR} to {MAX_YEAR}.")
        return parsed


class DateTime(_BoundedTemporal, ma_fields.DateTime):
    pass


class NaiveDateTime(_BoundedTemporal, ma_fields.NaiveDateTime):
    pass


class AwareDateTime(_BoundedTemporal, ma_fields.AwareDateTime):
    pass


class Date(_BoundedTemporal, ma_fields.Date):
    pass
