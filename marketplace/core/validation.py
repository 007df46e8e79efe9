"""The one input layer: whatever a client sends gets a 4xx, never a 5xx.

- `Schema` (and `QuerySchema` for query strings) is the base of every schema; its input fields must be the
  bounded types of `marketplace.core.fields` (checked when a schema is built, so nothing unbounded slips in).
- `SafeJSONProvider` parses request bodies: UTF-8 only, nesting at most `MAX_JSON_DEPTH`, numbers of at most
  `MAX_NUMBER_LENGTH` characters, no NaN or Infinity. `ArgumentsParser` makes flask-smorest use it.
- URL converters: `<int:...>` ids within an SQL `Integer`, `<name>` segments without control characters;
  anything else does not match the route, so it is a 404.
- `MAX_CONTENT_LENGTH` bounds the body (413).
"""

from __future__ import annotations

import json
import re
from typing import Any

import flask_smorest.pagination
from flask import Flask, current_app, request
from flask.json.provider import DefaultJSONProvider
from flask_smorest.pagination import PaginationParameters
from marshmallow import EXCLUDE, post_load, validate
from marshmallow import Schema as MarshmallowSchema
from marshmallow import fields as ma_fields
from webargs import core as webargs_core
from webargs.flaskparser import FlaskParser, abort, is_json_request
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.routing import IntegerConverter, UnicodeConverter, ValidationError

from marketplace.core import fields
from marketplace.core.fields import INT32_MAX, BoundedField, has_control_characters

__all__ = ["ArgumentsParser", "QuerySchema", "SafeJSONProvider", "Schema", "fields", "init_app"]

MAX_JSON_DEPTH = 32
MAX_NUMBER_LENGTH = 40
MAX_PATH_SEGMENT_LENGTH = 255

_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_JSON_BRACKET = re.compile(r"[\[\]{}]")


class Schema(MarshmallowSchema):
    """Base of every API schema: each field that loads input is one of the bounded field types."""

    reads_query_string = False

    def on_bind_field(self, field_name: str, field_obj: ma_fields.Field[Any]) -> None:
        if not field_obj.dump_only:
            _require_bounded(field_obj, f"{type(self).__name__}.{field_name}")


class QuerySchema(Schema):
    """For query strings, where every value arrives as a string: integers are parsed from digits."""

    reads_query_string = True


def _require_bounded(field: ma_fields.Field[Any], where: str) -> None:
    if isinstance(field, ma_fields.List):
        _require_bounded(field.inner, where)
    elif isinstance(field, ma_fields.Tuple):
        for inner in field.tuple_fields:
            _require_bounded(inner, where)
    elif isinstance(field, ma_fields.Nested):
        nested = field.nested
        if isinstance(nested, type) and not issubclass(nested, Schema):
            raise TypeError(f"{where}: nest a marketplace.core.validation.Schema, not {nested.__name__}")
        if isinstance(nested, MarshmallowSchema) and not isinstance(nested, Schema):
            raise TypeError(
                f"{where}: nest a marketplace.core.validation.Schema, not {type(nested).__name__}"
            )
    elif isinstance(field, ma_fields.Mapping):
        if field.key_field is None or field.value_field is None:
            raise TypeError(f"{where}: a mapping that loads input needs bounded key and value fields")
        _require_bounded(field.key_field, where)
        _require_bounded(field.value_field, where)
    elif not isinstance(field, BoundedField | ma_fields.Boolean | ma_fields.Enum | ma_fields.UUID):
        raise TypeError(f"{where}: use the bounded field types of marketplace.core.fields for input")


class JSONInputError(ValueError):
    """A body that is JSON but past the limits this service accepts."""


def _too_deep(text: str) -> bool:
    depth = 0
    for bracket in _JSON_BRACKET.finditer(_JSON_STRING.sub("", text)):
        if bracket.group() in "[{":
            depth += 1
            if depth > MAX_JSON_DEPTH:
                return True
        else:
            depth -= 1
    return False


