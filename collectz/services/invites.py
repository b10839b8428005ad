"""Invitations: created by an admin, claimed once, before expiry, by the invited email."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from collectz.config import current_settings
from collectz.extensions import db
from collectz.models import Invite, User
from collectz.models.base import utcnow
from collectz.security.permissions import require_admin
from collectz.security.tokens import hash_token, new_token
from collectz.services import audit
from collectz.services.errors import InvalidInput


def create_invite(actor: User, email: str, role: str = "user", ttl_hours: int | None = None) -> tuple[Invite, str]:
    """Create an invite; the raw token is returned once and only its hash is kept."""
    require_admin(actor, "invite members")
    if role not in ("user", "viewer"):
        raise InvalidInput("Choose a role.", fields={"role": "Choose user or viewer."})
    hours = ttl_hours if ttl_hours is not None else current_settings().INVITE_TTL_HOURS
    token = new_token()
    invite = Invite(
        email=email.strip().lower(),
        token_hash=hash_token(token),
        role=role,
        expires_at=utcnow() + timedelta(hours=hours),
        created_by=actor.id,
    )
    db.session.add(invite)
    db.session.flush()
    audit.record("invite.created", actor=actor, entity_type="invite", entity_id=invite.id,
                 details={"email": invite.email, "role": role, "expires_at": invite.expires_at.isoformat()})
    db.session.commit()
    return invite, token


def check_invite(token: str | None, email: str) -> Invite:
    """The invite a registration may claim, or InvalidInput with a reason the person can act on."""
    if not token:
        raise InvalidInput("An invitation is needed to register.",
                           fields={"invite": "Registration needs an invitation: ask the admin for a link."})
    invite = db.session.scalar(select(Invite).where(Invite.token_hash == hash_token(token.strip())))
    if invite is None:
        raise _claim_error(None, email, "unknown", "This invitation link is not valid.")
    if invite.revoked_at is not None:
        raise _claim_error(invite, email, "revoked", "This invitation was revoked by the admin.")
    if invite.used_at is not None:
        raise _claim_error(invite, email, "used", "This invitation has already been used.")
    if invite.expires_at <= utcnow():
        raise _claim_error(invite, email, "expired", "This invitation has expired: ask the admin for a new one.")
    if invite.email != email.strip().lower():
        raise _claim_error(invite, email, "wrong_email", "This invitation was sent to a different email address.",
                           field="email")
    return invite


def _claim_error(invite: Invite | None, email: str, why: str, message: str, field: str = "invite") -> InvalidInput:
    audit.record_failure("invite.claim_failed", entity_type="invite", entity_id=invite.id if invite else None,
                         reason=why, details={"email": email.strip().lower()})
    return InvalidInput(message, fields={field: message})


def mark_claimed(invite: Invite, user: User) -> None:
    invite.used_at = utcnow()
    invite.used_by = user.id
    audit.record("invite.claimed", actor=user, entity_type="invite", entity_id=invite.id,
                 details={"email": user.email, "user_id": user.id, "claimed_at": invite.used_at.isoformat()})


def users_exist() -> bool:
    return db.session.scalar(select(User.id).limit(1)) is not None
