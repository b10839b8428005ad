"""The one description of the API, and the OpenAPI 3.1 document built from it.

Every route is declared by `operation(...)` on its view: the method, path, scope, query parameters, body and
responses. The decorator registers the Flask rule and the guard (credentials, scope) from the same declaration
that the document describes, so the two cannot drift; tests/test_api_openapi.py also compares the document with
the URL map in both directions.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import wraps
from typing import Any, TypeVar

from flask import request

from collectz.blueprints.api import auth, bp
from collectz.blueprints.api.inputs import INT_MAX, MISSING, Reader
from collectz.blueprints.api.schemas import ERROR_CODES, SCHEMAS, ref
from collectz.services.errors import NotFound
from collectz.version import __version__

F = TypeVar("F", bound=Callable[..., Any])

_PATH_PARAM = re.compile(r"\{([a-z_]+)\}")
JSON = "application/json"
TAGS = ("core", "media", "imports", "admin")  # the document's order
MULTIPART = "multipart/form-data"


@dataclass(frozen=True)
class Param:
    """A query parameter."""

    name: str
    schema: dict[str, Any]
    description: str = ""
    required: bool = False


@dataclass
class Operation:
    method: str
    path: str  # as in the document: /media/{media_id}
    endpoint: str
    summary: str
    scope: str
    tag: str
    description: str = ""
    query: tuple[Param, ...] = ()
    body: dict[str, Any] | None = None
    body_type: str = JSON
    responses: dict[int, tuple[str, dict[str, Any] | None]] = field(default_factory=dict)
    errors: tuple[int, ...] = ()

    @property
    def path_params(self) -> list[str]:
        return _PATH_PARAM.findall(self.path)

    @property
    def error_statuses(self) -> list[int]:
        """Every failure status this operation can answer (the shared ones and its own)."""
        codes = {400, 401, 429} | set(self.errors)  # 401: a token that does not work is refused everywhere
        if self.scope != auth.PUBLIC:
            codes.add(403)
        if self.path_params:
            codes.add(404)
        if self.query or self.body is not None:
            codes.add(422)
        return sorted(codes)


OPERATIONS: list[Operation] = []


def flask_rule(path: str) -> str:
    """/media/{media_id} → /media/<int:media_id>: every *_id is an integer (range-checked by `_check_ids`)."""
    def convert(match: re.Match[str]) -> str:
        name = match.group(1)
        return f"<int:{name}>" if name.endswith("_id") else f"<{name}>"

    return _PATH_PARAM.sub(convert, path)


@bp.url_value_preprocessor
def _check_ids(_endpoint: str | None, values: dict[str, Any] | None) -> None:
    """An id outside 1…2³¹-1 names no record: 404 (a range in the rule itself would make werkzeug answer 405)."""
    for name, value in (values or {}).items():
        if name.endswith("_id") and isinstance(value, int) and not 1 <= value <= INT_MAX:
            raise NotFound("No such record.")


def operation(method: str, path: str, *, summary: str, scope: str, tag: str, description: str = "",
              query: tuple[Param, ...] = (), body: dict[str, Any] | None = None, body_type: str = JSON,
              responses: dict[int, tuple[str, dict[str, Any] | None]], errors: tuple[int, ...] = ()
              ) -> Callable[[F], F]:
    """Declare and register one API operation; the view runs only for a caller with `scope`."""
    def decorate(view: F) -> F:
        op = Operation(method, path, view.__name__, summary, scope, tag, description, query, body, body_type,
                       responses, errors)
        OPERATIONS.append(op)

        @wraps(view)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            auth.require(scope)
            return view(*args, **kwargs)

        bp.add_url_rule(flask_rule(path), endpoint=view.__name__, view_func=guarded, methods=[method])
        return guarded  # type: ignore[return-value]

    return decorate


def read_query(params: tuple[Param, ...]) -> dict[str, Any]:
    """The declared query parameters that were sent, type-checked by their schemas (one 422 naming every bad one)."""
    r = Reader(request.args, json=False)
    values: dict[str, Any] = {}
    for p in params:
        schema, kind = p.schema, p.schema.get("type")
        if kind == "integer":
            value = r.integer(p.name, minimum=schema.get("minimum", 0), maximum=schema.get("maximum", INT_MAX))
        elif kind == "number":
            value = r.number(p.name, minimum=schema["minimum"], maximum=schema["maximum"])
        elif kind == "boolean":
            value = r.boolean(p.name)
        elif "enum" in schema:
            value = r.choice(p.name, schema["enum"])
        else:
            value = r.text(p.name, max_length=schema.get("maxLength"))
        if value is not MISSING:
            values[p.name] = value
    r.done()
    return values


def _parameters(op: Operation) -> list[dict[str, Any]]:
    params: list[dict[str, Any]] = []
    for name in op.path_params:
        schema = ({"type": "integer", "minimum": 1, "maximum": INT_MAX} if name.endswith("_id")
                  else {"type": "string"})
        params.append({"name": name, "in": "path", "required": True, "schema": schema})
    for p in op.query:
        entry: dict[str, Any] = {"name": p.name, "in": "query", "required": p.required, "schema": p.schema}
        if p.description:
            entry["description"] = p.description
        params.append(entry)
    return params


def _operation_document(op: Operation) -> dict[str, Any]:
    doc: dict[str, Any] = {"operationId": op.endpoint, "summary": op.summary, "tags": [op.tag]}
    scope_note = {auth.PUBLIC: "No credentials needed.",
                  auth.SIGNED_IN: "Any signed-in session or access token."}.get(op.scope,
                                                                                  f"Needs the `{op.scope}` scope.")
    doc["description"] = (op.description + "\n\n" if op.description else "") + scope_note
    doc["x-scope"] = op.scope
    params = _parameters(op)
    if params:
        doc["parameters"] = params
    if op.body is not None:
        doc["requestBody"] = {"required": True, "content": {op.body_type: {"schema": op.body}}}
    responses: dict[str, Any] = {}
    for status, (description, schema) in op.responses.items():
        responses[str(status)] = {"description": description}
        if schema is not None:
            responses[str(status)]["content"] = {JSON: {"schema": schema}}
    for status in op.error_statuses:
        responses.setdefault(str(status), {"$ref": f"#/components/responses/Error{status}"})
    doc["responses"] = responses
    doc["security"] = [] if op.scope == auth.PUBLIC else [{"bearerToken": []}, {"sessionCookie": []}]
    return doc


def document(cookie_name: str = "collectz_session") -> dict[str, Any]:
    """The OpenAPI 3.1 document of every declared operation."""
    paths: dict[str, dict[str, Any]] = {}
    ordered = sorted(OPERATIONS, key=lambda op: TAGS.index(op.tag) if op.tag in TAGS else len(TAGS))
    for op in ordered:
        paths.setdefault(op.path, {})[op.method.lower()] = _operation_document(op)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "collectZ API",
            "version": f"1 ({__version__})",
            "description": ("The household catalog as JSON, with the same rules as the pages. Authenticate with "
                            "a personal access token (Your account → Profile → API tokens) in "
                            "`Authorization: Bearer czp_…`, or with the browser session (writes then need the "
                            "`X-CSRFToken` header). Every failure answers `{\"error\": {\"code\", \"message\", "
                            "\"fields\"}}`."),
        },
        "servers": [{"url": "/api/v1"}],
        "paths": paths,
        "components": {
            "schemas": SCHEMAS,
            "responses": {f"Error{status}": {"description": description,
                                             "content": {JSON: {"schema": ref("Error")}}}
                          for status, description in ERROR_CODES.items()},
            "securitySchemes": {
                "bearerToken": {"type": "http", "scheme": "bearer", "bearerFormat": "czp_…",
                                "description": "A personal access token; its scopes limit what it may do."},
                "sessionCookie": {"type": "apiKey", "in": "cookie", "name": cookie_name,
                                  "description": "The browser session; writes also need the X-CSRFToken header."},
            },
        },
        "tags": [{"name": name} for name in dict.fromkeys(op.tag for op in ordered)],
    }
