"""Swagger UI served by this service, from the files the `flask-swagger-ui` package ships: the docs work
offline and load nothing from another host. The page itself is flask-smorest's `/api/docs`, rendered with
our `templates/swagger_ui.html`, whose initializer is a static file so the CSP needs no inline script.
"""

from __future__ import annotations

from pathlib import Path

import flask_swagger_ui
from flask import Blueprint, Flask, Response, send_from_directory

# Keep equal to the default of OPENAPI_SWAGGER_UI_URL in config.
SWAGGER_UI_ASSETS_PATH = "/api/docs/swagger-ui"
SWAGGER_UI_DIST = Path(flask_swagger_ui.__file__).resolve().parent / "dist"

blp = Blueprint("swagger_ui_assets", __name__, url_prefix=SWAGGER_UI_ASSETS_PATH)


@blp.route("/<path:filename>")
def asset(filename: str) -> Response:
    return send_from_directory(SWAGGER_UI_DIST, filename)


def init_app(app: Flask) -> None:
    app.register_blueprint(blp)
