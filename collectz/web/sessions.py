"""Binds server-side session rows to requests: the cookie, Flask-Login, the audit context."""

from __future__ import annotations

from typing import Any

from flask import Flask, Response, current_app, g, request, url_for
from flask_login import AnonymousUserMixin, current_user

from collectz.extensions import client_ip, login_manager
from collectz.models import User, UserSession
from collectz.services import audit
from collectz.services import sessions as session_service
from collectz.web import htmx
from collectz.web.requestlog import request_id


class Anonymous(AnonymousUserMixin):
    id = None
    role = None
    email = None
    name = "Guest"
    is_admin = False
    can_write = False


def cookie_name() -> str:
    return current_app.config["COLLECTZ"].SESSION_COOKIE_NAME


@login_manager.request_loader
def _load_from_cookie(_request: Any) -> User | None:
    row = session_service.load_session(request.cookies.get(cookie_name()))
    if row is None:
        return None
    g.user_session = row
    return row.user  # loaded with the session row


@login_manager.unauthorized_handler
def _unauthorized() -> Response:
    return htmx.redirect(url_for("auth.login", next=request.full_path if request.method == "GET" else None))


def start_session(user: User, remember: bool) -> str:
    """Create the session row; the cookie is set on the response by `attach_cookie`."""
    token, row = session_service.create_session(
        user, remember=remember, ip=client_ip(), user_agent=request.headers.get("User-Agent")
    )
    g.new_session_cookie = (token, row)
    return token


def current_session_id() -> int | None:
    """The id of this request's session row, if the cookie carried a live one."""
    row: UserSession | None = getattr(g, "user_session", None)
    return row.id if row is not None else None


def forget_cookie() -> None:
    """Drop the session cookie on the way out (the row is already gone)."""
    g.clear_session_cookie = True


def end_session() -> None:
    row: UserSession | None = getattr(g, "user_session", None)
    if row is not None:
        session_service.revoke_session(row)
    forget_cookie()


def _attach_cookie(resp: Response) -> Response:
    settings = current_app.config["COLLECTZ"]
    pending = getattr(g, "new_session_cookie", None)
    if pending:
        token, row = pending
        resp.set_cookie(
            cookie_name(), token, httponly=True, secure=settings.SESSION_COOKIE_SECURE,
            samesite=settings.SESSION_COOKIE_SAMESITE, path="/",
            expires=row.expires_at if row.remember else None,
        )
    elif getattr(g, "clear_session_cookie", False):
        resp.delete_cookie(cookie_name(), path="/", httponly=True, secure=settings.SESSION_COOKIE_SECURE,
                           samesite=settings.SESSION_COOKIE_SAMESITE)
    return resp


def _audit_context() -> dict[str, Any]:
    from flask import has_request_context

    if not has_request_context():
        return {}
    try:
        actor = current_user._get_current_object() if current_user.is_authenticated else None
    except Exception:  # the database may be the reason we are logging
        actor = None
    return {"ip": client_ip(), "request_id": request_id(), "actor": actor,
            "method": request.method, "path": request.path}


def init_app(app: Flask) -> None:
    login_manager.init_app(app)
    login_manager.anonymous_user = Anonymous
    login_manager.session_protection = None
    app.after_request(_attach_cookie)
    audit.set_context_provider(_audit_context)
