"""The one way to write an activity event. Secrets and tokens are redacted."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any

from sqlalchemy.orm import Session

from collectz.extensions import db
from collectz.models import ActivityLog

log = logging.getLogger("collectz.audit")

_SECRET_KEY = re.compile(r"pass(word)?|secret|token|api[_-]?key|authori[sz]ation|cookie|csrf|credential", re.I)
REDACTED = "[redacted]"

# The web layer registers a function that supplies ip, request id and the actor for the
# current request, so services never read the request themselves.
_context_provider: Callable[[], dict[str, Any]] | None = None


def set_context_provider(provider: Callable[[], dict[str, Any]] | None) -> None:
    global _context_provider
    _context_provider = provider


def redact(value: Any, key: str = "") -> Any:
    """Replace the value of any secret-looking key, recursively."""
    if key and _SECRET_KEY.search(key) and not key.endswith("_changed"):
        return REDACTED if value not in (None, "", False) else value
    if isinstance(value, dict):
        return {k: redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact(v) for v in value]
    return value


def record(
    action: str,
    *,
    actor: Any = None,
    entity_type: str | None = None,
    entity_id: Any = None,
    status: str = "ok",
    reason: str | None = None,
    details: dict[str, Any] | None = None,
    http_status: int | None = None,
    commit: bool = False,
    session: Session | None = None,
) -> ActivityLog:
    """Add an activity event to the session (committed with the caller's change unless commit=True)."""
    context = _context_provider() if _context_provider else {}
    if actor is None:
        actor = context.get("actor")
    details = dict(details or {})
    if status != "ok":  # a failure says where it happened, so the admin can act on it
        for key in ("method", "path"):
            if context.get(key) and key not in details:
                details[key] = context[key]
    entry = ActivityLog(
        actor_id=getattr(actor, "id", None),
        actor_email=getattr(actor, "email", None),
        action=action,
        entity_type=entity_type,
        entity_id=None if entity_id is None else str(entity_id),
        status=status,
        reason=(reason or None) and reason[:255],
        details=redact(details),
        http_status=http_status,
        ip=context.get("ip"),
        request_id=context.get("request_id"),
    )
    target = session or db.session
    target.add(entry)
    if commit:
        target.commit()
    return entry


def record_failure(action: str, **kwargs: Any) -> None:
    """Record a failure in its own transaction: discard the request's pending work first, never raise."""
    try:
        db.session.rollback()
        record(action, status=kwargs.pop("status", "failed"), commit=True, **kwargs)
    except Exception:  # the log must not turn one failure into two
        db.session.rollback()
        log.exception("could not record activity event %s", action)
