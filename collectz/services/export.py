"""Exporting the library: the items of one library view (its section, search, filters and sort) as CSV or JSON.

Both formats stream: the view's items are found a keyset page at a time by `queries.browse` (so an export shows
exactly what the page shows, in the same order), and each page's people, genres, metadata, sources (and, for
JSON, seasons, files and the exporter's own rating) are loaded with one query per kind. Memory stays flat and the
query count grows with pages, never with items.

- CSV has exactly the import template's columns (`csv_generic.FIELDS`), so an exported file imports back into an
  empty library as the same items. Lists (formats, genres, people of a role) are joined with "; ", the
  template's separator. Cells that a spreadsheet would run as a formula get a leading quote.
- JSON is one document: {"exported_at", "app_version", "count", "filters", "items": [...]} with every field we
  store for an item (derived search/sort keys left out) and the owner's email.
"""

from __future__ import annotations

import csv
import io
import json
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import Select, select

from collectz.extensions import db
from collectz.importers.csv_generic import _DETAILS as DETAIL_COLUMNS
from collectz.importers.csv_generic import _EXTRA as EXTRA_COLUMNS
from collectz.importers.csv_generic import _PEOPLE as PEOPLE_COLUMNS
from collectz.importers.csv_generic import FIELDS
from collectz.models import (
    Genre,
    Media,
    MediaGenre,
    MediaMetadata,
    MediaPerson,
    MediaSeason,
    MediaSource,
    MediaUserState,
    MediaVariant,
    Person,
    User,
)
from collectz.security.permissions import Actor
from collectz.services import audit, queries
from collectz.services.activity import safe_cell
from collectz.version import __version__

EXPORT_PAGE = 500
LIST_SEP = "; "
CSV_SOURCE = "csv"
# The import ref of an item no CSV import made: stable, so importing the file again maps each row back to it.
REF_PREFIX = "collectz-"

# Columns of `media` an export carries: everything stored except what is derived from them (sort_title,
# search_text, formats_key, platform, resolution; thumb_key is made from the cover).
_MEDIA_COLUMNS = (
    "id", "library_id", "space_id", "media_type", "title", "original_title", "year", "release_date", "formats",
    "overview", "runtime", "rating", "isbn13", "ean13", "asin", "tmdb_id", "tmdb_media_type", "plex_guid",
    "type_details", "signed_by", "signed_role", "signed_on", "signed_at", "signed_proof_key", "location", "notes",
    "copies", "cover_key", "import_source", "added_by", "created_at", "updated_at",
)
_SEASON_COLUMNS = ("season_number", "expected_episodes", "available_episodes", "complete", "watch_state")
_VARIANT_COLUMNS = ("source", "source_key", "resolution", "video_codec", "audio_codec", "container", "edition",
                    "file_path", "size_bytes", "duration_ms")


@dataclass
class _Bundle:
    """One item and what hangs off it, as loaded for a page."""

    row: Any
    people: list[Any] = field(default_factory=list)
    genres: list[str] = field(default_factory=list)
    metadata: dict[str, str | None] = field(default_factory=dict)
    sources: list[Any] = field(default_factory=list)
    seasons: list[Any] = field(default_factory=list)
    variants: list[Any] = field(default_factory=list)
    state: Any = None


# --- finding the view's items ----------------------------------------------------------------------------------


def export_filters(params: queries.BrowseParams) -> dict[str, str]:
    """The view an export was made of, as query-string arguments (cursor and page size left out)."""
    return {"section": params.section,
            **params.args(after="", per_page=queries.DEFAULT_PER_PAGE)}


def _pages(actor: Actor, params: queries.BrowseParams, page_size: int) -> Iterator[tuple[int, list[int]]]:
    """(total, ids) of each keyset page of the whole view, from its first item (whatever page the user is on)."""
    view = replace(params, per_page=page_size, after="")
    while True:
        page = queries.browse(actor, view, keep=False)  # every page once: keeping them would only evict others
        yield page.total, [row.id for row in page.rows]
        if page.next_cursor is None:
            return
        view = replace(view, after=page.next_cursor)


def _grouped(stmt: Select[Any]) -> dict[int, list[Any]]:
    out: dict[int, list[Any]] = defaultdict(list)
    for row in db.session.execute(stmt):
        out[row.media_id].append(row)
    return out


