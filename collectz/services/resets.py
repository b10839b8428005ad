"""Password reset links made by an admin (or `flask users reset-password`) and the must-reset flag.

A link is a random token shown once; only its SHA-256 is stored in `password_resets`. It works once, for
RESET_TTL_HOURS, unless an admin invalidates it or makes a newer one. Using it sets the password, clears
must_reset and signs the account out everywhere. The token never goes into activity details: events name the
row (`reset_id`) instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NoReturn

from sqlalchemy import func, select, update

from collectz.extensions import db
from collectz.models import PasswordReset, User
from collectz.models.base import utcnow
from collectz.security.passwords import hash_password
from collectz.security.permissions import require_admin
from collectz.security.tokens import hash_token, new_token
from collectz.services import audit
from collectz.services import sessions as session_service
from collectz.services.errors import DomainError, NotFound
from collectz.services.users import check_password_strength

# How long a reset link works. A module constant, not a setting: a day covers "send it, they open it tonight"
# without leaving a live credential around for long. docs/operations.md states it.
RESET_TTL_HOURS = 24
TOKEN_MAX_LENGTH = 128

FAILURES = {
    "unknown": (404, "This password reset link is not valid. Check that the whole link was copied, "
                     "or ask your admin for a new one."),
    "used": (410, "This password reset link has already been used. If you still need a new password, "
                  "ask your admin for a new link."),
    "invalidated": (410, "This password reset link was cancelled by an admin. Ask your admin for a new one."),
    "expired": (410, "This password reset link has expired. Ask your admin for a new one."),
}


class ResetLinkInvalid(DomainError):
    """The link cannot be used; `reason` is one of FAILURES (and is what the activity log records)."""

    def __init__(self, reason: str):
        status, message = FAILURES[reason]
        super().__init__(message)
        self.reason = reason
        self.status = status


@dataclass
class CredentialStatus:
    """What the admin sees about a member's password: the must-reset flag and live links."""

    must_reset: bool
    outstanding: int
    latest_expiry: datetime | None


def get_member(actor: User | None, member_id: int) -> User:
    """The account an admin (or the command line, actor None) acts on; NotFound if it is gone."""
    if actor is not None:
        require_admin(actor, "manage a member's password")
    user = db.session.get(User, member_id)
    if user is None:
        raise NotFound("No such member.")
    return user


def status_for(member: User) -> CredentialStatus:
    now = utcnow()
    count, latest = db.session.execute(
        select(func.count(PasswordReset.id), func.max(PasswordReset.expires_at)).where(*_live(member.id, now))
    ).one()
    if isinstance(latest, str):  # SQLite loses the column type under max()
        latest = datetime.fromisoformat(latest)
    return CredentialStatus(bool(member.must_reset), count or 0, latest)


def _live(user_id: int, now: datetime) -> tuple:
    return (PasswordReset.user_id == user_id, PasswordReset.used_at.is_(None), PasswordReset.revoked_at.is_(None),
            PasswordReset.expires_at > now)


def _revoke_live(user_id: int, now: datetime, *, except_id: int | None = None) -> int:
    stmt = update(PasswordReset).where(*_live(user_id, now)).values(revoked_at=now)
    if except_id is not None:
        stmt = stmt.where(PasswordReset.id != except_id)
    return db.session.execute(stmt.execution_options(synchronize_session=False)).rowcount or 0


def create_link(actor: User | None, member: User, *, via: str = "web") -> tuple[PasswordReset, str]:
    """A new one-time link for `member` (older live ones stop working); the raw token is returned once."""
    if actor is not None:
        require_admin(actor, "create a password reset link")
    now = utcnow()
    replaced = _revoke_live(member.id, now)
    token = new_token()
    row = PasswordReset(user_id=member.id, token_hash=hash_token(token), created_at=now,
                        expires_at=now + timedelta(hours=RESET_TTL_HOURS), created_by=actor.id if actor else None)
    db.session.add(row)
    db.session.flush()
    audit.record("password_reset.started", actor=actor, entity_type="user", entity_id=member.id,
                 details={"email": member.email, "reset_id": row.id, "expires_at": row.expires_at.isoformat(),
                          "replaced": replaced, "via": via})
    db.session.commit()
    return row, token


def mark_delivered(actor: User, member: User, reset_id: int, how: str) -> None:
    """Record that the admin copied or sent the link (audited password_reset.delivered)."""
    require_admin(actor, "deliver a password reset link")
    row = db.session.get(PasswordReset, reset_id)
    if row is None or row.user_id != member.id:
        raise NotFound("No such reset link.")
    audit.record("password_reset.delivered", actor=actor, entity_type="user", entity_id=member.id,
                 details={"email": member.email, "reset_id": row.id, "how": how})
    db.session.commit()


def invalidate_links(actor: User | None, member: User, *, via: str = "web") -> int:
    """Cancel every live link of a member (audited password_reset.invalidated); returns how many."""
    if actor is not None:
        require_admin(actor, "invalidate password reset links")
    count = _revoke_live(member.id, utcnow())
    audit.record("password_reset.invalidated", actor=actor, entity_type="user", entity_id=member.id,
                 details={"email": member.email, "count": count, "via": via})
    db.session.commit()
    return count


def require_new_password(actor: User | None, member: User, required: bool, *, via: str = "web") -> None:
    """Set or clear must_reset: while set, the member can only choose a new password after signing in."""
    if actor is not None:
        require_admin(actor, "require a new password")
    if member.must_reset == required:
        return
    member.must_reset = required
    audit.record("user.must_reset_changed", actor=actor, entity_type="user", entity_id=member.id,
                 details={"email": member.email, "must_reset": required, "via": via})
    db.session.commit()


def open_link(token: str | None) -> User:
    """The account a link resets, or ResetLinkInvalid (audited password_reset.failed with the reason)."""
    return db.session.get(User, _usable(token).user_id)


def complete(token: str | None, new_password: str) -> User:
    """Use a link: set the password, clear must_reset, sign the account out everywhere; works once."""
    row = _usable(token)
    check_password_strength(new_password, field="new_password")
    user = db.session.get(User, row.user_id)
    now = utcnow()
    # The claim is one conditional UPDATE, so two submissions racing with the same link cannot both win.
    claimed = db.session.execute(
        update(PasswordReset).where(PasswordReset.id == row.id, *_live(row.user_id, now)).values(used_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount
    if claimed != 1:
        _fail(row, "used")
    user.password_hash = hash_password(new_password)
    user.must_reset = False
    others = _revoke_live(user.id, now, except_id=row.id)
    revoked = session_service.revoke_user_sessions(user.id)
    audit.record("password_reset.succeeded", actor=user, entity_type="user", entity_id=user.id,
                 details={"email": user.email, "reset_id": row.id, "sessions_revoked": revoked,
                          "other_links_invalidated": others})
    db.session.commit()
    return user


def _usable(token: str | None) -> PasswordReset:
    token = (token or "").strip()
    row = None
    if token and len(token) <= TOKEN_MAX_LENGTH:
        row = db.session.scalar(select(PasswordReset).where(PasswordReset.token_hash == hash_token(token)))
    if row is None:
        _fail(None, "unknown")
    if row.used_at is not None:
        _fail(row, "used")
    if row.revoked_at is not None:
        _fail(row, "invalidated")
    if row.expires_at <= utcnow():
        _fail(row, "expired")
    return row


def _fail(row: PasswordReset | None, reason: str) -> NoReturn:
    audit.record_failure("password_reset.failed", entity_type="user", entity_id=row.user_id if row else None,
                         reason=reason, details={"reset_id": row.id if row else None})
    raise ResetLinkInvalid(reason)
