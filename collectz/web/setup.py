"""Per-request glue: template globals, security headers, htmx finishing, request-outcome audit."""

from __future__ import annotations

import logging

from flask import Flask, Response, g, request
from flask_login import current_user
from flask_wtf.csrf import generate_csrf
from sqlalchemy.exc import OperationalError

from collectz.models.media_types import LIBRARY_SECTIONS, MEDIA_TYPES
from collectz.version import __version__, short_sha
from collectz.web import htmx

log = logging.getLogger("collectz.web")

# img-src allows https images: the item form's lookup shows candidates' covers from the providers' image hosts
# (TMDB, Open Library, Cover Art Archive, IGDB, Google Books, comic databases, shops behind barcode lookups).
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob: https:; "
    "font-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'self'; object-src 'none'"
)
_MUTATING = ("POST", "PUT", "PATCH", "DELETE")


def init_app(app: Flask) -> None:
    @app.context_processor
    def _globals() -> dict:
        return {
            "app_version": __version__,
            "git_sha": short_sha(),
            "library_sections": LIBRARY_SECTIONS,
            "media_types": MEDIA_TYPES,
            "csrf_token_value": generate_csrf,
            "csrf_refresh_seconds": _csrf_refresh_seconds(app),
        }

    @app.after_request
    def _finish(resp: Response) -> Response:
        resp = htmx.finish_response(resp)
        headers = resp.headers
        headers.setdefault("Content-Security-Policy", CSP)
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("Referrer-Policy", "same-origin")
        headers.setdefault("X-Frame-Options", "DENY")
        if request.is_secure:
            headers.setdefault("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
        # Pages are never stored; an answer its view marked private (an image served after the sign-in check,
        # named by its content) keeps the view's own caching.
        if not request.path.startswith("/static/") and "private" not in headers.get("Cache-Control", ""):
            headers["Cache-Control"] = "no-store"
        _audit_request(app, resp)
        return resp

    with app.app_context():
        _check_schema(app)


def _csrf_refresh_seconds(app: Flask) -> int:
    limit = app.config.get("WTF_CSRF_TIME_LIMIT")
    return max(1, int(limit) // 2) if limit else 0


def _audit_request(app: Flask, resp: Response) -> None:
    """AUDIT_LOG_MODE adds one request-outcome event on top of the explicit domain events."""
    mode = app.config["COLLECTZ"].AUDIT_LOG_MODE
    if mode == "off" or request.path.startswith("/static/") or request.endpoint == "core.healthz":
        return
    if getattr(g, "database_unavailable", False):  # nowhere to write it; the outage is logged once already
        return
    failed = resp.status_code >= 400
    wanted = (
        (mode == "failures" and failed)
        or (mode == "mutations" and (failed or request.method in _MUTATING))
        or mode == "all"
    )
    if not wanted:
        return
    from collectz.services import audit

    details = {"method": request.method, "path": request.path, "status": resp.status_code}
    if failed:
        details["error"] = resp.headers.get("X-Error-Summary") or resp.status
    try:
        from collectz.extensions import db

        actor = current_user._get_current_object() if current_user.is_authenticated else None
        audit.record("http.request", actor=actor, status="failed" if failed else "ok",
                     http_status=resp.status_code, details=details, commit=True)
    except Exception:
        log.warning("could not record request outcome for %s %s", request.method, request.path, exc_info=True)
        try:
            from collectz.extensions import db

            db.session.rollback()
        except Exception:
            pass


def _check_schema(app: Flask) -> None:
    """Refuse to start on a database whose schema is newer than the code; skip if it is unreachable."""
    from collectz.extensions import db
    from collectz.schema import check_not_newer

    try:
        check_not_newer(db.engine)
    except OperationalError:
        log.warning("database unreachable at start-up; /healthz will report it")
