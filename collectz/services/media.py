"""Media items: create, update, delete with the ownership rule; every change is in the activity log.

Input is checked as a whole before anything is written, so a bad field means nothing changed. Field
names in InvalidInput match MediaInput's (people use `people_<role>`), which the add/edit form mirrors.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from functools import cached_property
from typing import Any

from sqlalchemy import bindparam, func, select
from stdnum import isbn

from collectz.extensions import db
from collectz.models import Genre, Media, MediaGenre, MediaPerson, MediaSeason, MediaUserState, Person, User
from collectz.models.media_types import (
    MEDIA_TYPES,
    PERSON_ROLES,
    SEASON_TYPES,
    SIGNED_ROLES,
    TMDB_TYPES,
    PersonRole,
    TypeDetailsError,
    validate_type_details,
)
from collectz.security.permissions import can_edit_media, require_media_edit, require_writer
from collectz.services import audit, identifiers, user_state
from collectz.services.errors import InvalidInput, NotFound
from collectz.services.indexing import refresh_media_index
from collectz.services.people import GENRE_NAME_MAX, PERSON_NAME_MAX, Credit, people_by_role, set_genres, set_people
from collectz.services.users import ensure_default_library

# Columns an edit may change, in the order they are applied (the type before its details).
COLUMNS = ("media_type", "title", "original_title", "year", "release_date", "formats", "overview", "runtime",
           "location", "notes", "copies", "type_details", "isbn13", "ean13", "asin", "tmdb_id", "tmdb_media_type",
           "signed_by", "signed_role", "signed_on", "signed_at")
_TEXT_LIMITS = {"title": 500, "original_title": 500, "location": 255, "signed_by": 255, "signed_at": 255,
                "overview": 20000, "notes": 20000}
# The item form's bounds, and the columns' (a 32-bit integer): an import's rows are held to the same.
COPIES_MAX = 9999
RUNTIME_MAX = 100_000
TMDB_ID_MAX = 2**31 - 1
_AUDIT_TEXT = 200  # long text is cut in the activity log; it records that it changed, not a copy


@dataclass
class SeasonInput:
    number: int | None
    available_episodes: int | None = None
    expected_episodes: int | None = None
    complete: bool = False


@dataclass
class MediaInput:
    """An item as a form or importer gives it; people, genres or seasons left as None stay as they are."""

    title: str
    media_type: str = "other"
    original_title: str | None = None
    year: int | None = None
    release_date: date | None = None
    formats: list[str] = field(default_factory=list)
    overview: str | None = None
    runtime: int | None = None
    location: str | None = None
    notes: str | None = None
    copies: int = 1
    type_details: dict[str, Any] = field(default_factory=dict)
    people: list[Credit] | None = None
    genres: list[str] | None = None
    seasons: list[SeasonInput] | None = None
    isbn: str | None = None
    ean: str | None = None
    asin: str | None = None
    tmdb_id: int | None = None
    tmdb_media_type: str | None = None
    signed_by: str | None = None
    signed_role: str | None = None
    signed_on: date | None = None
    signed_at: str | None = None


@dataclass
class Cleaned:
    columns: dict[str, Any]
    people: list[Credit] | None
    genres: list[str] | None
    seasons: list[SeasonInput] | None


# What the item page lists besides the item's own columns, as plain rows (each read when the page first asks for
# it: a form that saves a member's rating shows none of them). Built once, with the item's id bound.
_CREDITS = (select(MediaPerson.role, Person.name, MediaPerson.character)
            .join(Person, Person.id == MediaPerson.person_id)
            .where(MediaPerson.media_id == bindparam("media_id"))
            .order_by(MediaPerson.position, MediaPerson.role, Person.name_key))
_GENRES = (select(Genre.name).join(MediaGenre, MediaGenre.genre_id == Genre.id)
           .where(MediaGenre.media_id == bindparam("media_id")).order_by(Genre.name))
_SEASONS = (select(MediaSeason.season_number, MediaSeason.expected_episodes, MediaSeason.available_episodes,
                   MediaSeason.complete)
            .where(MediaSeason.media_id == bindparam("media_id")).order_by(MediaSeason.season_number))


@dataclass
class MediaDetail:
    """Everything the detail view shows, in a fixed number of queries."""

    media: Media
    added_by: User | None
    state: MediaUserState | None
    can_edit: bool
    can_keep_state: bool

    @cached_property
    def people(self) -> list[Any]:
        """(role, name, character) of each credit, in the item's order."""
        return list(db.session.execute(_CREDITS, {"media_id": self.media.id}))

    @property
    def credits(self) -> list[tuple[PersonRole, list[Any]]]:
        """The credits grouped by role, the roles in the order the page lists them."""
        by_role: dict[str, list[Any]] = {}
        for credit in self.people:
            by_role.setdefault(credit.role, []).append(credit)
        return [(spec, by_role[key]) for key, spec in PERSON_ROLES.items() if key in by_role]

    @cached_property
    def genres(self) -> list[str]:
        return list(db.session.scalars(_GENRES, {"media_id": self.media.id}))

    @cached_property
    def seasons(self) -> list[Any]:
        """(season_number, expected_episodes, available_episodes, complete) of each owned season, in order."""
        return list(db.session.execute(_SEASONS, {"media_id": self.media.id}))

    @property
    def identifiers(self) -> list[tuple[str, str, str | None]]:
        """(label, value as shown, link) for each identifier the item has."""
        m = self.media
        found: list[tuple[str, str, str | None]] = []
        if m.isbn13:
            found.append(("ISBN", isbn.format(m.isbn13), None))
        if m.ean13:
            upc = m.ean13.startswith("0")
            found.append(("UPC" if upc else "EAN", m.ean13[1:] if upc else m.ean13, None))
        if m.asin:
            found.append(("ASIN", m.asin, None))
        if m.tmdb_id:
            kind = m.tmdb_media_type or "movie"
            found.append((f"TMDB ({'TV' if kind == 'tv' else 'movie'})", str(m.tmdb_id),
                          f"https://www.themoviedb.org/{kind}/{m.tmdb_id}"))
        return found


