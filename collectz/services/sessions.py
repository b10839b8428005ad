"""Server-side login sessions: create, load (idle and absolute expiry), revoke, prune."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import bindparam, delete, select
from sqlalchemy.orm import joinedload

from collectz.config import current_settings
from collectz.extensions import db
from collectz.models import User, UserSession
from collectz.models.base import utcnow
from collectz.security.tokens import hash_token, new_token

TOUCH_EVERY = timedelta(seconds=60)
# Every signed-in request runs this: the session row with its member in one statement (one round trip, not two),
# built once (building it and its key for the compiled SQL cost more than running it).
_BY_TOKEN = (select(UserSession).options(joinedload(UserSession.user))
             .where(UserSession.token_hash == bindparam("token_hash")))


@dataclass
class SessionPolicy:
    idle: timedelta
    absolute: timedelta
    remember: timedelta
    max_per_user: int

    @classmethod
    def current(cls) -> SessionPolicy:
        s = current_settings()
        return cls(
            idle=timedelta(minutes=s.SESSION_IDLE_MINUTES),
            absolute=timedelta(hours=s.SESSION_ABSOLUTE_HOURS),
            remember=timedelta(days=s.SESSION_REMEMBER_DAYS),
            max_per_user=s.SESSION_MAX_PER_USER,
        )


def create_session(user: User, *, remember: bool, ip: str | None, user_agent: str | None) -> tuple[str, UserSession]:
    """Start a session; returns the raw token for the cookie. Prunes the user's oldest beyond the cap."""
    policy = SessionPolicy.current()
    now = utcnow()
    token = new_token()
    row = UserSession(
        token_hash=hash_token(token),
        user_id=user.id,
        created_at=now,
        last_seen_at=now,
        expires_at=now + (policy.remember if remember else policy.absolute),
        remember=remember,
        ip=ip,
        user_agent=(user_agent or "")[:255] or None,
    )
    db.session.add(row)
    db.session.flush()
    keep = db.session.scalars(
        select(UserSession.id)
        .where(UserSession.user_id == user.id)
        .order_by(UserSession.created_at.desc(), UserSession.id.desc())
        .limit(policy.max_per_user)
    ).all()
    db.session.execute(
        delete(UserSession).where(UserSession.user_id == user.id, UserSession.id.not_in(keep))
    )
    return token, row


def is_expired(row: UserSession, now: datetime, policy: SessionPolicy) -> bool:
    if row.expires_at <= now:
        return True
    return not row.remember and row.last_seen_at + policy.idle <= now


def load_session(token: str | None) -> UserSession | None:
    """The live session for a cookie token, or None; an expired row is deleted on sight."""
    if not token or len(token) > 128:
        return None
    row = db.session.scalar(_BY_TOKEN, {"token_hash": hash_token(token)})
    if row is None:
        return None
    now = utcnow()
    if is_expired(row, now, SessionPolicy.current()):
        db.session.delete(row)
        db.session.commit()
        return None
    if now - row.last_seen_at >= TOUCH_EVERY:
        row.last_seen_at = now
        db.session.commit()
    return row


def revoke_session(row: UserSession) -> None:
    db.session.delete(row)


def revoke_user_sessions(user_id: int, *, keep_id: int | None = None) -> int:
    """Delete every session of a user (but the one kept); returns how many went."""
    stmt = delete(UserSession).where(UserSession.user_id == user_id)
    if keep_id is not None:
        stmt = stmt.where(UserSession.id != keep_id)
    return db.session.execute(stmt).rowcount or 0


def cleanup_expired(now: datetime | None = None) -> int:
    """Delete every expired session (absolute or idle); returns the count. Run by a maintenance job."""
    policy = SessionPolicy.current()
    now = now or utcnow()
    absolute = db.session.execute(delete(UserSession).where(UserSession.expires_at <= now)).rowcount or 0
    idle = db.session.execute(
        delete(UserSession).where(
            UserSession.remember.is_(False), UserSession.last_seen_at <= now - policy.idle
        )
    ).rowcount or 0
    db.session.commit()
    return absolute + idle


def list_user_sessions(user_id: int) -> list[UserSession]:
    """A user's live sessions, most recently seen first."""
    return list(db.session.scalars(
        select(UserSession).where(UserSession.user_id == user_id, UserSession.expires_at > utcnow())
        .order_by(UserSession.last_seen_at.desc(), UserSession.id.desc())
    ))


def revoke_session_by_id(actor: User, session_id: int) -> UserSession:
    """Revoke one session: your own, or anyone's if you are an admin (audited as session.revoked)."""
    from collectz.services import audit
    from collectz.services.errors import Forbidden, NotFound

    row = db.session.get(UserSession, session_id)
    if row is None:
        raise NotFound("No such session.")
    if row.user_id != actor.id and actor.role != "admin":
        raise Forbidden("You can only sign out your own sessions.")
    audit.record("session.revoked", actor=actor, entity_type="user", entity_id=row.user_id,
                 details={"session_id": row.id, "ip": row.ip, "user_agent": row.user_agent})
    db.session.delete(row)
    db.session.commit()
    return row
