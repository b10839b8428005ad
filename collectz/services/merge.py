"""Merging two items into one: the member picks the surviving value per field; everything else moves over.

The kept item ("survivor") takes the chosen values and gains the other item's people, genres, seasons,
members' ratings and states, metadata, import sources and variants, and the import rows that made or matched the
other item point at it instead; then the other item is deleted.
One transaction, one "media.merged" activity event.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import Table, delete, exists, func, select, update

from collectz.extensions import db
from collectz.models import (
    ImportRow,
    Media,
    MediaGenre,
    MediaMetadata,
    MediaPerson,
    MediaSeason,
    MediaSource,
    MediaUserState,
    MediaVariant,
    User,
)
from collectz.models.media_types import MEDIA_TYPES, TYPE_DETAILS, TypeDetailsError, validate_type_details
from collectz.security.permissions import require_media_edit, require_writer
from collectz.services import audit, covers
from collectz.services.errors import InvalidInput, NotFound
from collectz.services.indexing import refresh_media_index

KEEP, OTHER, BOTH = "keep", "merge", "both"


@dataclass(frozen=True)
class MergeField:
    """One choice on the merge page; some fields (TMDB, signed copy) move several columns together."""

    name: str
    label: str
    columns: tuple[str, ...]
    combinable: bool = False  # offers "both": formats are united, copies added up


MERGE_FIELDS: tuple[MergeField, ...] = (
    MergeField("title", "Title", ("title",)),
    MergeField("original_title", "Original title", ("original_title",)),
    MergeField("year", "Year", ("year",)),
    MergeField("release_date", "Release date", ("release_date",)),
    MergeField("formats", "Formats", ("formats",), combinable=True),
    MergeField("overview", "Overview", ("overview",)),
    MergeField("runtime", "Runtime (minutes)", ("runtime",)),
    MergeField("rating", "Rating", ("rating",)),
    MergeField("isbn13", "ISBN-13", ("isbn13",)),
    MergeField("ean13", "EAN-13 / UPC", ("ean13",)),
    MergeField("asin", "ASIN", ("asin",)),
    MergeField("tmdb", "TMDB", ("tmdb_media_type", "tmdb_id")),
    MergeField("plex_guid", "Plex GUID", ("plex_guid",)),
    MergeField("type_details", "Details", ("type_details",)),
    MergeField("signed", "Signed copy", ("signed_by", "signed_role", "signed_on", "signed_at", "signed_proof_key")),
    MergeField("location", "Location", ("location",)),
    MergeField("notes", "Notes", ("notes",)),
    MergeField("copies", "Copies", ("copies",), combinable=True),
)
FIELDS_BY_NAME = {f.name: f for f in MERGE_FIELDS}


@dataclass
class FieldRow:
    field: MergeField
    keep: str
    other: str
    choice: str

    @property
    def differs(self) -> bool:
        return self.keep != self.other


@dataclass
class MergePlan:
    survivor: Media
    other: Media
    rows: list[FieldRow]


def _is_empty(value: Any) -> bool:
    return value is None or value == "" or value == [] or value == {}


def _values(media: Media, spec: MergeField) -> tuple[Any, ...]:
    return tuple(getattr(media, column) for column in spec.columns)


def _blank(values: tuple[Any, ...]) -> bool:
    return all(_is_empty(v) for v in values)


def describe(media: Media, spec: MergeField) -> str:
    """A field's value as shown on the merge page ("" when empty)."""
    if spec.name == "tmdb":
        return f"{media.tmdb_media_type} {media.tmdb_id}" if media.tmdb_id is not None else ""
    if spec.name == "signed":
        if not media.signed_by:
            return ""
        parts = [f"by {media.signed_by}"]
        parts += [f"({media.signed_role})"] if media.signed_role else []
        parts += [f"on {media.signed_on.isoformat()}"] if media.signed_on else []
        parts += [f"at {media.signed_at}"] if media.signed_at else []
        parts += ["with proof"] if media.signed_proof_key else []
        return "Signed " + " ".join(parts)
    if spec.name == "type_details":
        labels = {f.name: f.label for f in TYPE_DETAILS.get(media.media_type, ())}
        return "; ".join(f"{labels.get(k, k)}: {v}" for k, v in (media.type_details or {}).items())
    value = getattr(media, spec.columns[0])
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float):
        return f"{value:g}"
    return "" if value is None else str(value)


