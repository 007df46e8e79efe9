"""Career paths: the JSON API, and the server-rendered pages a learner finds mentors through.

The pages use a flask-smorest blueprint as well, so the OpenAPI document lists them with their query
parameters, and their arguments are validated by the same schemas as the API's.
"""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

from flask import Response, request
from flask.views import MethodView
from werkzeug.exceptions import UnprocessableEntity

from marketplace.careers import pages, service
from marketplace.careers.models import CareerPath
from marketplace.careers.schemas import (
    CareerPathDetailSchema,
    CareerPathSummarySchema,
    MentorPageArgsSchema,
    TimeZoneArgsSchema,
)
from marketplace.core.api import Blueprint
from marketplace.core.cache import ResponseCache
from marketplace.core.errors import NotFound
from marketplace.mentors.catalog import CATALOG_RESPONSES

blp = Blueprint("careers", __name__, url_prefix="/api/v1", description="Career paths")
html = Blueprint("pages", __name__, description="Server-rendered HTML pages")
for _name, _filter in pages.FILTERS.items():
    html.add_app_template_filter(_filter, _name)

HTML = "text/html"
PAGE = {"type": "string", "description": "An HTML document"}
# Mentor pages are cached per process like the catalog's, but also under the mentor's calendar version,
# since their free times move with every booking. A page is about 30 KB.
MENTOR_PAGES = ResponseCache(
    lambda: service.mentor_page_version(int((request.view_args or {})["mentor_id"])), maxsize=512
)
SLUG = [{"in": "path", "name": "slug", "description": "A career path's slug", "example": "backend-developer"}]


@blp.route("/career-paths")
class CareerPaths(MethodView):
    @CATALOG_RESPONSES
    @blp.response(200, CareerPathSummarySchema(many=True))
    def get(self) -> list[CareerPath]:
        """Every career path, by title."""
        return service.list_paths()


@blp.route("/career-paths/<slug>", parameters=SLUG)
class CareerPathDetail(MethodView):
    @CATALOG_RESPONSES
    @blp.response(200, CareerPathDetailSchema)
    @blp.alt_response(404, description="No such career path")
    def get(self, slug: str) -> service.PathDetail:
        """A career path with its books, courses, salary, related paths and best matching mentors."""
        return service.path_detail(slug)


@html.route("/")
class HomePage(MethodView):
    @CATALOG_RESPONSES
    @html.response(
        200, schema=PAGE, content_type=HTML, description="The home page: search, career paths, how it works"
    )
    def get(self) -> Response:
        return pages.home(service.list_paths())


@html.route("/careers")
class CareerIndexPage(MethodView):
    @CATALOG_RESPONSES
    @html.response(200, schema=PAGE, content_type=HTML, description="The index of career paths")
    def get(self) -> Response:
        return pages.career_index(service.list_paths())


@html.route("/careers/<slug>", parameters=SLUG)
class CareerPage(MethodView):
    @CATALOG_RESPONSES
    @html.response(
        200, schema=PAGE, content_type=HTML, description="One career path and its best matching mentors"
    )
    @html.alt_response(404, schema=PAGE, content_type=HTML, description="No such career path")
    def get(self, slug: str) -> Response:
        return pages.career(service.path_detail(slug))


@html.route("/mentors")
class MentorListPage(MethodView):
    @CATALOG_RESPONSES
    @html.arguments(MentorPageArgsSchema, location="query")
    @html.response(200, schema=PAGE, content_type=HTML, description="Approved mentors, filtered and sorted")
    @html.alt_response(422, schema=PAGE, content_type=HTML, description="A filter was not understood")
    def get(self, args: dict[str, Any]) -> Response:
        page = args.pop("page")
        return pages.mentor_list(service.mentor_listing(args, page))


@html.route("/mentors/<int:mentor_id>")
class MentorProfilePage(MethodView):
    @MENTOR_PAGES
    @html.arguments(TimeZoneArgsSchema, location="query")
    @html.response(
        200, schema=PAGE, content_type=HTML, description="An approved mentor's profile and free times"
    )
    @html.alt_response(404, schema=PAGE, content_type=HTML, description="No such approved mentor")
    @html.alt_response(422, schema=PAGE, content_type=HTML, description="`tz` is not an IANA time zone")
    def get(self, args: dict[str, Any], mentor_id: int) -> Response:
        zone = ZoneInfo(args.get("tz", "UTC"))
        return pages.mentor_profile(service.mentor_page(mentor_id, zone), args.get("tz"))


@html.errorhandler(NotFound)
def _not_found(error: NotFound) -> Response:
    """Pages answer a missing path or mentor with a page, not with the API's JSON error."""
    return pages.error(404, "Page not found", error.message)


@html.errorhandler(UnprocessableEntity)
def _bad_arguments(error: UnprocessableEntity) -> Response:
    problems = getattr(error, "data", {}).get("messages", {}).get("query", {})
    return pages.error(422, "Please check the filters", "Some filters were not understood.", problems)
