"""Members, as the admin sees them: the list, one member's contributions, role changes and deletion."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select

from collectz.extensions import db
from collectz.models import ActivityLog, Media, MediaUserState, User, UserSession
from collectz.security.permissions import require_admin
from collectz.services import audit, users
from collectz.services import sessions as session_service
from collectz.services.errors import Conflict, InvalidInput, NotFound
from collectz.services.pagination import Page

PER_PAGE = 25

# Shown in the drawer so that the number is not a mystery.
SCORE_FORMULA = "items added + items rated"


@dataclass
class MemberRow:
    user: User
    items_added: int


@dataclass
class MemberDetail:
    user: User
    items_added: int
    items_rated: int
    last_edit: datetime | None
    sessions: list[UserSession]
    # Why this member cannot be deleted by the actor (None: they can be).
    delete_blocked: str | None

    @property
    def score(self) -> int:
        """The contribution score: items added + items rated (SCORE_FORMULA)."""
        return self.items_added + self.items_rated


def list_members(page: int = 1, per_page: int = PER_PAGE) -> Page[MemberRow]:
    """One page of members by name, each with the number of items they added (constant query count)."""
    page = max(1, page)
    total = db.session.scalar(select(func.count(User.id))) or 0
    users = db.session.scalars(
        select(User).order_by(func.lower(User.name), User.id).limit(per_page).offset((page - 1) * per_page)
    ).all()
    counts = _items_added([u.id for u in users])
    return Page([MemberRow(u, counts.get(u.id, 0)) for u in users], page, per_page, total)


def _items_added(user_ids: list[int]) -> dict[int, int]:
    if not user_ids:
        return {}
    rows = db.session.execute(
        select(Media.added_by, func.count(Media.id)).where(Media.added_by.in_(user_ids)).group_by(Media.added_by)
    )
    return {user_id: count for user_id, count in rows}


def get_member(member_id: int) -> User:
    user = db.session.get(User, member_id)
    if user is None:
        raise NotFound("No such member.")
    return user


def member_detail(actor: User, member_id: int) -> MemberDetail:
    """A member with their contribution counters and live sessions."""
    require_admin(actor, "see member details")
    user = get_member(member_id)
    items_added = _items_added([user.id]).get(user.id, 0)
    items_rated = db.session.scalar(
        select(func.count(MediaUserState.id)).where(MediaUserState.user_id == user.id,
                                                    MediaUserState.rating.is_not(None))
    ) or 0
    return MemberDetail(user, items_added, items_rated, _last_edit(user.id),
                        session_service.list_user_sessions(user.id), _delete_blocker(actor, user))


def _last_edit(user_id: int) -> datetime | None:
    """The later of their latest media.* activity event and the latest change to an item they added."""
    logged = db.session.scalar(
        select(func.max(ActivityLog.created_at)).where(ActivityLog.actor_id == user_id,
                                                       ActivityLog.action.like("media.%"))
    )
    touched = db.session.scalar(select(func.max(Media.updated_at)).where(Media.added_by == user_id))
    candidates = [v for v in (logged, touched) if v is not None]
    return max(candidates) if candidates else None


def _delete_blocker(actor: User, user: User) -> str | None:
    if user.id == actor.id:
        return "You cannot delete your own account: ask another admin."
    if user.role == "admin" and users.admin_count() <= 1:
        return "The last admin cannot be deleted: make another member admin first."
    return None


def change_role(actor: User, member_id: int, role: str) -> User:
    """Set a member's role (audited member.role_changed by services.users.set_role); the last admin keeps theirs."""
    require_admin(actor, "change a member's role")
    user = get_member(member_id)
    try:
        users.set_role(actor, user, role)
    except Conflict:
        raise InvalidInput("Last admin.", fields={
            "role": "This is the last admin: make another member admin before changing this role."}) from None
    return user


def delete_member(actor: User, member_id: int) -> int:
    """Delete a member (audited member.deleted); their items stay, added_by NULL. Returns how many items stayed."""
    require_admin(actor, "delete a member")
    user = get_member(member_id)
    if user.role == "admin":
        users.admin_count(lock=True)
    blocked = _delete_blocker(actor, user)
    if blocked:
        raise Conflict(blocked)
    kept = _items_added([user.id]).get(user.id, 0)
    audit.record("member.deleted", actor=actor, entity_type="user", entity_id=user.id,
                 details={"email": user.email, "name": user.name, "role": user.role, "items_kept": kept})
    db.session.delete(user)
    db.session.commit()
    return kept


def revoke_member_session(actor: User, member_id: int, session_id: int) -> None:
    """Sign a member out of one session (audited session.revoked by the sessions service)."""
    require_admin(actor, "sign a member out")
    row = db.session.get(UserSession, session_id)
    if row is None or row.user_id != member_id:
        raise NotFound("This session has already ended.")
    session_service.revoke_session_by_id(actor, session_id)
