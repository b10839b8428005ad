"""Personal access tokens: created by a member with a name, scopes and an expiry; shown once, stored hashed,
revocable; each use recorded (throttled, like a session's last-seen).

A token never grants more than its owner's current role: the API acts as the owner, so every service applies the
owner's role as it does for the pages, and `effective_scopes` drops what the role no longer allows. A token stops
working when it is revoked, when it expires, when its owner is deleted (the row goes with them) and while the owner
is locked out of the pages (an admin made them choose a new password).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, or_, select

from collectz.extensions import db
from collectz.models import ApiToken, User
from collectz.models.base import utcnow
from collectz.security.tokens import hash_token, new_token
from collectz.services import audit
from collectz.services.errors import Conflict, Forbidden, InvalidInput, NotFound

PREFIX = "czp_"
# What each scope lets a token do (the services still apply the owner's role).
SCOPES: dict[str, str] = {
    "media:read": "Read the library: list, search and get items, and your own rating and status.",
    "media:write": "Add, change and delete items (yours, or any as an admin), and set your rating and status.",
    "import:run": "Start imports (CSV, Delicious Library, Plex) and read their progress and rows.",
    "admin": "Admin only: members, invitations, the activity log and feature flags.",
}
# The scopes a role can use: a token asking for more is refused at creation, and loses them if the role changes.
ROLE_SCOPES: dict[str, tuple[str, ...]] = {
    "admin": tuple(SCOPES),
    "user": ("media:read", "media:write", "import:run"),
    "viewer": ("media:read",),
}
EXPIRY_DAYS = (7, 30, 90, 365)
DEFAULT_EXPIRY_DAYS = 90
MAX_EXPIRY_DAYS = 365
MAX_ACTIVE_PER_USER = 25
NAME_MAX = 100
TOUCH_EVERY = timedelta(seconds=60)
_SHAPE = re.compile(r"^czp_[A-Za-z0-9_-]{40,60}$")


@dataclass(frozen=True)
class TokenAuth:
    """A request authenticated by a token: the owner acts, within these scopes."""

    user: User
    token: ApiToken
    scopes: tuple[str, ...]


class TokenRejected(Exception):
    """A token that does not authenticate; `reason` is a stable code, `message` says what to do."""

    def __init__(self, reason: str, message: str, token: ApiToken | None = None):
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.token = token


def new_raw_token() -> str:
    """A recognisable, high-entropy token: "czp_" and 256 random bits."""
    return PREFIX + new_token(32)


def allowed_scopes(role: str) -> tuple[str, ...]:
    return ROLE_SCOPES.get(role, ())


def effective_scopes(token: ApiToken, user: User) -> tuple[str, ...]:
    """The token's scopes that its owner's current role still allows, in the order of SCOPES."""
    allowed = allowed_scopes(user.role)
    return tuple(s for s in SCOPES if s in token.scopes and s in allowed)


def create_token(actor: User, name: str, scopes: list[str], expires_in_days: int | None
                 ) -> tuple[ApiToken, str]:
    """Create a token for the actor; returns the row and the raw token (shown once, never stored)."""
    errors: dict[str, str] = {}
    name = " ".join((name or "").split())
    if not name:
        errors["name"] = "Give the token a name (what uses it, e.g. \"home automation\")."
    elif len(name) > NAME_MAX:
        errors["name"] = f"Use at most {NAME_MAX} characters."
    wanted = list(dict.fromkeys(scopes or []))
    allowed = allowed_scopes(actor.role)
    if not wanted:
        errors["scopes"] = "Choose at least one scope."
    elif any(s not in SCOPES for s in wanted):
        errors["scopes"] = "Choose scopes from the list."
    elif any(s not in allowed for s in wanted):
        errors["scopes"] = f"Your role ({actor.role}) cannot use: {', '.join(s for s in wanted if s not in allowed)}."
    if expires_in_days is None or not 1 <= expires_in_days <= MAX_EXPIRY_DAYS:
        errors["expires_in_days"] = f"Choose an expiry between 1 and {MAX_EXPIRY_DAYS} days."
    if errors:
        raise InvalidInput("Please fix the marked fields.", fields=errors)
    if count_active(actor) >= MAX_ACTIVE_PER_USER:
        raise Conflict(f"You have {MAX_ACTIVE_PER_USER} active tokens: revoke one you no longer use first.")
    raw = new_raw_token()
    now = utcnow()
    row = ApiToken(user_id=actor.id, name=name, token_hash=hash_token(raw), hint=raw[-4:],
                   scopes=[s for s in SCOPES if s in wanted], created_at=now,
                   expires_at=now + timedelta(days=expires_in_days))
    db.session.add(row)
    db.session.flush()
    audit.record("api_token.created", actor=actor, entity_type="api_token", entity_id=row.id,
                 details={"name": row.name, "scopes": row.scopes, "expires_at": row.expires_at.isoformat()})
    db.session.commit()
    return row, raw


def count_active(actor: User) -> int:
    return db.session.scalar(select(func.count(ApiToken.id)).where(
        ApiToken.user_id == actor.id, ApiToken.revoked_at.is_(None), ApiToken.expires_at > utcnow())) or 0


def list_tokens(actor: User) -> list[ApiToken]:
    """The actor's own tokens, newest first (revoked and expired ones too, until they are a month old)."""
    since = utcnow() - timedelta(days=30)
    return list(db.session.scalars(
        select(ApiToken).where(ApiToken.user_id == actor.id, ApiToken.expires_at > since)
        .where(or_(ApiToken.revoked_at.is_(None), ApiToken.revoked_at > since))
        .order_by(ApiToken.created_at.desc(), ApiToken.id.desc())))


