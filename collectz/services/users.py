"""Accounts: registration (first user is admin, then by invite), login, profile."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from collectz.config import current_settings
from collectz.extensions import db
from collectz.models import Library, User
from collectz.models.base import utcnow
from collectz.security.passwords import hash_password, needs_rehash, verify_password
from collectz.services import audit, invites
from collectz.services.errors import InvalidInput

GENERIC_LOGIN_ERROR = "Email or password is incorrect."


@dataclass
class Registration:
    email: str
    name: str
    password: str
    invite_token: str | None = None


def normalise_email(email: str) -> str:
    return email.strip().lower()


def check_password_strength(password: str) -> None:
    minimum = current_settings().PASSWORD_MIN_LENGTH
    if len(password) < minimum:
        raise InvalidInput("Password too short.", fields={"password": f"Use at least {minimum} characters."})


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
