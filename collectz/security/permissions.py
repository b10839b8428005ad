"""The one permission module: who may read or write what.

viewers read only; users write their own items; admins everything. A denial raises
Forbidden (403, audited by the error handler); something outside a user's reach is NotFound.
"""

from __future__ import annotations

from typing import Protocol

from collectz.services.errors import Forbidden


class Actor(Protocol):
    id: int
    role: str


class Owned(Protocol):
    added_by: int | None


def require_admin(actor: Actor, action: str) -> None:
    if actor.role != "admin":
        raise Forbidden(f"Only an admin may {action}.")


def require_writer(actor: Actor, action: str) -> None:
    """Admins and users may write; viewers never."""
    if actor.role not in ("admin", "user"):
        raise Forbidden(f"Your account is read-only: you cannot {action}.")


def can_edit_media(actor: Actor, media: Owned) -> bool:
    if actor.role == "admin":
        return True
    return actor.role == "user" and media.added_by is not None and media.added_by == actor.id


def require_media_edit(actor: Actor, media: Owned, action: str = "change this item") -> None:
    require_writer(actor, action)
    if not can_edit_media(actor, media):
        raise Forbidden(f"You can only {action} for items you added.")
