"""Who is calling the API: a personal access token (`Authorization: Bearer czp_…`) or the browser session.

A token is resolved early, before the rate limiter's hook (which keys on the member) and everything that asks who
is calling (the request log, the activity log); a rejected token is answered with a 401 (and an activity event) by
the blueprint's own hook. A session request must carry the CSRF token on writes, as a page's form does; a token
request skips CSRF (no browser sends it on its own). A session has every scope: its role alone limits it, as on
the pages. For a token, its scopes are checked here and its owner's role by the services, as for the pages.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import Flask, Response, g, request
from flask_login import current_user
from werkzeug.exceptions import Unauthorized

from collectz.blueprints.api.errors import error_response
from collectz.extensions import client_ip, csrf, limiter
from collectz.models import ApiToken, User
from collectz.services import audit, tokens
from collectz.services.errors import Forbidden

API_PATH = "/api/v1/"
PUBLIC = "public"  # no account needed
SIGNED_IN = "signed-in"  # any account or token, whatever its scopes
_SAFE = ("GET", "HEAD", "OPTIONS")


@dataclass(frozen=True)
class Caller:
    user: User | None
    via: str | None  # "token" | "session" | None
    scopes: tuple[str, ...]
    token: ApiToken | None = None


def _bearer() -> str | None:
    """The presented token, "" for an Authorization header that is not a bearer token, None for none."""
    header = request.headers.get("Authorization")
    if header is None:
        return None
    scheme, _, value = header.strip().partition(" ")
    return value.strip() if scheme.lower() == "bearer" else ""


def resolve_token() -> None:
    """An early hook of every request: authenticate a bearer token sent to the API and make its owner the request's
    user (Flask-Login's current_user), so every later hook sees them."""
    if not request.path.startswith(API_PATH):
        return
    raw = _bearer()
    if raw is None:
        return
    try:
        result = tokens.authenticate(raw, client_ip())
    except tokens.TokenRejected as exc:
        g.api_token_rejected = exc
        return
    g.api_token_auth = result
    g._login_user = result.user  # Flask-Login reads the request's user from here


def install(app: Flask) -> None:
    """Run `resolve_token` before the rate limiter's hook (which keys on the member), after the request log's."""
    hooks = app.before_request_funcs.setdefault(None, [])
    check = getattr(limiter, "_check_request_limit", None)
    position = next((i for i, hook in enumerate(hooks) if check is not None and hook == check), 0)
    hooks.insert(position, resolve_token)


def authenticate() -> Response | None:
    """The blueprint's hook: a 401 for a rejected token; the CSRF check for a session's writes."""
    rejected: tokens.TokenRejected | None = getattr(g, "api_token_rejected", None)
    if rejected is not None:
        audit.record_failure("api_token.rejected", entity_type="api_token",
                             entity_id=rejected.token.id if rejected.token else None, reason=rejected.reason,
                             http_status=401, actor=None,
                             details={"owner_id": rejected.token.user_id if rejected.token else None})
        return error_response(401, rejected.message, code=f"token_{rejected.reason}")
    found: tokens.TokenAuth | None = getattr(g, "api_token_auth", None)
    if found is not None:
        g.api_caller = Caller(found.user, "token", found.scopes, found.token)
        return None
    if current_user.is_authenticated:
        user = current_user._get_current_object()
        g.api_caller = Caller(user, "session", tuple(tokens.SCOPES))
        if request.method not in _SAFE:
            csrf.protect()  # CSRFError: the app's handler answers 403 (JSON here) and records it
        return None
    g.api_caller = Caller(None, None, ())
    return None


def caller() -> Caller:
    return getattr(g, "api_caller", None) or Caller(None, None, ())


def actor() -> User:
    """The acting user of an operation whose guard (`require`) let only a caller with credentials through."""
    user = caller().user
    assert user is not None
    return user


def require(scope: str) -> User | None:
    """The acting user for an operation needing `scope`: 401 without credentials, 403 without the scope."""
    if scope == PUBLIC:
        return caller().user
    who = caller()
    if who.user is None:
        raise Unauthorized("Sign in, or send a personal access token: Authorization: Bearer czp_…")
    if who.via == "session" and who.user.must_reset:
        raise Forbidden("Choose a new password first (Your account → Password).")
    if scope != SIGNED_IN:
        tokens.require_scope(who.scopes, scope)
    return who.user
