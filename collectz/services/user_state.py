"""Each member's own rating (0–10), status and watchlist flag on an item. Viewers keep none: they only read."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from collectz.extensions import db
from collectz.models import Media, MediaUserState, User
from collectz.security.permissions import require_writer
from collectz.services import audit
from collectz.services.errors import Forbidden, InvalidInput, NotFound

STATUSES: dict[str, str] = {
    "want": "Want",
    "owned": "Owned",
    "in_progress": "In progress",
    "finished": "Finished",
    "dropped": "Dropped",
}
RATING_MAX = 10
_ACTION = "rate or track items"


@dataclass
class StateInput:
    rating: int | None = None
    status: str | None = None
    watchlist: bool = False

    @property
    def empty(self) -> bool:
        return self.rating is None and self.status is None and not self.watchlist


def can_keep_state(actor: User) -> bool:
    """Whether the actor may keep a rating and status (everyone but viewers)."""
    try:
        require_writer(actor, _ACTION)
    except Forbidden:
        return False
    return True


def get_state(actor: User, media_id: int) -> MediaUserState | None:
    """The actor's own state on an item, if any."""
    return db.session.scalar(
        select(MediaUserState).where(MediaUserState.media_id == media_id, MediaUserState.user_id == actor.id)
    )


def media_for_state(actor: User, media_id: int) -> Media:
    """The item whose state the actor wants to change: NotFound if missing, Forbidden for viewers."""
    media = db.session.get(Media, media_id)
    if media is None:
        raise NotFound("No such item.")
    require_writer(actor, _ACTION)
    return media


def _validate(data: StateInput) -> StateInput:
    errors: dict[str, str] = {}
    status = data.status or None
    if data.rating is not None and not 0 <= data.rating <= RATING_MAX:
        errors["rating"] = f"Rate from 0 to {RATING_MAX}."
    if status is not None and status not in STATUSES:
        errors["status"] = "Choose a status from the list."
    if errors:
        raise InvalidInput("Please fix the marked fields.", fields=errors)
    return StateInput(data.rating, status, bool(data.watchlist))


def set_state(actor: User, media_id: int, data: StateInput) -> MediaUserState | None:
    """Save the actor's rating, status and watchlist flag; an all-empty state removes the row."""
    media = media_for_state(actor, media_id)
    data = _validate(data)
    state = get_state(actor, media.id)
    before = _values(state)
    if data.empty:
        if state is not None:
            db.session.delete(state)
        state = None
    elif state is None:
        state = _insert(actor, media, data)
    else:
        state.rating, state.status, state.watchlist = data.rating, data.status, data.watchlist
    after = _values(state)
    changed = {k: {"from": before[k], "to": after[k]} for k in after if before[k] != after[k]}
    audit.record("media.state_updated", actor=actor, entity_type="media", entity_id=media.id,
                 details={"title": media.title, "changed": changed})
    db.session.commit()
    return state


def _insert(actor: User, media: Media, data: StateInput) -> MediaUserState:
    """A new row; if a double submit inserted it first, that row is updated instead."""
    insert = pg_insert if db.session.get_bind().dialect.name == "postgresql" else sqlite_insert
    db.session.execute(insert(MediaUserState).values(media_id=media.id, user_id=actor.id)
                       .on_conflict_do_nothing(index_elements=["media_id", "user_id"]))
    state = get_state(actor, media.id)
    assert state is not None
    state.rating, state.status, state.watchlist = data.rating, data.status, data.watchlist
    return state


def _values(state: MediaUserState | None) -> dict[str, object]:
    if state is None:
        return {"rating": None, "status": None, "watchlist": False}
    return {"rating": state.rating, "status": state.status, "watchlist": state.watchlist}
