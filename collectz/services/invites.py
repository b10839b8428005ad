"""Invitations: created by an admin, claimed once, before expiry, by the invited email."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import aliased

from collectz.config import current_settings
from collectz.extensions import db
from collectz.models import Invite, User
from collectz.models.base import utcnow
from collectz.security.permissions import require_admin
from collectz.security.tokens import hash_token, new_token
from collectz.services import audit
from collectz.services.errors import Conflict, InvalidInput, NotFound
from collectz.services.pagination import Page

INVITE_ROLES = ("user", "viewer")


def create_invite(actor: User, email: str, role: str = "user", ttl_hours: int | None = None) -> tuple[Invite, str]:
    """Create an invite; the raw token is returned once and only its hash is kept."""
    require_admin(actor, "invite members")
    if role not in INVITE_ROLES:
        raise InvalidInput("Choose a role.", fields={"role": "Choose user or viewer."})
    email = email.strip().lower()
    if db.session.scalar(select(User.id).where(func.lower(User.email) == email)) is not None:
        raise InvalidInput("Already a member.", fields={"email": "This email already belongs to a member."})
    hours = ttl_hours if ttl_hours is not None else current_settings().INVITE_TTL_HOURS
    token = new_token()
    invite = Invite(
        email=email,
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


@dataclass
class InviteRow:
    """An invite as the admin list shows it: never any token material."""

    id: int
    email: str
    role: str
    created_at: datetime
    expires_at: datetime
    used_at: datetime | None
    revoked_at: datetime | None
    created_by_name: str | None
    used_by_name: str | None
    status: str  # open | used | revoked | expired

    @property
    def can_revoke(self) -> bool:
        return self.status in ("open", "expired")


def _status(invite: Invite, now: datetime) -> str:
    if invite.revoked_at is not None:
        return "revoked"
    if invite.used_at is not None:
        return "used"
    return "expired" if invite.expires_at <= now else "open"


def list_invites(actor: User, *, show_all: bool = False, page: int = 1, per_page: int = 25) -> Page[InviteRow]:
    """Open invites, newest first; with show_all also used, revoked and expired ones (history)."""
    require_admin(actor, "see invitations")
    now = utcnow()
    creator, claimer = aliased(User), aliased(User)
    open_only = and_(Invite.revoked_at.is_(None), Invite.used_at.is_(None), Invite.expires_at > now)
    where = [] if show_all else [open_only]
    page = max(1, page)
    total = db.session.scalar(select(func.count(Invite.id)).where(*where)) or 0
    rows = db.session.execute(
        select(Invite, creator.name, claimer.name)
        .outerjoin(creator, creator.id == Invite.created_by)
        .outerjoin(claimer, claimer.id == Invite.used_by)
        .where(*where)
        .order_by(Invite.created_at.desc(), Invite.id.desc())
        .limit(per_page).offset((page - 1) * per_page)
    ).all()
    items = [InviteRow(i.id, i.email, i.role, i.created_at, i.expires_at, i.used_at, i.revoked_at,
                       created_by_name, used_by_name, _status(i, now))
             for i, created_by_name, used_by_name in rows]
    return Page(items, page, per_page, total)


def count_hidden(actor: User) -> int:
    """How many invites the default (open only) list leaves out."""
    require_admin(actor, "see invitations")
    now = utcnow()
    return db.session.scalar(select(func.count(Invite.id)).where(
        or_(Invite.revoked_at.is_not(None), Invite.used_at.is_not(None), Invite.expires_at <= now))) or 0


def revoke_invite(actor: User, invite_id: int) -> Invite:
    """Revoke an unused invite so its link stops working (audited invite.revoked)."""
    require_admin(actor, "revoke invitations")
    invite = db.session.get(Invite, invite_id)
    if invite is None:
        raise NotFound("No such invitation.")
    if invite.used_at is not None:
        raise Conflict("This invitation has already been used: delete the member instead.")
    if invite.revoked_at is not None:
        raise Conflict("This invitation was already revoked.")
    invite.revoked_at = utcnow()
    creator = db.session.get(User, invite.created_by) if invite.created_by is not None else None
    audit.record("invite.revoked", actor=actor, entity_type="invite", entity_id=invite.id,
                 details={"email": invite.email, "role": invite.role, "created_by": invite.created_by,
                          "created_by_email": creator.email if creator else None})
    db.session.commit()
    return invite
