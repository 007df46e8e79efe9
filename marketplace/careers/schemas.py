"""Career-path API output, and the query arguments of the HTML pages."""

from __future__ import annotations

from typing import Any

from marshmallow import post_load, validate

from marketplace.accounts.schemas import validate_timezone
from marketplace.core.money import minor_units
from marketplace.core.validation import QuerySchema, Schema, fields
from marketplace.mentors.schemas import MentorSearchArgsSchema, PublicMentorSchema


class BookSchema(Schema):
    title = fields.String()
    authors = fields.List(fields.String())
    why = fields.String()


class CourseSchema(Schema):
    title = fields.String()
    provider = fields.String()
    url = fields.String()
    why = fields.String()


class SalarySchema(Schema):
    currency = fields.String()
    entry = fields.Integer(metadata={"description": "Annual pay at entry level, whole currency units"})
    senior = fields.Integer(metadata={"description": "Annual pay at senior level, whole currency units"})
    hike_amount = fields.Integer()
    hike_percent = fields.Integer()
    basis = fields.String(metadata={"description": "Where the figures come from"})


class CareerPathSummarySchema(Schema):
    slug = fields.String()
    title = fields.String()
    summary = fields.String()


class CareerPathDetailSchema(Schema):
    """Reads a `service.PathDetail`: the path's own fields, then what was looked up around it."""

    slug = fields.String(attribute="path.slug")
    title = fields.String(attribute="path.title")
    summary = fields.String(attribute="path.summary")
    description = fields.String(attribute="path.description")
    skills = fields.List(fields.String(), attribute="path.skills")
    books = fields.List(fields.Nested(BookSchema), attribute="path.books")
    courses = fields.List(fields.Nested(CourseSchema), attribute="path.courses")
    salary = fields.Nested(SalarySchema, attribute="path.salary")
    related = fields.List(fields.Nested(CareerPathSummarySchema))
    mentors = fields.List(
        fields.Nested(PublicMentorSchema), metadata={"description": "The best matching approved mentors"}
    )
    mentor_count = fields.Integer(metadata={"description": "How many approved mentors match the path"})


class TimeZoneArgsSchema(QuerySchema):
    tz = fields.String(
        validate=validate_timezone,
        metadata={"description": "IANA zone to show times in (default: the browser's, else UTC)"},
    )


class MentorPageArgsSchema(MentorSearchArgsSchema):
    """The listing form: the API's filters, with the price in whole units as people type it."""

    max_price = fields.Integer(validate=validate.Range(min=0, max=10_000))
    page = fields.Integer(load_default=1, validate=validate.Range(min=1, max=10_000))

    @post_load
    def _price_in_cents(self, data: dict[str, Any], **_: Any) -> dict[str, Any]:
        if "max_price" in data:
            data["max_price_cents"] = minor_units(data["max_price"], data.get("currency", "USD"))
        return data
