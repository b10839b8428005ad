"""Accounts: registration (first user is admin, then by invite), login, profile, password, roles, sessions."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from collectz.config import current_settings
from collectz.extensions import db
from collectz.models import Library, User
from collectz.models.base import utcnow
from collectz.models.user import ROLES
from collectz.security.passwords import hash_password, needs_rehash, verify_password
from collectz.security.permissions import require_admin
from collectz.services import audit, invites
from collectz.services import sessions as session_service
from collectz.services.errors import Conflict, InvalidInput, NotFound

GENERIC_LOGIN_ERROR = "Email or password is incorrect."
PASSWORD_MAX_LENGTH = 256


@dataclass
class Registration:
    email: str
    name: str
    password: str
    invite_token: str | None = None


def normalise_email(email: str) -> str:
    return email.strip().lower()


def check_password_strength(password: str, field: str = "password") -> None:
    """InvalidInput on `field` unless PASSWORD_MIN_LENGTH <= len(password) <= PASSWORD_MAX_LENGTH."""
    minimum = current_settings().PASSWORD_MIN_LENGTH
    if len(password) < minimum:
        raise InvalidInput("Password too short.", fields={field: f"Use at least {minimum} characters."})
    if len(password) > PASSWORD_MAX_LENGTH:
        raise InvalidInput("Password too long.", fields={field: f"Use at most {PASSWORD_MAX_LENGTH} characters."})


def register(reg: Registration) -> User:
    """Create an account: the very first one becomes admin with no invite; later ones need a valid invite."""
    email = normalise_email(reg.email)
    check_password_strength(reg.password)
    first = not invites.users_exist()
    invite = None if first else invites.check_invite(reg.invite_token, email)
    if db.session.scalar(select(User.id).where(func.lower(User.email) == email)) is not None:
        raise InvalidInput("Email taken.", fields={"email": "An account with this email already exists."})
    user = User(email=email, name=reg.name.strip(), role="admin" if first else invite.role,
                password_hash=hash_password(reg.password))
    db.session.add(user)
    try:
        db.session.flush()
    except IntegrityError:
        db.session.rollback()
        raise InvalidInput("Email taken.", fields={"email": "An account with this email already exists."}) from None
    if first:
        ensure_default_library()
    else:
        invites.mark_claimed(invite, user)
    audit.record("user.registered", actor=user, entity_type="user", entity_id=user.id,
                 details={"role": user.role, "first_user": first, "invite_id": invite.id if invite else None})
    db.session.commit()
    return user


def ensure_default_library() -> Library:
    library = db.session.scalar(select(Library).where(Library.is_default.is_(True)))
    if library is None:
        library = Library(name="Library", is_default=True)
        db.session.add(library)
        db.session.flush()
    return library


def authenticate(email: str, password: str) -> User:
    """The user for these credentials, or InvalidInput with one generic message (audited)."""
    email = normalise_email(email)
    user = db.session.scalar(select(User).where(User.email == email))
    if not verify_password(user.password_hash if user else None, password) or user is None:
        audit.record_failure("auth.login_failed", entity_type="user", entity_id=user.id if user else None,
                             reason="bad_credentials", details={"email": email})
        raise InvalidInput(GENERIC_LOGIN_ERROR, fields={"password": GENERIC_LOGIN_ERROR})
    if needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    user.last_login_at = utcnow()
    return user


def update_profile(user: User, *, name: str, email: str) -> User:
    email = normalise_email(email)
    changed = {}
    if email != user.email:
        if db.session.scalar(select(User.id).where(User.email == email, User.id != user.id)) is not None:
            raise InvalidInput("Email taken.", fields={"email": "An account with this email already exists."})
        changed["email"] = {"from": user.email, "to": email}
        user.email = email
    if name.strip() != user.name:
        changed["name"] = {"from": user.name, "to": name.strip()}
        user.name = name.strip()
    audit.record("user.profile_updated", actor=user, entity_type="user", entity_id=user.id,
                 details={"changed": changed, "password_changed": False})
    db.session.commit()
    return user


def change_password(user: User, *, current: str, new: str, keep_session_id: int | None) -> int:
    """Set a new password once the current one is proven; signs out every other session (returns how many)."""
    if not verify_password(user.password_hash, current):
        audit.record_failure("user.password_change_failed", actor=user, entity_type="user", entity_id=user.id,
                             reason="wrong_current_password")
        raise InvalidInput("Wrong current password.",
                           fields={"current_password": "This is not your current password."})
    check_password_strength(new, field="new_password")
    if verify_password(user.password_hash, new):
        raise InvalidInput("Same password.", fields={"new_password": "Choose a password you are not using now."})
    was_required = user.must_reset
    user.password_hash = hash_password(new)
    user.must_reset = False
    revoked = session_service.revoke_user_sessions(user.id, keep_id=keep_session_id)
    audit.record("user.profile_updated", actor=user, entity_type="user", entity_id=user.id,
                 details={"changed": {}, "password_changed": True, "was_required": was_required,
                          "other_sessions_revoked": revoked})
    db.session.commit()
    return revoked


def list_accounts() -> list[User]:
    """Every account by email (the break-glass list; a household has a handful)."""
    return list(db.session.scalars(select(User).order_by(User.email)))


def find_by_email(email: str) -> User:
    user = db.session.scalar(select(User).where(User.email == normalise_email(email)))
    if user is None:
        raise NotFound(f"No account with the email {normalise_email(email)}.")
    return user


def create_admin(email: str, name: str, password: str, *, via: str = "cli") -> User:
    """Create an admin account (break-glass: works on an empty database); an existing email is refused."""
    from email_validator import EmailNotValidError, validate_email

    email = normalise_email(email)
    try:
        validate_email(email, check_deliverability=False)
    except EmailNotValidError:
        raise InvalidInput("Bad email.", fields={"email": f"{email!r} is not a valid email address."}) from None
    name = name.strip()[:100] or email.split("@")[0]
    check_password_strength(password)
    existing = db.session.scalar(select(User).where(User.email == email))
    if existing is not None:
        raise Conflict(f"An account with the email {email} already exists (role: {existing.role}).")
    first = not invites.users_exist()
    user = User(email=email, name=name, role="admin", password_hash=hash_password(password))
    db.session.add(user)
    db.session.flush()
    ensure_default_library()
    audit.record("user.created", actor=None, entity_type="user", entity_id=user.id,
                 details={"email": email, "role": "admin", "first_user": first, "via": via})
    db.session.commit()
    return user


def set_role(actor: User | None, user: User, role: str, *, via: str = "web") -> bool:
    """Change a role (audited member.role_changed); the last admin keeps theirs. False when nothing changed.

    `actor` None is the command line, which is trusted like the database itself.
    """
    if actor is not None:
        require_admin(actor, "change a member's role")
    if role not in ROLES:
        raise InvalidInput("Choose a role.", fields={"role": "Choose admin, user or viewer."})
    old = user.role
    if old == role:
        return False
    if old == "admin" and admin_count(lock=True) <= 1:
        raise Conflict(f"{user.email} is the last admin: make another account admin first.")
    user.role = role
    audit.record("member.role_changed", actor=actor, entity_type="user", entity_id=user.id,
                 details={"email": user.email, "from": old, "to": role, "via": via})
    db.session.commit()
    return True


def admin_count(lock: bool = False) -> int:
    """How many admins there are; with lock=True the rows stay locked until commit (PostgreSQL)."""
    stmt = select(User.id).where(User.role == "admin")
    if lock:
        # PostgreSQL: two concurrent demotions must not both pass the last-admin check.
        stmt = stmt.with_for_update()
    return len(db.session.scalars(stmt).all())


def revoke_all_sessions(actor: User | None, user: User, *, via: str = "web") -> int:
    """Sign an account out everywhere (audited session.revoked_all); returns how many sessions went."""
    if actor is not None and actor.id != user.id:
        require_admin(actor, "sign a member out")
    count = session_service.revoke_user_sessions(user.id)
    audit.record("session.revoked_all", actor=actor, entity_type="user", entity_id=user.id,
                 details={"email": user.email, "count": count, "via": via})
    db.session.commit()
    return count


def revoke_other_sessions(user: User, *, keep_session_id: int | None) -> int:
    """Sign yourself out everywhere but this browser (audited session.revoked_all); returns the count."""
    count = session_service.revoke_user_sessions(user.id, keep_id=keep_session_id)
    audit.record("session.revoked_all", actor=user, entity_type="user", entity_id=user.id,
                 details={"email": user.email, "count": count, "kept_current": keep_session_id is not None,
                          "via": "web"})
    db.session.commit()
    return count