def _text(value: str | None) -> str | None:
    return (value or "").strip() or None


def _clean(data: MediaInput) -> Cleaned:
    """Normalised column values and related lists, or InvalidInput naming every bad field."""
    errors: dict[str, str] = {}
    media_type = data.media_type
    if media_type not in MEDIA_TYPES:
        errors["media_type"] = "Choose a media type."
    texts = {name: _text(getattr(data, name)) for name in _TEXT_LIMITS}
    if not texts["title"]:
        errors["title"] = "A title is needed."
    for name, limit in _TEXT_LIMITS.items():
        if texts[name] and len(texts[name]) > limit:
            errors[name] = f"Use at most {limit} characters."
    year = data.year
    if year is not None and not 1800 <= year <= 2100:
        errors["year"] = "Enter a year between 1800 and 2100."
    elif data.release_date is not None:
        if year is None:
            year = data.release_date.year
        elif year != data.release_date.year:
            errors["year"] = "The year does not match the release date."
    if data.copies is None or data.copies < 1:
        errors["copies"] = "At least one copy."
    elif data.copies > COPIES_MAX:
        errors["copies"] = f"At most {COPIES_MAX:,} copies."
    if data.runtime is not None and data.runtime < 0:
        errors["runtime"] = "The runtime cannot be negative."
    elif data.runtime is not None and data.runtime > RUNTIME_MAX:
        errors["runtime"] = f"Enter the runtime in minutes (at most {RUNTIME_MAX:,})."
    formats: list[str] = []
    for fmt in data.formats or []:
        fmt = (fmt or "").strip()
        if fmt and fmt.casefold() not in {f.casefold() for f in formats}:
            formats.append(fmt)
    if any(len(f) > 100 for f in formats):
        errors["formats"] = "Each format can have at most 100 characters."
    details: dict[str, Any] = {}
    if media_type in MEDIA_TYPES:
        try:
            details = validate_type_details(media_type, data.type_details)
        except TypeDetailsError as exc:
            errors[exc.field] = exc.message[:1].upper() + exc.message[1:] + "."
    codes = _identifiers(data, errors)
    tmdb = _tmdb(data, media_type, errors)
    signed = _signed(data, texts, errors)
    _check_people(data.people, errors)
    genres = None if data.genres is None else [g.strip() for g in data.genres if g and g.strip()]
    if genres and any(len(g) > GENRE_NAME_MAX for g in genres):
        errors["genres"] = f"Each genre can have at most {GENRE_NAME_MAX} characters."
    _check_seasons(data.seasons, media_type, errors)
    if errors:
        raise InvalidInput("Please fix the marked fields.", fields=errors)
    columns = {
        "media_type": media_type, "title": texts["title"], "original_title": texts["original_title"], "year": year,
        "release_date": data.release_date, "formats": formats, "overview": texts["overview"],
        "runtime": data.runtime, "location": texts["location"], "notes": texts["notes"], "copies": data.copies,
        "type_details": details, **codes, **tmdb, **signed,
    }
    return Cleaned(columns, data.people, genres, data.seasons)


