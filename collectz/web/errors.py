"""App-wide error pages and fragments; domain errors map to 403/404/422; denials are audited."""

from __future__ import annotations

import logging

from flask import Flask, Response, request
from flask_limiter.errors import RateLimitExceeded
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from collectz.extensions import db
from collectz.services import audit
from collectz.services.errors import DomainError, Forbidden
from collectz.services.storage import ObjectMissing, StorageError
from collectz.web import htmx

log = logging.getLogger("collectz.errors")

TITLES = {
    400: "Bad request",
    403: "Not allowed",
    404: "Not found",
    405: "Method not allowed",
    413: "Too large",
    422: "Please check your input",
    429: "Too many requests",
    500: "Something went wrong",
    503: "Unavailable",
}


def error_response(status: int, message: str, *, headers: dict[str, str] | None = None) -> Response:
    resp = htmx.render("errors/error.html", block="error", status=status, code=status,
                       title=TITLES.get(status, "Error"), message=message)
    for key, value in (headers or {}).items():
        resp.headers[key] = value
    return resp


def init_app(app: Flask) -> None:
    @app.errorhandler(CSRFError)
    def _csrf(exc: CSRFError) -> Response:
        expired = "expired" in (exc.description or "").lower()
        audit.record_failure("security.csrf_failed", reason=exc.description, http_status=403,
                             details={"method": request.method, "path": request.path})
        message = ("This page was open too long and its security token expired. Reload the page and try again."
                   if expired else "This request was missing its security token (CSRF). Reload the page and try again.")
        return error_response(403, message, headers={"X-CSRF-Error": "expired" if expired else "invalid"})

    @app.errorhandler(Forbidden)
    def _forbidden(exc: Forbidden) -> Response:
        audit.record_failure("permission.denied", reason=exc.message, http_status=403,
                             details={"method": request.method, "path": request.path, "endpoint": request.endpoint})
        return error_response(403, exc.message or "You are not allowed to do that.")

    @app.errorhandler(DomainError)
    def _domain(exc: DomainError) -> Response:
        db.session.rollback()
        return error_response(exc.status, exc.message)

    @app.errorhandler(StorageError)
    def _storage(exc: StorageError) -> Response:
        """The file store failed (S3 down, disk full): say so; a missing object is a 404."""
        db.session.rollback()
        if isinstance(exc, ObjectMissing):
            return error_response(404, "That file is not in the file store.")
        log.warning("file store failed", extra={"fields": {"path": request.path, "error": exc.message}})
        return error_response(503, exc.message)

    @app.errorhandler(RateLimitExceeded)
    def _rate_limited(exc: RateLimitExceeded) -> Response:
        audit.record_failure("security.rate_limited", reason=str(exc.description), http_status=429,
                             details={"method": request.method, "path": request.path})
        retry = exc.retry_after if hasattr(exc, "retry_after") else None
        headers = {"Retry-After": str(int(retry))} if retry else {}
        return error_response(429, "Too many attempts. Wait a moment and try again.", headers=headers)

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> Response:
        status = exc.code or 500
        if status == 403:
            audit.record_failure("permission.denied", reason=exc.description, http_status=403,
                                 details={"method": request.method, "path": request.path})
        message = exc.description or TITLES.get(status, "Error")
        if status == 413:  # MAX_CONTENT_LENGTH: say the limit a person can act on
            limit = app.config["COLLECTZ"].IMPORT_MAX_MB
            message = (f"The upload is too large: files up to {limit} MB can be imported. "
                       "Split it into smaller files and import each.")
        resp = error_response(status, message)
        if status == 405 and getattr(exc, "valid_methods", None):
            resp.headers["Allow"] = ", ".join(exc.valid_methods)
        return resp

    @app.errorhandler(Exception)
    def _unhandled(exc: Exception) -> Response:
        db.session.rollback()
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(500, "Something went wrong on our side. It has been logged.")
