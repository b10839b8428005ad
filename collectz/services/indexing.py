"""Derived data kept in step with an item: the text that search matches."""

from __future__ import annotations

from collectz.models import Media

SEARCHED_DETAILS = ("series", "series_title", "publisher", "platform", "label", "developer")


def build_search_text(media: Media) -> str:
    """Title, original title, people, series (and similar), notes and identifiers, lower-cased."""
    parts: list[str] = [media.title or "", media.original_title or ""]
    parts += [mp.person.name for mp in media.people if mp.person is not None]
    details = media.type_details or {}
    parts += [str(details[key]) for key in SEARCHED_DETAILS if details.get(key)]
    parts += [media.notes or ""]
    parts += [value for value in (media.isbn13, media.ean13, media.asin) if value]
    return " \n".join(p.strip() for p in parts if p and p.strip()).casefold()


def refresh_media_index(media: Media) -> None:
    """Recompute what search matches for this item; call after any change to it or its people."""
    media.search_text = build_search_text(media)