def _bounded_number(parse: type) -> Any:
    def parse_number(literal: str) -> Any:
        if len(literal) > MAX_NUMBER_LENGTH:
            raise JSONInputError(f"Numbers may have at most {MAX_NUMBER_LENGTH} characters.")
        return parse(literal)

    return parse_number


def _reject_constant(name: str) -> Any:
    raise JSONInputError(f"{name} is not a JSON number.")


class SafeJSONProvider(DefaultJSONProvider):
    """Flask's JSON, with limits on what it reads, so a hostile body is a 400 rather than a crash."""

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        if isinstance(s, bytes | bytearray):
            try:
                s = bytes(s).decode("utf-8")
            except UnicodeDecodeError:
                raise JSONInputError("The body is not UTF-8.") from None
        if _too_deep(s):
            raise JSONInputError(f"JSON may nest at most {MAX_JSON_DEPTH} levels.")
        kwargs.setdefault("parse_int", _bounded_number(int))
        kwargs.setdefault("parse_float", _bounded_number(float))
        kwargs.setdefault("parse_constant", _reject_constant)
        return json.loads(s, **kwargs)


class ArgumentsParser(FlaskParser):
    """webargs' parser reading bodies with the app's JSON provider; a body that is not JSON is a 415."""

    def _raw_load_json(self, req: Any) -> Any:
        if not is_json_request(req):
            if req.get_data(cache=True):
                abort(415, message="Send the body as application/json.")
            return webargs_core.missing
        try:
            return current_app.json.loads(req.get_data(cache=True))
        except JSONInputError as exc:
            abort(400, exc=exc, message="The body is not acceptable JSON.", messages={"json": [str(exc)]})


def pagination_parameters_schema(
    default_page: int, default_page_size: int, max_page_size: int
) -> type[QuerySchema]:
    """flask-smorest's `page`/`page_size` parameters, with `page` bounded so its offset fits the database."""

    class PaginationParametersSchema(QuerySchema):
        class Meta:
            unknown = EXCLUDE

        page = fields.Integer(load_default=default_page, validate=validate.Range(min=1))
        page_size = fields.Integer(
            load_default=default_page_size, validate=validate.Range(min=1, max=max_page_size)
        )

        @post_load
        def make_paginator(self, data: dict[str, int], **_: Any) -> PaginationParameters:
            return PaginationParameters(**data)

    return PaginationParametersSchema


# flask-smorest builds its pagination schema in this module-level factory, called by `Blueprint.paginate`.
flask_smorest.pagination._pagination_parameters_schema_factory = pagination_parameters_schema


class BoundedIntegerConverter(IntegerConverter):
    """`<int:...>` ids within an SQL `Integer`: a larger one matches no row, so it is a 404, not an overflow."""

    def __init__(self, map: Any, *args: Any, min: int = 1, max: int = INT32_MAX, **kwargs: Any) -> None:
        super().__init__(map, *args, min=min, max=max, **kwargs)  # type: ignore[misc]  # mypy: *args might hold them


class SafeStringConverter(UnicodeConverter):
    """Path segments without NUL or other control characters, and of a length a column can hold."""

    def __init__(self, map: Any, *args: Any, maxlength: int = MAX_PATH_SEGMENT_LENGTH, **kwargs: Any) -> None:
        super().__init__(map, *args, maxlength=maxlength, **kwargs)  # type: ignore[misc]  # mypy: *args might hold it

    def to_python(self, value: str) -> str:
        if has_control_characters(value):
            raise ValidationError()
        return value


def _refuse_large_bodies() -> None:
    limit = current_app.config.get("MAX_CONTENT_LENGTH")
    if limit is not None and request.content_length is not None and request.content_length > limit:
        raise RequestEntityTooLarge()


def init_app(app: Flask) -> None:
    """Call before any blueprint is registered: the converters apply to rules as they are added."""
    app.json = SafeJSONProvider(app)
    app.url_map.converters["int"] = BoundedIntegerConverter
    app.url_map.converters["default"] = SafeStringConverter
    app.url_map.converters["string"] = SafeStringConverter
    app.before_request(_refuse_large_bodies)
