from __future__ import annotations

from typing import Any

from marshmallow import ValidationError, validate, validates

from marketplace.core.time import is_valid_timezone
from marketplace.core.validation import Schema, fields


def validate_timezone(value: str) -> None:
    if not is_valid_timezone(value):
        raise ValidationError("Not a known IANA time zone (e.g. Europe/Berlin).")


class RegisterSchema(Schema):
    email = fields.Email(required=True, validate=validate.Length(max=254))
    password = fields.String(required=True, load_only=True, validate=validate.Length(min=10, max=256))
    name = fields.String(required=True, validate=validate.Length(min=1, max=120))
    role = fields.String(required=True, validate=validate.OneOf(["learner", "mentor"]))
    timezone = fields.String(load_default="UTC", validate=validate_timezone)

    @validates("name")
    def _name_not_blank(self, value: str, **_: Any) -> None:
        if not value.strip():
            raise ValidationError("Name must not be blank.")


class CredentialsSchema(Schema):
    email = fields.String(required=True, validate=validate.Length(min=1, max=254))
    password = fields.String(required=True, load_only=True, validate=validate.Length(min=1, max=256))


class UserSchema(Schema):
    id = fields.Integer(dump_only=True)
    email = fields.String(dump_only=True)
    name = fields.String(dump_only=True)
    roles = fields.List(fields.String(), dump_only=True)
    timezone = fields.String(dump_only=True)


class SessionSchema(Schema):
    user = fields.Nested(UserSchema, dump_only=True)
    csrf_token = fields.String(dump_only=True)


class TokenSchema(Schema):
    token = fields.String(dump_only=True)