def _identifiers(data: MediaInput, errors: dict[str, str]) -> dict[str, str | None]:
    """ISBN-10/13 → ISBN-13, UPC-A/EAN-13 → EAN-13, ASIN upper-cased; a bad check digit is an error."""
    normalisers = (("isbn", "isbn13", identifiers.normalise_isbn), ("ean", "ean13", identifiers.normalise_ean),
                   ("asin", "asin", identifiers.normalise_asin))
    codes: dict[str, str | None] = {}
    for name, column, normalise in normalisers:
        raw = _text(getattr(data, name))
        try:
            codes[column] = normalise(raw) if raw else None
        except identifiers.IdentifierError as exc:
            errors[name] = str(exc)
    return codes


def _tmdb(data: MediaInput, media_type: str, errors: dict[str, str]) -> dict[str, Any]:
    if data.tmdb_id is None:
        return {"tmdb_id": None, "tmdb_media_type": None}
    kind = data.tmdb_media_type or TMDB_TYPES.get(media_type)
    if not 1 <= data.tmdb_id <= TMDB_ID_MAX:
        errors["tmdb_id"] = "A TMDB id is a positive number." if data.tmdb_id < 1 else "This TMDB id is too large."
    if kind not in ("movie", "tv"):
        errors["tmdb_media_type"] = "Say whether the TMDB id is a movie or a TV show."
    return {"tmdb_id": data.tmdb_id, "tmdb_media_type": kind}


def _signed(data: MediaInput, texts: dict[str, str | None], errors: dict[str, str]) -> dict[str, Any]:
    role = _text(data.signed_role)
    if role is not None and role not in SIGNED_ROLES:
        errors["signed_role"] = "Choose author, producer or cast."
    if (role or data.signed_on or texts["signed_at"]) and not texts["signed_by"]:
        errors["signed_by"] = "Say who signed it."
    return {"signed_by": texts["signed_by"], "signed_role": role, "signed_on": data.signed_on,
            "signed_at": texts["signed_at"]}


def _check_people(credits: list[Credit] | None, errors: dict[str, str]) -> None:
    for credit in credits or []:
        key = f"people_{credit.role}"
        if credit.role not in PERSON_ROLES:
            errors[key] = f"Unknown role {credit.role!r}."
        elif len(credit.name.strip()) > PERSON_NAME_MAX or len(credit.character or "") > PERSON_NAME_MAX:
            errors[key] = f"Each name can have at most {PERSON_NAME_MAX} characters."


def _check_seasons(seasons: list[SeasonInput] | None, media_type: str, errors: dict[str, str]) -> None:
    if not seasons:
        return
    if media_type not in SEASON_TYPES:
        errors["seasons"] = "Only a TV series has seasons."
        return
    seen: set[int] = set()
    for season in seasons:
        counts = (season.available_episodes, season.expected_episodes)
        if season.number is None:
            errors["seasons"] = "Each season row needs a season number."
        elif season.number < 0 or any(c is not None and c < 0 for c in counts):
            errors["seasons"] = f"Season {season.number}: numbers cannot be negative."
        elif season.number in seen:
            errors["seasons"] = f"Season {season.number} is listed twice."
        else:
            seen.add(season.number)


def _set_seasons(media: Media, seasons: list[SeasonInput]) -> None:
    """Make these the owned seasons; a season that stays keeps its row (and its watch state)."""
    existing = {s.season_number: s for s in media.seasons}
    rows = []
    for season in sorted(seasons, key=lambda s: s.number or 0):
        row = existing.get(season.number) or MediaSeason(season_number=season.number)
        row.available_episodes = season.available_episodes
        row.expected_episodes = season.expected_episodes
        row.complete = season.complete
        rows.append(row)
    media.seasons = rows


