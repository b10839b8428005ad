"""App-wide error pages and fragments; domain errors map to 403/404/422; denials are audited."""

from __future__ import annotations

import logging

from flask import Flask, Response, g, request
from flask_limiter.errors import RateLimitExceeded
from flask_wtf.csrf import CSRFError
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from werkzeug.exceptions import HTTPException

from collectz.extensions import db, login_manager
from collectz.services import audit
from collectz.services.errors import DomainError, Forbidden
from collectz.services.storage import ObjectMissing, StorageError
from collectz.web import htmx, limits, metrics, requestlog

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


def error_response(status: int, message: str, *, headers: dict[str, str] | None = None,
                   fields: dict[str, str] | None = None, code: str | None = None) -> Response:
    """The error page (or its fragment); under /api/ the API's JSON error (`code` and `fields` go there only)."""
    from collectz.blueprints.api import errors as api_errors

    if api_errors.is_api_request():
        return api_errors.error_response(status, message, code=code, fields=fields, headers=headers)
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
        return error_response(403, message, headers={"X-CSRF-Error": "expired" if expired else "invalid"},
                              code="csrf_expired" if expired else "csrf_missing")

    @app.errorhandler(Forbidden)
    def _forbidden(exc: Forbidden) -> Response:
        audit.record_failure("permission.denied", reason=exc.message, http_status=403,
                             details={"method": request.method, "path": request.path, "endpoint": request.endpoint})
        return error_response(403, exc.message or "You are not allowed to do that.")

    @app.errorhandler(DomainError)
    def _domain(exc: DomainError) -> Response:
        db.session.rollback()
        return error_response(exc.status, exc.message, fields=exc.fields)

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
        kind = limits.request_class() or "other"
        metrics.RATE_LIMITED.labels(kind).inc()
        if limits.should_audit(kind):  # one event per client and class a minute, not one per refused request
            audit.record_failure("security.rate_limited", reason=str(exc.description), http_status=429,
                                 details={"method": request.method, "path": request.path, "limit_class": kind})
        retry = limits.retry_after_seconds()
        headers = {"Retry-After": str(retry)} if retry else {}
        return error_response(429, "Too many attempts. Wait a moment and try again.", headers=headers)

    @app.errorhandler(OperationalError)
    @app.errorhandler(InterfaceError)
    def _database_unavailable(exc: DBAPIError) -> Response:
        """The database went away (restart, network): a 503 that says so, one log line, no traceback anywhere."""
        g.database_unavailable = True
        try:
            db.session.rollback()
        except Exception:
            pass
        g._login_user = login_manager.anonymous_user()  # the error page must not ask the database who this is
        error, first_line = requestlog.db_error_summary(exc, 200)
        log.warning("database unavailable", extra={"fields": {"path": request.path, "error": error,
                                                              "detail": first_line}})
        return error_response(503, "The database is not reachable right now. Try again in a moment.",
                              headers={"Retry-After": "5"})

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
