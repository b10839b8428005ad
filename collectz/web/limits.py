"""Rate limits per endpoint class: auth, writes, imports, external lookups and everything else.

One shared Flask-Limiter default limit covers every endpoint: its limit and its bucket depend on the class of the
request, so all write endpoints of a member share one budget, all lookups another, and so on. Counters live in
Redis when REDIS_URL is set (shared by every worker process), in process memory otherwise. The key is the signed-in
member, else the client address as ProxyFix left it (a forged X-Forwarded-For counts only behind a trusted proxy).
Sign-in and password change keep their own per-address and per-account limits as well (blueprints/auth/views.py).
"""

from __future__ import annotations

import threading
import time

from flask import Flask, current_app, has_request_context, request
from flask_limiter import Limit
from flask_login import current_user

from collectz.config import RATE_LIMIT_OFF as OFF
from collectz.config import current_settings
from collectz.extensions import client_ip, limiter

CLASSES = ("auth", "writes", "imports", "lookups", "default")
SETTINGS = {"auth": "RATELIMIT_AUTH", "writes": "RATELIMIT_WRITES", "imports": "RATELIMIT_IMPORTS",
            "lookups": "RATELIMIT_LOOKUPS", "default": "RATELIMIT_DEFAULT"}
# Never limited: files, the health check a proxy or orchestrator polls, the metrics scrape (token-protected).
EXEMPT = frozenset({"static", "core.healthz", "api.health", "metrics"})
# Credential handling: every method of the reset link (a GET checks a token), the others when they post.
AUTH = frozenset({"auth.login", "auth.register", "auth.reset", "auth.password"})
# Endpoints that call a provider's API (our keys, their quotas) whatever the method.
LOOKUPS = frozenset({"library.lookup", "library.lookup_photo", "library.lookup_apply", "library.review_search",
                     "integrations.card_test", "integrations.plex_sections"})
_WRITING = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def endpoint_class(endpoint: str | None, method: str) -> str | None:
    """The class of a request (None: not limited)."""
    if not endpoint or endpoint in EXEMPT:
        return None
    writing = method.upper() in _WRITING
    if endpoint in LOOKUPS:
        return "lookups"
    if endpoint in AUTH and (writing or endpoint == "auth.reset"):
        return "auth"
    if writing and endpoint.startswith(("imports.", "api.import")):  # the Import area and the API's imports
        return "imports"
    return "writes" if writing else "default"


def request_class() -> str | None:
    return endpoint_class(request.endpoint, request.method) if has_request_context() else None


def rate_key() -> str:
    """The signed-in member, else the client address."""
    try:
        if current_user.is_authenticated:
            return f"member:{current_user.id}"
    except Exception:  # the database is down: the request fails on its own; Flask-Limiter must not see this
        from collectz.extensions import db

        try:
            db.session.rollback()
        except Exception:
            pass
    return "addr:" + client_ip()


def _limit_for_request() -> str:
    kind = request_class()
    if kind is None:
        return ""
    value = getattr(current_settings(), SETTINGS[kind])
    return "" if value.strip().lower() == OFF else value


def _scope(_endpoint: str) -> str:
    return "class:" + (request_class() or "none")


def _exempt() -> bool:
    return request_class() is None


CLASS_LIMIT = Limit(_limit_for_request, key_function=rate_key, scope=_scope, shared=True, exempt_when=_exempt)


def init_app(app: Flask) -> None:
    """Install the class limit as the limiter's default (after limiter.init_app, which resets nothing it keeps)."""
    limiter.limit_manager.set_default_limits([CLASS_LIMIT.bind(limiter)])
    # The limiter is one object per process: an app built after one whose Redis was unreachable starts on its own
    # storage, not on the in-memory stand-in the earlier one fell back to.
    limiter._storage_dead = False
    app.extensions["collectz_limit_audits"] = ({}, threading.Lock())


# --- the activity log of refusals ------------------------------------------------------------------------------
# A flood of refused requests must not become a flood of activity rows: one event per key and class a minute.
_AUDIT_EVERY = 60.0


def should_audit(kind: str) -> bool:
    """True the first time this key hits this class's limit in a minute (per process)."""
    audited, lock = current_app.extensions["collectz_limit_audits"]
    key = (rate_key(), kind)
    now = time.monotonic()
    with lock:
        if len(audited) > 10_000:
            for stale in [k for k, at in audited.items() if now - at > _AUDIT_EVERY]:
                del audited[stale]
        last = audited.get(key)
        if last is not None and now - last < _AUDIT_EVERY:
            return False
        audited[key] = now
        return True


def retry_after_seconds() -> int | None:
    """Seconds until the breached limit's window resets (for Retry-After), if the limiter knows it."""
    try:
        current = limiter.current_limit
        if current is None:
            return None
        return max(1, int(current.reset_at - time.time()))
    except Exception:
        return None