def _apply(media: Media, cleaned: Cleaned) -> None:
    for name in COLUMNS:
        setattr(media, name, cleaned.columns[name])
    if cleaned.people is not None:
        set_people(media, cleaned.people)
    if cleaned.genres is not None:
        set_genres(media, cleaned.genres)
    if cleaned.seasons is not None:
        _set_seasons(media, cleaned.seasons)
    refresh_media_index(media)  # after people: search reads them


def _audit_value(value: Any) -> Any:
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, str) and len(value) > _AUDIT_TEXT:
        return value[:_AUDIT_TEXT] + "…"
    return value


def _snapshot(media: Media) -> dict[str, Any]:
    """The item's editable state as JSON-friendly values, to diff for the activity log."""
    values = {name: _audit_value(getattr(media, name)) for name in COLUMNS}
    values["people"] = people_by_role(media)
    values["genres"] = [g.name for g in media.genres]
    values["seasons"] = [f"{s.season_number}: {s.available_episodes or 0}/{s.expected_episodes or '?'}"
                         + (" complete" if s.complete else "") for s in media.seasons]
    return values


def _diff(before: dict[str, Any], after: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: {"from": before.get(name), "to": value} for name, value in after.items()
            if before.get(name, None) != value and not (name not in before and value in (None, "", [], {}))}


def check_media(data: MediaInput) -> None:
    """Raise InvalidInput naming every bad field, writing nothing (a form shows them all at once)."""
    _clean(data)


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


# Built once: the item page is among the most asked for. Its credits, genres and seasons are plain rows
# (MediaDetail), not loaded relationships: the ORM's loaders cost several times more than the queries.
_DETAIL = select(Media).where(Media.id == bindparam("media_id"))


def get_detail(actor: User, media_id: int) -> MediaDetail:
    """The item with its people, genres and seasons, who added it and the actor's own state."""
    media = db.session.scalar(_DETAIL, {"media_id": media_id})
    if media is None:
        raise NotFound("No such item.")
    added_by = db.session.get(User, media.added_by) if media.added_by is not None else None
    can_keep_state = user_state.can_keep_state(actor)
    state = user_state.get_state(actor, media.id) if can_keep_state else None
    return MediaDetail(media, added_by, state, can_edit_media(actor, media), can_keep_state)


def create_media(actor: User, data: MediaInput) -> Media:
    """Add an item for the actor (a writer); the event lists every field given."""
    require_writer(actor, "add items")
    cleaned = _clean(data)
    library = ensure_default_library()
    media = Media(library_id=library.id, media_type=cleaned.columns["media_type"], added_by=actor.id)
    db.session.add(media)
    _apply(media, cleaned)
    db.session.flush()
    audit.record("media.created", actor=actor, entity_type="media", entity_id=media.id,
                 details={"title": media.title, "media_type": media.media_type,
                          "changed": _diff({}, _snapshot(media))})
    db.session.commit()
    return media


def update_media(actor: User, media_id: int, data: MediaInput) -> Media:
    """Change an item the actor may edit; the event lists each changed field with its old and new value."""
    media = get_media_for_edit(actor, media_id)
    cleaned = _clean(data)
    before = _snapshot(media)
    _apply(media, cleaned)
    db.session.flush()
    audit.record("media.updated", actor=actor, entity_type="media", entity_id=media.id,
                 details={"title": media.title, "changed": _diff(before, _snapshot(media))})
    db.session.commit()
    return media


def delete_media(actor: User, media_id: int) -> None:
    """Delete an item the actor may edit, with everything hanging off it."""
    media = get_media(actor, media_id)
    require_media_edit(actor, media, "delete this item")
    audit.record("media.deleted", actor=actor, entity_type="media", entity_id=media.id,
                 details={"title": media.title, "media_type": media.media_type, "added_by": media.added_by})
    from collectz.services import covers  # covers builds on this module

    keys = covers.image_keys(media)
    db.session.delete(media)
    db.session.commit()
    covers.delete_unused(*keys)


def count_media() -> int:
    return db.session.scalar(select(func.count(Media.id))) or 0