def _load(actor: Actor, ids: list[int], *, full: bool) -> list[_Bundle]:
    """The page's items in the view's order, with their people, genres, metadata and sources; `full` adds
    seasons, files (variants) and the actor's own state. One query per kind, whatever the page's size."""
    if not ids:
        return []
    columns = [getattr(Media, name) for name in _MEDIA_COLUMNS]
    rows = db.session.execute(select(*columns, User.email.label("owner_email")).outerjoin(
        User, User.id == Media.added_by).where(Media.id.in_(ids)))
    bundles = {row.id: _Bundle(row) for row in rows}
    people = _grouped(select(MediaPerson.media_id, MediaPerson.role, MediaPerson.position, MediaPerson.character,
                             Person.name).join(Person, Person.id == MediaPerson.person_id)
                      .where(MediaPerson.media_id.in_(ids)).order_by(MediaPerson.role, MediaPerson.position))
    genres = _grouped(select(MediaGenre.media_id, Genre.name).join(Genre, Genre.id == MediaGenre.genre_id)
                      .where(MediaGenre.media_id.in_(ids)).order_by(Genre.name))
    metadata = _grouped(select(MediaMetadata.media_id, MediaMetadata.key, MediaMetadata.value)
                        .where(MediaMetadata.media_id.in_(ids)).order_by(MediaMetadata.key))
    sources = _grouped(select(MediaSource.media_id, MediaSource.source, MediaSource.source_id,
                              MediaSource.created_at).where(MediaSource.media_id.in_(ids)).order_by(MediaSource.id))
    for media_id, bundle in bundles.items():
        bundle.people = people.get(media_id, [])
        bundle.genres = [g.name for g in genres.get(media_id, [])]
        bundle.metadata = {m.key: m.value for m in metadata.get(media_id, [])}
        bundle.sources = sources.get(media_id, [])
    if full:
        _load_more(actor, ids, bundles)
    return [bundles[media_id] for media_id in ids if media_id in bundles]


def _load_more(actor: Actor, ids: list[int], bundles: dict[int, _Bundle]) -> None:
    seasons = _grouped(select(MediaSeason.media_id, *(getattr(MediaSeason, c) for c in _SEASON_COLUMNS))
                       .where(MediaSeason.media_id.in_(ids)).order_by(MediaSeason.season_number))
    variants = _grouped(select(MediaVariant.media_id, *(getattr(MediaVariant, c) for c in _VARIANT_COLUMNS))
                        .where(MediaVariant.media_id.in_(ids)).order_by(MediaVariant.id))
    states = _grouped(select(MediaUserState.media_id, MediaUserState.rating, MediaUserState.status,
                             MediaUserState.watchlist, MediaUserState.last_watched_at)
                      .where(MediaUserState.media_id.in_(ids), MediaUserState.user_id == actor.id))
    for media_id, bundle in bundles.items():
        bundle.seasons = seasons.get(media_id, [])
        bundle.variants = variants.get(media_id, [])
        bundle.state = (states.get(media_id) or [None])[0]


def _stream(actor: Actor, params: queries.BrowseParams, fmt: str, page_size: int, full: bool,
            ) -> Iterator[tuple[int, list[_Bundle]]]:
    """(total, items) page by page; the export is recorded in the activity log once the total is known."""
    recorded = False
    for total, ids in _pages(actor, params, page_size):
        if not recorded:
            audit.record("library.exported", actor=actor, entity_type="library",
                         details={"format": fmt, "count": total, "filters": export_filters(params)}, commit=True)
            recorded = True
        yield total, _load(actor, ids, full=full)


# --- CSV -------------------------------------------------------------------------------------------------------


def _number(value: Any) -> str:
    if value is None:
        return ""
    return f"{value:g}" if isinstance(value, float) else str(value)


def _import_ref(bundle: _Bundle) -> str:
    """The item's own CSV import ref if a CSV import made it, else one made from its id."""
    mine = next((s.source_id for s in bundle.sources if s.source == CSV_SOURCE), None)
    return mine or f"{REF_PREFIX}{bundle.row.id}"


def csv_values(bundle: _Bundle) -> dict[str, str]:
    """An item as the import template's cells, by field name (the inverse of the CSV importer's mapping)."""
    r = bundle.row
    details = r.type_details or {}
    values: dict[str, Any] = {
        "import_ref": _import_ref(bundle), "media_type": r.media_type, "title": r.title,
        "original_title": r.original_title, "year": r.year,
        "release_date": r.release_date.isoformat() if r.release_date else None, "overview": r.overview,
        "formats": LIST_SEP.join(r.formats or []), "genres": LIST_SEP.join(bundle.genres), "rating": r.rating,
        "copies": r.copies, "location": r.location, "notes": r.notes, "runtime": r.runtime, "isbn": r.isbn13,
        "ean": r.ean13, "asin": r.asin, "tmdb_id": r.tmdb_id, "signed_by": r.signed_by,
        "cover_url": bundle.metadata.get("cover_url"),
    }
    for column, role in PEOPLE_COLUMNS.items():
        values[column] = LIST_SEP.join(p.name for p in bundle.people if p.role == role)
    for column, key in DETAIL_COLUMNS.items():
        # A detail the item's type does not have was kept as metadata on import: it goes back to its column.
        values[column] = details.get(key) if details.get(key) not in (None, "") else bundle.metadata.get(key)
    for column in EXTRA_COLUMNS:
        values[column] = bundle.metadata.get(column)
    return {name: _number(value) for name, value in values.items()}


