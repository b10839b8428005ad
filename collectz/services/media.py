"""Media items: create, update, delete with the ownership rule; every change is in the activity log."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select

from collectz.extensions import db
from collectz.models import Media, User
from collectz.models.media_types import MEDIA_TYPES, TypeDetailsError
from collectz.security.permissions import require_media_edit, require_writer
from collectz.services import audit
from collectz.services.errors import InvalidInput, NotFound
from collectz.services.indexing import refresh_media_index
from collectz.services.users import ensure_default_library

EDITABLE = ("title", "media_type", "original_title", "year", "overview", "location", "notes", "copies", "formats",
            "type_details")


@dataclass
class MediaInput:
    title: str
    media_type: str = "other"
    original_title: str | None = None
    year: int | None = None
    overview: str | None = None
    location: str | None = None
    notes: str | None = None
    copies: int = 1
    formats: list[str] = field(default_factory=list)
    type_details: dict[str, Any] = field(default_factory=dict)


def _validate(data: MediaInput) -> None:
    errors: dict[str, str] = {}
    if not data.title or not data.title.strip():
        errors["title"] = "A title is needed."
    if data.media_type not in MEDIA_TYPES:
        errors["media_type"] = "Choose a media type."
    if data.year is not None and not 1800 <= data.year <= 2100:
        errors["year"] = "Enter a year between 1800 and 2100."
    if data.copies < 1:
        errors["copies"] = "At least one copy."
    if errors:
        raise InvalidInput("Please fix the marked fields.", fields=errors)


def get_media(actor: User, media_id: int) -> Media:
    """An item the actor can see (every member sees the household library), or NotFound."""
    media = db.session.get(Media, media_id)
    if media is None:
        raise NotFound("No such item.")
    return media


def get_media_for_edit(actor: User, media_id: int) -> Media:
    media = get_media(actor, media_id)
    require_media_edit(actor, media)
    return media


def create_media(actor: User, data: MediaInput) -> Media:
    require_writer(actor, "add items")
    _validate(data)
    library = ensure_default_library()
    media = Media(library_id=library.id, media_type=data.media_type, added_by=actor.id)
    _apply(media, data)
    db.session.add(media)
    db.session.flush()
    audit.record("media.created", actor=actor, entity_type="media", entity_id=media.id,
                 details={"title": media.title, "media_type": media.media_type})
    db.session.commit()
    return media


def update_media(actor: User, media_id: int, data: MediaInput) -> Media:
    media = get_media_for_edit(actor, media_id)
    _validate(data)
    before = {name: getattr(media, name) for name in EDITABLE}
    _apply(media, data)
    changed = {name: {"from": before[name], "to": getattr(media, name)}
               for name in EDITABLE if before[name] != getattr(media, name)}
    audit.record("media.updated", actor=actor, entity_type="media", entity_id=media.id,
                 details={"changed": changed})
    db.session.commit()
    return media


def delete_media(actor: User, media_id: int) -> None:
    media = get_media(actor, media_id)
    require_media_edit(actor, media, "delete this item")
    audit.record("media.deleted", actor=actor, entity_type="media", entity_id=media.id,
                 details={"title": media.title, "media_type": media.media_type})
    db.session.delete(media)
    db.session.commit()


def _apply(media: Media, data: MediaInput) -> None:
    media.media_type = data.media_type
    media.title = data.title.strip()
    media.original_title = (data.original_title or "").strip() or None
    media.year = data.year
    media.overview = data.overview or None
    media.location = (data.location or "").strip() or None
    media.notes = data.notes or None
    media.copies = data.copies
    media.formats = [f.strip() for f in data.formats if f and f.strip()]
    try:
        media.type_details = data.type_details
    except TypeDetailsError as exc:
        raise InvalidInput("Please fix the marked fields.", fields={exc.field: exc.message}) from None
    refresh_media_index(media)


def count_media() -> int:
    return db.session.scalar(select(func.count(Media.id))) or 0
