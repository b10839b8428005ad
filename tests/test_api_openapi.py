"""The OpenAPI document is valid OpenAPI 3.1 and describes exactly the routes the app serves under /api/v1."""

from __future__ import annotations

import re
from typing import Any

from flask import Flask
from openapi_spec_validator import validate

from collectz.blueprints.api.spec import OPERATIONS

API = "/api/v1"
_CONVERTER = re.compile(r"<(?:[^:<>]+:)?([^<>:]+)>")
IGNORED_METHODS = {"HEAD", "OPTIONS"}  # Flask adds them to every rule


def served(app: Flask) -> dict[str, Any]:
    resp = app.test_client().get(f"{API}/openapi.json")
    assert resp.status_code == 200 and resp.mimetype == "application/json"
    return resp.get_json()


def url_map_operations(app: Flask) -> set[tuple[str, str]]:
    """(METHOD, /path/{param}) of every rule under /api/v1, as the document would write it."""
    found = set()
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith(API + "/"):
            path = _CONVERTER.sub(lambda m: "{" + m.group(1) + "}", rule.rule[len(API):])
            found |= {(method, path) for method in (rule.methods or set()) - IGNORED_METHODS}
    return found


def document_operations(doc: dict[str, Any]) -> set[tuple[str, str]]:
    methods = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}
    return {(method.upper(), path) for path, item in doc["paths"].items() for method in item if method in methods}


def test_the_document_is_valid_openapi_3_1(app: Flask) -> None:
    doc = served(app)
    assert doc["openapi"].startswith("3.1")
    validate(doc)  # raises on any structural error, a dangling $ref included


def test_every_route_is_described_and_every_described_route_exists(app: Flask) -> None:
    routes, described = url_map_operations(app), document_operations(served(app))

    assert routes - described == set(), "routes missing from the OpenAPI document"
    assert described - routes == set(), "documented operations the app does not serve"
    assert len(routes) == len(OPERATIONS) >= 25


def test_each_operation_documents_its_scope_security_and_failures(app: Flask) -> None:
    doc = served(app)
    for op in OPERATIONS:
        entry = doc["paths"][op.path][op.method.lower()]
        statuses = set(entry["responses"])
        assert entry["operationId"] == op.endpoint and entry["x-scope"] == op.scope
        assert {"400", "401", "429"} <= statuses, op.endpoint
        if op.scope == "public":
            assert entry["security"] == []
        else:
            assert "403" in statuses and entry["security"], op.endpoint
        if op.path_params:
            assert "404" in statuses, op.endpoint
        if op.body is not None or op.query:
            assert "422" in statuses, op.endpoint
        assert any(s.startswith("2") for s in statuses), op.endpoint


def test_every_error_answer_shares_one_schema(app: Flask) -> None:
    doc = served(app)
    error_schema = doc["components"]["schemas"]["Error"]
    assert error_schema["required"] == ["error"]
    assert error_schema["properties"]["error"]["required"] == ["code", "message", "fields"]
    for name, response in doc["components"]["responses"].items():
        assert response["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}, name


def test_the_document_needs_no_credentials_and_names_the_session_cookie(make_app: Any) -> None:
    app = make_app(SESSION_COOKIE_NAME="household_session")
    doc = served(app)
    assert doc["components"]["securitySchemes"]["sessionCookie"]["name"] == "household_session"
    assert doc["components"]["securitySchemes"]["bearerToken"]["scheme"] == "bearer"