def export_csv(actor: Actor, params: queries.BrowseParams, *, page_size: int | None = None) -> Iterator[str]:
    """The view's items as CSV text, a chunk per page (the template's header starts the first)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(f.name for f in FIELDS)
    header_sent = False
    for _total, items in _stream(actor, params, "csv", page_size or EXPORT_PAGE, full=False):
        for bundle in items:
            values = csv_values(bundle)
            writer.writerow(safe_cell(values.get(f.name, "")) for f in FIELDS)
        yield buffer.getvalue()
        header_sent = True
        buffer.seek(0)
        buffer.truncate()
    if not header_sent:  # browse always answers one page; this keeps the header even if it did not
        yield buffer.getvalue()


# --- JSON ------------------------------------------------------------------------------------------------------


def _when(value: date | datetime | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime) and value.tzinfo is None:
        value = value.replace(tzinfo=UTC)  # SQLite hands back naive UTC
    return value.isoformat()


def _pick(row: Any, names: Iterable[str], convert: Callable[[Any], Any] = lambda v: v) -> dict[str, Any]:
    return {name: convert(getattr(row, name)) for name in names}


def item_json(bundle: _Bundle) -> dict[str, Any]:
    """Everything stored about an item (and what hangs off it) as a JSON-able dict."""
    r = bundle.row
    return {
        "id": r.id, "media_type": r.media_type, "title": r.title, "original_title": r.original_title,
        "year": r.year, "release_date": _when(r.release_date), "formats": list(r.formats or []),
        "overview": r.overview, "runtime": r.runtime, "rating": r.rating, "copies": r.copies,
        "location": r.location, "notes": r.notes,
        "identifiers": _pick(r, ("isbn13", "ean13", "asin", "tmdb_id", "tmdb_media_type", "plex_guid")),
        "type_details": dict(r.type_details or {}),
        "signed": {"by": r.signed_by, "role": r.signed_role, "on": _when(r.signed_on), "at": r.signed_at,
                   "proof_key": r.signed_proof_key},
        "cover_key": r.cover_key, "import_source": r.import_source, "library_id": r.library_id,
        "space_id": r.space_id, "owner_email": r.owner_email,
        "created_at": _when(r.created_at), "updated_at": _when(r.updated_at),
        "people": [{"name": p.name, "role": p.role, "position": p.position, "character": p.character}
                   for p in bundle.people],
        "genres": list(bundle.genres),
        "metadata": dict(bundle.metadata),
        "sources": [{"source": s.source, "source_id": s.source_id, "created_at": _when(s.created_at)}
                    for s in bundle.sources],
        "seasons": [_pick(s, _SEASON_COLUMNS) for s in bundle.seasons],
        "variants": [_pick(v, _VARIANT_COLUMNS) for v in bundle.variants],
        "my_state": None if bundle.state is None else {
            "rating": bundle.state.rating, "status": bundle.state.status, "watchlist": bundle.state.watchlist,
            "last_watched_at": _when(bundle.state.last_watched_at)},
    }


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def export_json(actor: Actor, params: queries.BrowseParams, *, page_size: int | None = None) -> Iterator[str]:
    """The view's items as one JSON document in text chunks: the head, then a chunk of items per page.
    `count` is the view's total when the export started."""
    head_sent = items_sent = False
    for total, items in _stream(actor, params, "json", page_size or EXPORT_PAGE, full=True):
        parts = []
        if not head_sent:
            head = {"exported_at": _when(datetime.now(UTC)), "app_version": __version__, "count": total,
                    "filters": export_filters(params)}
            parts.append(_dumps(head)[:-1] + ', "items": [')
            head_sent = True
        for bundle in items:
            parts.append((",\n" if items_sent else "\n") + _dumps(item_json(bundle)))
            items_sent = True
        yield "".join(parts)
    yield "\n]}\n"