def default_choice(survivor: Media, other: Media, spec: MergeField) -> str:
    """The survivor's value unless it is empty and the other item has one."""
    if _blank(_values(survivor, spec)) and not _blank(_values(other, spec)):
        return OTHER
    return KEEP


def _load_pair(actor: User, keep_id: int | None, merge_id: int | None, lock: bool = False) -> tuple[Media, Media]:
    require_writer(actor, "merge items")
    if keep_id is None or merge_id is None:
        raise InvalidInput("Choose the item to keep and the item to merge into it.",
                           fields={"keep" if keep_id is None else "merge": "Choose an item."})
    if keep_id == merge_id:
        raise InvalidInput("An item cannot be merged with itself: choose two different items.",
                           fields={"merge": "Choose a different item."})
    stmt = select(Media).where(Media.id.in_((keep_id, merge_id))).order_by(Media.id)
    if lock:  # row locks in id order, so two merges of the same pair wait rather than deadlock
        stmt = stmt.with_for_update()
    found = {m.id: m for m in db.session.scalars(stmt)}
    survivor, other = found.get(keep_id), found.get(merge_id)
    if survivor is None or other is None:
        raise NotFound("One of the items to merge no longer exists.")
    require_media_edit(actor, survivor, "merge items")
    require_media_edit(actor, other, "merge items")
    return survivor, other


def _resolve(survivor: Media, other: Media, submitted: Mapping[str, str]) -> dict[str, str]:
    """Every field's choice: the submitted one, else the default; refuse unknown answers."""
    choices: dict[str, str] = {}
    errors: dict[str, str] = {}
    for spec in MERGE_FIELDS:
        choice = submitted.get(spec.name) or default_choice(survivor, other, spec)
        allowed = (KEEP, OTHER, BOTH) if spec.combinable else (KEEP, OTHER)
        if choice not in allowed:
            errors[spec.name] = f"{spec.label}: choose one of the two values."
        choices[spec.name] = choice
    if errors:
        raise InvalidInput("Please fix the marked fields.", fields=errors)
    return choices


def plan_merge(actor: User, keep_id: int | None, merge_id: int | None,
               submitted: Mapping[str, str] | None = None) -> MergePlan:
    """The side-by-side comparison of two items the actor may merge, with each field's current choice."""
    survivor, other = _load_pair(actor, keep_id, merge_id)
    submitted = {k: v for k, v in (submitted or {}).items() if v in (KEEP, OTHER, BOTH)}
    choices = _resolve(survivor, other, submitted)
    rows = [FieldRow(spec, describe(survivor, spec), describe(other, spec), choices[spec.name])
            for spec in MERGE_FIELDS]
    return MergePlan(survivor, other, rows)


def _chosen_values(survivor: Media, other: Media, choices: Mapping[str, str]) -> dict[str, Any]:
    """Column → value for the survivor, validated before anything is written."""
    values: dict[str, Any] = {}
    for spec in MERGE_FIELDS:
        choice = choices[spec.name]
        source = other if choice == OTHER else survivor
        values.update(zip(spec.columns, _values(source, spec), strict=True))
    if choices["formats"] == BOTH:
        values["formats"] = list(dict.fromkeys([*(survivor.formats or []), *(other.formats or [])]))
    if choices["copies"] == BOTH:
        values["copies"] = survivor.copies + other.copies
    try:
        values["type_details"] = validate_type_details(survivor.media_type, values["type_details"])
    except TypeDetailsError as exc:
        kind = MEDIA_TYPES[survivor.media_type]
        raise InvalidInput(f"The merged item's details do not fit a {kind}: {exc.field} {exc.message}.",
                           fields={"type_details": f"{exc.field} {exc.message}"}) from None
    values["formats"] = list(values["formats"] or [])
    if survivor.cover_key is None:
        values["cover_key"] = other.cover_key  # no choice to make: a cover beats none
    return values


def merge_media(actor: User, keep_id: int | None, merge_id: int | None, submitted: Mapping[str, str]) -> Media:
    """Merge item `merge_id` into `keep_id` with the chosen field values; returns the survivor."""
    survivor, other = _load_pair(actor, keep_id, merge_id, lock=True)
    choices = _resolve(survivor, other, submitted)
    values = _chosen_values(survivor, other, choices)
    other_title, other_id = other.title, other.id
    try:
        _move_children(survivor.id, other.id)
        db.session.expire_all()  # the table statements bypassed the ORM: reload what it held
        for column, value in values.items():
            setattr(survivor, column, value)
        audit.record("media.merged", actor=actor, entity_type="media", entity_id=survivor.id,
                     details={"survivor_id": survivor.id, "merged_id": other_id, "merged_title": other_title,
                              "chosen": choices})
        keys = covers.image_keys(other)
        db.session.delete(other)
        db.session.flush()
        refresh_media_index(survivor)
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    covers.delete_unused(*keys)  # the merged-away item's images, unless the survivor kept them
    return survivor