def revoke_token(actor: User, token_id: int) -> ApiToken:
    """Revoke one of the actor's tokens (an admin may revoke anyone's); it stops working at once."""
    row = db.session.get(ApiToken, token_id)
    if row is None or (row.user_id != actor.id and actor.role != "admin"):
        raise NotFound("No such token.")
    if row.revoked_at is not None:
        raise Conflict("This token was already revoked.")
    row.revoked_at = utcnow()
    audit.record("api_token.revoked", actor=actor, entity_type="api_token", entity_id=row.id,
                 details={"name": row.name, "owner_id": row.user_id, "scopes": row.scopes})
    db.session.commit()
    return row


def authenticate(raw: str, ip: str | None) -> TokenAuth:
    """The owner and effective scopes for a presented token, or TokenRejected. Records the use (at most once a
    minute per token, so a busy script does not write on every call)."""
    if not _SHAPE.match(raw or ""):
        raise TokenRejected("malformed", "This is not a collectZ access token (they start with czp_).")
    digest = hash_token(raw)
    row = db.session.scalar(select(ApiToken).where(ApiToken.token_hash == digest))
    if row is None:
        raise TokenRejected("unknown", "This access token is not valid.")
    now = utcnow()
    if row.revoked_at is not None:
        raise TokenRejected("revoked", "This access token was revoked.", row)
    if row.expires_at <= now:
        raise TokenRejected("expired", "This access token has expired: create a new one in your profile.", row)
    user = db.session.get(User, row.user_id)
    if user is None:
        raise TokenRejected("unknown", "This access token is not valid.", row)
    if user.must_reset:
        raise TokenRejected("account_locked", "The token's account must choose a new password before its tokens "
                                              "work again.", row)
    _touch(row, now, ip)
    return TokenAuth(user, row, effective_scopes(row, user))


def _touch(row: ApiToken, now: datetime, ip: str | None) -> None:
    if row.last_used_at is None or now - row.last_used_at >= TOUCH_EVERY:
        row.last_used_at = now
        row.last_used_ip = (ip or "")[:64] or None
        db.session.commit()


def require_scope(scopes: tuple[str, ...], needed: str) -> None:
    """Forbidden unless `needed` is among the request's scopes."""
    if needed not in scopes:
        raise Forbidden(f"This access token does not have the {needed} scope (or its owner's role no longer "
                        "allows it).")
