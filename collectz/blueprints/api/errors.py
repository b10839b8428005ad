"""The API's one error shape: `{"error": {"code", "message", "fields"}}`, for every failure under /api/.

The app-wide handlers (collectz/web/errors.py) ask `is_api_request()` and answer with `error_response` here, so a
404 for an unknown URL, a 405, a CSRF failure, a rate limit or a 500 under /api/ is JSON like the API's own errors.
"""

from __future__ import annotations

from flask import Response, jsonify, request

API_PREFIX = "/api/"
CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid_input",
    429: "rate_limited",
    500: "server_error",
    503: "unavailable",
}


def is_api_request() -> bool:
    return request.path.startswith(API_PREFIX)


def error_response(status: int, message: str, *, code: str | None = None, fields: dict[str, str] | None = None,
                   headers: dict[str, str] | None = None) -> Response:
    """A JSON error with this status; `code` defaults to the status's name."""
    body = {"error": {"code": code or CODES.get(status, "error"), "message": message, "fields": dict(fields or {})}}
    resp = jsonify(body)
    resp.status_code = status
    for key, value in (headers or {}).items():
        resp.headers[key] = value
    if status == 401:
        resp.headers.setdefault("WWW-Authenticate", 'Bearer realm="collectZ API"')
    return resp
