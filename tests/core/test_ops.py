from __future__ import annotations

from flask.testing import FlaskClient
from openapi_spec_validator import validate

from tests.helpers import assert_error_shape, temporary_app
from tests.support.servers import free_port, redis_server


def test_healthz(client: FlaskClient) -> None:
    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


def test_readyz_checks_the_database(client: FlaskClient) -> None:
    response = client.get("/readyz")

    assert response.status_code == 200
    assert response.get_json()["checks"] == {"database": "ok"}


def test_readyz_checks_redis_when_configured(database_url: str) -> None:
    with redis_server() as url, temporary_app(database_url, REDIS_URL=url) as app:
        live = app.test_client().get("/readyz")
    with temporary_app(database_url, REDIS_URL=f"redis://127.0.0.1:{free_port()}/0") as app:
        dead = app.test_client().get("/readyz")

    assert live.status_code == 200
    assert live.get_json()["checks"] == {"database": "ok", "redis": "ok"}
    assert dead.status_code == 503
    assert dead.get_json()["checks"]["database"] == "ok"
    assert dead.get_json()["checks"]["redis"].startswith("error")


def test_readyz_reports_an_unreachable_database() -> None:
    with temporary_app(f"postgresql+psycopg://nobody@127.0.0.1:{free_port()}/none") as app:
        response = app.test_client().get("/readyz")

    assert response.status_code == 503
    assert response.get_json()["checks"]["database"].startswith("error")


def test_metrics_are_prometheus_text(client: FlaskClient) -> None:
    client.get("/healthz")

    response = client.get("/metrics")

    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    assert 'http_requests_total{endpoint="ops.Health",method="GET",status="200"}' in response.get_data(
        as_text=True
    )


def test_openapi_document_validates_and_lists_every_route(client: FlaskClient) -> None:
    spec = client.get("/api/openapi.json").get_json()

    validate(spec)
    documented = {
        (path, method.upper())
        for path, item in spec["paths"].items()
        for method in item
        if method != "parameters"
    }
    app = client.application
    served = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint in {
            "static",
            "api-docs.openapi_json",
            "api-docs.openapi_swagger_ui",
            "swagger_ui_assets.asset",
        }:
            continue
        path = rule.rule.replace("<int:", "{").replace("<", "{").replace(">", "}")
        served |= {(path, m) for m in rule.methods - {"HEAD", "OPTIONS"}}
    assert served <= documented, served - documented
    assert ("/api/v1/auth/login", "POST") in documented


def test_docs_page_is_served(client: FlaskClient) -> None:
    response = client.get("/api/docs")

    assert response.status_code == 200
    assert b"swagger" in response.data.lower()


def test_unknown_paths_and_methods_use_the_error_shape(client: FlaskClient) -> None:
    assert_error_shape(client.get("/api/v1/nothing-here"), 404)
    assert_error_shape(client.delete("/api/v1/mentors"), 405)