def _move_children(keep: int, gone: int) -> None:
    """Re-point the other item's rows at the survivor; where both have one, the survivor's wins.

    Plain table statements (no ORM synchronisation): the caller expires both items afterwards.
    """
    _move_people(keep, gone)
    _move_unique(MediaGenre.__table__, ("genre_id",), keep, gone)
    _move_unique(MediaMetadata.__table__, ("key",), keep, gone)
    _move_unique(MediaVariant.__table__, ("source", "source_key"), keep, gone)
    _move_unique(MediaSource.__table__, (), keep, gone)  # UNIQUE(source, source_id) is global: never a clash
    _merge_seasons(keep, gone)
    _merge_user_states(keep, gone)
    # The rows that made or matched the other item now lead to the item that holds its entry (media_sources above).
    rows = ImportRow.__table__
    db.session.execute(update(rows).where(rows.c.media_id == gone).values(media_id=keep))


def _move_unique(table: Table, key: tuple[str, ...], keep: int, gone: int) -> None:
    """Move the rows whose key the survivor lacks; delete the rest."""
    stmt = update(table).where(table.c.media_id == gone)
    if key:
        theirs = table.alias("theirs")
        clash = exists().where(theirs.c.media_id == keep, *[theirs.c[k] == table.c[k] for k in key])
        stmt = stmt.where(~clash)
    db.session.execute(stmt.values(media_id=keep))
    db.session.execute(delete(table).where(table.c.media_id == gone))


def _move_people(keep: int, gone: int) -> None:
    """Credits the survivor lacks (a person in a role counts once) follow its own, in their order."""
    table = MediaPerson.__table__
    last = db.session.scalar(select(func.max(table.c.position)).where(table.c.media_id == keep))
    offset = -1 if last is None else last
    theirs = table.alias("theirs")
    clash = exists().where(theirs.c.media_id == keep, theirs.c.person_id == table.c.person_id,
                           theirs.c.role == table.c.role)
    db.session.execute(update(table).where(table.c.media_id == gone, ~clash)
                       .values(media_id=keep, position=table.c.position + offset + 1))
    db.session.execute(delete(table).where(table.c.media_id == gone))


def _merge_seasons(keep: int, gone: int) -> None:
    """Same season number: the survivor's row takes the larger counts and is complete if either was."""
    table = MediaSeason.__table__
    rows = db.session.execute(select(table).where(table.c.media_id.in_((keep, gone)))).all()
    mine = {r.season_number: r for r in rows if r.media_id == keep}
    for theirs in (r for r in rows if r.media_id == gone and r.season_number in mine):
        own = mine[theirs.season_number]
        db.session.execute(update(table).where(table.c.id == own.id).values(
            expected_episodes=_max(own.expected_episodes, theirs.expected_episodes),
            available_episodes=_max(own.available_episodes, theirs.available_episodes),
            complete=bool(own.complete or theirs.complete),
            watch_state=own.watch_state or theirs.watch_state,
        ))
    _move_unique(table, ("season_number",), keep, gone)


def _merge_user_states(keep: int, gone: int) -> None:
    """Per member: the survivor's values where set, else the other item's; on the watchlist if either was."""
    table = MediaUserState.__table__
    rows = db.session.execute(select(table).where(table.c.media_id.in_((keep, gone)))).all()
    mine = {r.user_id: r for r in rows if r.media_id == keep}
    for theirs in (r for r in rows if r.media_id == gone and r.user_id in mine):
        own = mine[theirs.user_id]
        db.session.execute(update(table).where(table.c.id == own.id).values(
            rating=own.rating if own.rating is not None else theirs.rating,
            status=own.status or theirs.status,
            watchlist=bool(own.watchlist or theirs.watchlist),
            last_watched_at=own.last_watched_at or theirs.last_watched_at,
        ))
    _move_unique(table, ("user_id",), keep, gone)


def _max(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else max(a, b)
