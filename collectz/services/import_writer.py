"""Turning import records into catalog items: validate, dedupe (identifier first), write — a batch at a time.

`convert(record)` checks one record with the same rules as the add/edit form (services.media) and returns an
`Incoming` or raises RowError with a message naming the fields. `write_batch` decides each row's outcome and writes
the batch in one transaction, with a fixed number of queries per batch (lookups by `IN`, inserts in bulk).

Dedupe, within the library and the media type:
1. the same source entry imported before (`media_sources`) → that item;
2. ISBN-13 → EAN-13 → ASIN → TMDB id → Plex guid → normalised title + year;
3. a *different* entry of the same source that matches is another copy of the item (copies + 1);
4. a strong identifier that conflicts with the candidate's (both have one of a kind and they differ) makes a new
   item instead of merging.
An update only fills empty fields: an import never blanks or overwrites a value.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date
from functools import cached_property, lru_cache
from operator import attrgetter
from typing import Any

from sqlalchemy import Integer, String, func, select, text

from collectz.extensions import db
from collectz.importers import Record, media_type_of
from collectz.models import (
    Genre,
    Media,
    MediaGenre,
    MediaMetadata,
    MediaPerson,
    MediaSeason,
    MediaSource,
    MediaVariant,
)
from collectz.models.media import make_sort_title
from collectz.models.media_types import MEDIA_TYPES, PERSON_ROLES, TYPE_DETAILS
from collectz.services.bulk_rows import (
    Meanwhile,
    any_of,
    each_key,
    insert_rows,
    insert_stream,
    matching,
    unnest_table,
)
from collectz.services.errors import InvalidInput
from collectz.services.indexing import compose_search_text, derived_columns, refresh_media_index
from collectz.services.media import COLUMNS, Cleaned, MediaInput
from collectz.services.media import _clean as clean_media_input
from collectz.services.people import (
    Credit,
    get_or_create_genres,
    get_or_create_people,
    ordered_credits,
    ordered_genres,
)

# Match modes an import row records.
MATCHED_BY_IDENTIFIER = "matched_by_identifier"
FALLBACK_AFTER_IDENTIFIER = "identifier_no_match_fallback_title"
FALLBACK_TITLE_ONLY = "fallback_title_only"
IDENTIFIER_CONFLICT = "identifier_conflict"

# Identifier columns in matching order, and the ones that make a conflict when they differ.
ID_ORDER = ("isbn13", "ean13", "asin", "tmdb_id", "plex_guid")
STRONG_IDS = ("isbn13", "ean13", "asin", "tmdb_id", "plex_guid")
EMPTY = (None, "", [], {})
METADATA_VALUE_MAX = 2000


class RowError(ValueError):
    """A row that cannot be imported; the message names the fields and says what to fix."""


@dataclass
class Incoming:
    """A validated record: the item's columns and what hangs off it."""

    source_id: str | None
    cleaned: Cleaned
    rating: float | None
    plex_guid: str | None
    metadata: dict[str, str] = field(default_factory=dict)
    # (season number, episodes owned, episodes the season has) — series only
    seasons: list[tuple[int, int | None, int | None]] = field(default_factory=list)
    variants: list[dict[str, Any]] = field(default_factory=list)  # media_variants columns, source_key required
    alt_source_ids: list[str] = field(default_factory=list)  # other ids of the same entry (a Plex rating key)

    def __post_init__(self) -> None:
        # Worked out once: an Incoming is not changed once made, and dedupe asks these many times per row.
        columns = self.cleaned.columns
        self.source_ids: list[str] = [i for i in (self.source_id, *self.alt_source_ids) if i]
        # The identifiers it has, in matching order (ID_ORDER), empty ones left out.
        self.ids: dict[str, Any] = {name: value for name in ID_ORDER
                                    if (value := self.plex_guid if name == "plex_guid" else columns.get(name))}

    @property
    def columns(self) -> dict[str, Any]:
        return self.cleaned.columns

    @property
    def media_type(self) -> str:
        return self.cleaned.columns["media_type"]

    @property
    def has_identifier(self) -> bool:
        return bool(self.ids)

    # Asked for rows no entry id or identifier matched (a re-import's rows never need it); rows read ahead have it
    # worked out already (with_title_keys).
    @cached_property
    def title_key(self) -> tuple[str, str, int | None]:
        return (self.media_type, title_key(self.columns["title"]), self.columns["year"])


def with_title_keys(items: list[Incoming | RowError]) -> list[Incoming | RowError]:
    """The items, each with its title key worked out: the thread that reads the next chunk ahead does it while the
    database stores this one's rows, since a first import looks every row up by title and the chunk's own thread
    would do it while the database waits (a re-import's rows never need it: there it costs that thread only)."""
    for item in items:
        if isinstance(item, Incoming):
            item.title_key  # noqa: B018 - a cached property
    return items


@dataclass
class Outcome:
    """What happened to one row."""

    outcome: str  # created | updated | skipped | failed
    match_mode: str | None = None
    matched_by: str | None = None
    message: str | None = None
    media_id: int | None = None


_PUNCT = re.compile(r"[^\w\s]", re.UNICODE)
_LEADING_ARTICLE = re.compile(r"^(the|an|a) ")


# A chunk asks for each of its titles at least twice (its row, then the item it makes or matches): the cache covers a
# chunk's titles (at most 5,000 rows) and no more, since each entry keeps a title alive for the process's life.
@lru_cache(maxsize=8192)
def title_key(title: str) -> str:
    """A title as dedupe compares it: case, accents, punctuation, spacing and a leading article folded."""
    folded = title or ""
    if not folded.isascii():  # ASCII has no accents to fold and is its own NFKD form: most titles skip this
        folded = unicodedata.normalize("NFKD", folded)
        folded = "".join(c for c in folded if not unicodedata.combining(c))
    folded = " ".join(_PUNCT.sub(" ", folded.casefold()).split())
    return _LEADING_ARTICLE.sub("", folded) or folded


# --- one record → Incoming -------------------------------------------------------------------------------------


def _text(value: Any) -> str | None:
    text = "" if value is None else str(value).strip()
    return text or None


def _int(record: Record, key: str, label: str, errors: list[str]) -> int | None:
    raw = _text(record.get(key))
    if raw is None:
        return None
    try:
        return int(float(raw)) if re.fullmatch(r"-?\d+(\.0+)?", raw) else int(raw)
    except ValueError:
        errors.append(f"{label}: {raw!r} is not a whole number")
        return None


def _date(raw: Any, label: str, errors: list[str]) -> date | None:
    text = _text(raw)
    if text is None:
        return None
    try:
        return date.fromisoformat(text[:10])
    except ValueError:
        errors.append(f"{label}: {text!r} is not a date (use YYYY-MM-DD)")
        return None


def _list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    return [str(v).strip() for v in value if v is not None and str(v).strip()]


def convert(record: Record, default_type: str = "other") -> Incoming:
    """Validate one record with the form's rules; RowError names every problem."""
    errors: list[str] = []
    raw_type = _text(record.get("media_type"))
    media_type = media_type_of(raw_type) if raw_type else default_type
    if media_type is None:
        errors.append(f"type: {raw_type!r} is not a media type (use one of {', '.join(MEDIA_TYPES)})")
        media_type = "other"
    year = _int(record, "year", "year", errors)
    runtime = _int(record, "runtime", "runtime", errors)
    copies = _int(record, "copies", "copies", errors)
    tmdb_id = _int(record, "tmdb_id", "TMDB id", errors)
    rating = None
    raw_rating = _text(record.get("rating"))
    if raw_rating is not None:
        try:
            rating = float(raw_rating.replace(",", "."))
        except ValueError:
            errors.append(f"rating: {raw_rating!r} is not a number")
        else:
            if not 0 <= rating <= 10:
                errors.append(f"rating: {raw_rating} is not between 0 and 10")
    release_date = _date(record.get("release_date"), "release date", errors)
    signed_on = _date(record.get("signed_on"), "signed on", errors)

    metadata: dict[str, str] = {}
    for key, value in (record.get("extra") or {}).items():
        if _text(value):
            metadata[str(key)[:100]] = str(value).strip()[:METADATA_VALUE_MAX]
    details, spilled = _details(media_type, record.get("details") or {})
    metadata.update({k: v for k, v in spilled.items() if k not in metadata})
    for key in ("calibre_id", "cover_url"):
        if _text(record.get(key)):
            metadata[key] = _text(record.get(key))[:METADATA_VALUE_MAX]  # type: ignore[index]
    if _text(record.get("original_title")) is None and _text(record.get("subtitle")):
        metadata.setdefault("subtitle", _text(record.get("subtitle")))  # type: ignore[arg-type]

    people = []
    for entry in record.get("people") or []:
        try:
            role, name = entry[0], entry[1]
        except (TypeError, IndexError, KeyError):
            continue
        name = _text(name)
        if name:
            people.append(Credit(name=name, role=role if role in PERSON_ROLES else "creator"))

    ean = _text(record.get("ean")) or _text(record.get("upc"))
    data = MediaInput(
        title=_text(record.get("title")) or "", media_type=media_type,
        original_title=_text(record.get("original_title")), year=year, release_date=release_date,
        formats=_list(record.get("formats")), overview=_text(record.get("overview")), runtime=runtime,
        location=_text(record.get("location")), notes=_text(record.get("notes")),
        copies=copies if copies is not None else 1, type_details=details, people=people or None,
        genres=_list(record.get("genres")) or None, isbn=_text(record.get("isbn")), ean=ean,
        asin=_text(record.get("asin")), tmdb_id=tmdb_id, tmdb_media_type=_text(record.get("tmdb_media_type")),
        signed_by=_text(record.get("signed_by")), signed_role=_text(record.get("signed_role")),
        signed_on=signed_on, signed_at=_text(record.get("signed_at")),
    )
    if release_date and year and release_date.year != year:
        data.year = release_date.year  # the full date wins over a year column that disagrees
        metadata.setdefault("source_year", str(year))
    try:
        cleaned = clean_media_input(data)
    except InvalidInput as exc:
        errors.extend(f"{_FIELD_LABELS.get(k, k)}: {_lower(v)}" for k, v in exc.fields.items())
    if errors:
        raise RowError("; ".join(dict.fromkeys(errors)))
    seasons = _seasons(record.get("seasons"), media_type, errors)
    variants = _variants(record.get("variants"), errors)
    if errors:
        raise RowError("; ".join(dict.fromkeys(errors)))
    plex_guid = _text(record.get("plex_guid"))
    source_id = _text(record.get("source_id"))
    alt = [a[:255] for a in dict.fromkeys(_list(record.get("alt_source_ids"))) if a[:255] != source_id]
    return Incoming(source_id=source_id, cleaned=cleaned, rating=rating,
                    plex_guid=plex_guid[:255] if plex_guid else None, metadata=metadata, seasons=seasons,
                    variants=variants, alt_source_ids=alt)


def _count(value: Any) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not str(value).strip().isdigit():
        raise ValueError
    return int(str(value).strip())


def _seasons(raw: Any, media_type: str, errors: list[str]) -> list[tuple[int, int | None, int | None]]:
    """A record's seasons ({number, available, expected}; a provider's "episode_count" is the expected count)."""
    if not raw:
        return []
    if media_type != "tv_series":
        errors.append("seasons: only a TV series has seasons")
        return []
    seasons: dict[int, tuple[int, int | None, int | None]] = {}
    for entry in raw if isinstance(raw, list) else [raw]:
        try:
            number = _count(entry.get("number"))
            available = _count(entry.get("available"))
            expected = _count(entry.get("expected", entry.get("episode_count")))
        except (AttributeError, ValueError):
            errors.append(f"seasons: {str(entry)[:60]!r} is not a season (number, episodes owned, episodes)")
            continue
        if number is None:
            errors.append("seasons: each season needs its number")
            continue
        seasons.setdefault(number, (number, available, expected))
    return sorted(seasons.values())


_VARIANT_TEXT = {"source_key": 255, "resolution": 16, "video_codec": 32, "audio_codec": 32, "container": 16,
                 "edition": 100, "file_path": 4000}
_VARIANT_NUMBERS = ("size_bytes", "duration_ms")


def _variants(raw: Any, errors: list[str]) -> list[dict[str, Any]]:
    """A record's files/editions as media_variants rows (known columns only, within their lengths)."""
    variants: dict[str, dict[str, Any]] = {}
    for entry in raw or []:
        if not isinstance(entry, dict) or not _text(entry.get("source_key")):
            errors.append("variants: each file needs its source key")
            continue
        row: dict[str, Any] = {}
        for name, limit in _VARIANT_TEXT.items():
            text = _text(entry.get(name))
            row[name] = text[:limit] if text else None
        for name in _VARIANT_NUMBERS:
            try:
                row[name] = _count(entry.get(name))
            except ValueError:
                row[name] = None
        variants.setdefault(row["source_key"], row)
    return list(variants.values())


_FIELD_LABELS = {"media_type": "type", "ean": "EAN/UPC", "isbn": "ISBN", "asin": "ASIN", "tmdb_id": "TMDB id"}


def _lower(message: str) -> str:
    message = message.rstrip(".")
    return message if message[1:2].isupper() else message[:1].lower() + message[1:]  # keep "ISBN", "UPC"


def _details(media_type: str, details: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """The type's own detail fields (whole numbers checked), and the rest as metadata (nothing is dropped)."""
    specs = {spec.name: spec for spec in TYPE_DETAILS.get(media_type, ())}
    kept: dict[str, Any] = {}
    spilled: dict[str, str] = {}
    for key, value in details.items():
        text = _text(value)
        if text is None:
            continue
        spec = specs.get(key)
        if spec is None:
            spilled[key] = text[:METADATA_VALUE_MAX]
        elif spec.kind is int and not text.isdigit():
            spilled[key] = text[:METADATA_VALUE_MAX]
        else:
            kept[key] = text[: spec.max_length] if spec.kind is str else int(text)
    return kept, spilled


# --- dedupe and write ------------------------------------------------------------------------------------------


@dataclass
class BatchContext:
    """What a batch needs to decide: the job's library, source and owner."""

    library_id: int
    source: str | None  # media_sources.source for entries of this import (None: no entry ids, e.g. barcodes)
    added_by: int | None
    import_source: str
    # Barcode batches: an identifier match is "already in the catalog" (skipped), never another copy.
    match_is_skip: bool = False
    # Called while the database stores the batch's new items (bulk_rows.insert_stream's `meanwhile`): the caller may
    # start work of its own on another thread; what it returns, if anything, is called once they are stored.
    while_writing: Meanwhile | None = None


class _Index:
    """Candidates by (media type, identifier) and by title key, kept up to date as the batch creates items."""

    def __init__(self) -> None:
        self.by_id: dict[tuple[str, str, Any], Media] = {}
        self.by_title: dict[tuple[str, str, int | None], Media] = {}
        self.by_source: dict[str, Media] = {}
        self.same_source: set[Media] = set()  # items that already have an entry of this import's source
        self.loaded: set[int] = set()  # ids of the items loaded from the database
        self.with_people: set[int] = set()  # ids of the loaded items that have people
        self.with_genres: set[int] = set()  # ... and genres

    def add(self, media: Media) -> None:
        for name in ID_ORDER:
            value = media.plex_guid if name == "plex_guid" else getattr(media, name)
            if value:
                self.by_id.setdefault((media.media_type, name, value), media)
        self.by_title.setdefault((media.media_type, title_key(media.title), media.year), media)


def _full(ids: Iterable[int]) -> list[Media]:
    """Items by id (their people and genres are not loaded: `_Index.with_people`/`with_genres` say whether they
    have any, which is all "fill if empty" asks; a re-import matches every row, and loading each item's people and
    genres made it slower than the first import)."""
    ids = set(ids)
    if not ids:
        return []
    return list(db.session.scalars(select(Media).where(any_of(Media.id, ids)).order_by(Media.id)))


def _load_candidates(ctx: BatchContext, batch: list[Incoming]) -> _Index:
    """The items this batch can match, loaded with a fixed number of queries bounded by the batch's size:
    entries imported before (by source id); then, for the other rows, items sharing an identifier; then, for rows
    still unmatched, the first item of the same type, title key and year (found on key columns first)."""
    index = _Index()
    found: dict[int, Media] = {}
    rest = batch
    if ctx.source:
        ids = {source_id for i in batch for source_id in i.source_ids}
        if ids:
            rows = db.session.execute(_known_entries(ctx.source, ids)).all()
            medias = {m.id: m for m in _full(media_id for _sid, media_id in rows)}
            for source_id, media_id in rows:
                if media_id in medias:
                    index.by_source[source_id] = medias[media_id]
            found.update(medias)
            rest = [i for i in batch if not any(sid in index.by_source for sid in i.source_ids)]
    wanted: dict[str, set[Any]] = {name: set() for name in ID_ORDER}
    for item in rest:
        for name, value in item.ids.items():
            wanted[name].add(value)
        ean = item.columns.get("ean13")
        if ean and ean[:3] in ("978", "979"):
            wanted["isbn13"].add(ean)  # a book's barcode is its ISBN-13
        if item.columns.get("isbn13"):
            wanted["ean13"].add(item.columns["isbn13"])
    id_matches: set[int] = set()
    for name, values in wanted.items():
        if values:
            # The identifier's own index finds the rows; the library is checked here, because with the library in
            # the WHERE clause SQLite's planner walks a whole (library_id, …) index instead.
            column = getattr(Media, name)
            id_matches.update(media_id for media_id, library_id in db.session.execute(
                select(Media.id, Media.library_id).where(any_of(column, values))) if library_id == ctx.library_id)
    for media in _full(id_matches - set(found)):
        found[media.id] = media
    for media in sorted(found.values(), key=lambda m: m.id):
        index.add(media)
    # Title + year, for rows no identifier matched: key columns first, full rows only for the first of each key.
    untitled = [i for i in rest if not any(index.by_id.get((i.media_type, n, v)) for n, v in i.ids.items())]
    if untitled:
        keys = {i.title_key for i in untitled}
        wanted = {(i.media_type, make_sort_title(i.columns["title"]), i.columns["year"]) for i in untitled}
        first: dict[tuple[str, str, int | None], int] = {}
        for media_id, media_type, title, year in _same_titles(ctx.library_id, wanted):
            key = (media_type, title_key(title), year)
            if key in keys:
                first.setdefault(key, media_id)
        for media in _full(set(first.values()) - set(found)):
            found[media.id] = media
            index.add(media)
    if ctx.source and found:
        # By the media_id index; the source is checked here (SQLite's planner would walk the whole source otherwise).
        index.same_source = {found[media_id] for media_id, source in db.session.execute(
            select(MediaSource.media_id, MediaSource.source).where(any_of(MediaSource.media_id, found)))
            if source == ctx.source}
    index.loaded = set(found)
    if found:
        index.with_people = set(db.session.scalars(select(MediaPerson.media_id).where(
            any_of(MediaPerson.media_id, found)).distinct()))
        index.with_genres = set(db.session.scalars(select(MediaGenre.media_id).where(
            any_of(MediaGenre.media_id, found)).distinct()))
    return index


def _known_entries(source: str, ids: set[str]) -> Any:
    """(source id, item id) of the entries of `source` among `ids`, by the (source, source id) index."""
    return matching(select(MediaSource.source_id, MediaSource.media_id).where(MediaSource.source == source),
                    MediaSource.source_id, ids)


def _same_titles(library_id: int, wanted: set[tuple[str, str, int | None]]) -> list[Any]:
    """(id, type, title, year) of the library's items whose (type, sort title, year) is one of `wanted`, by id.

    The batch's keys are looked up in the (library, type, sort title) index: only the items sharing all three
    come back. (By sort title alone, a catalog whose titles repeat returned tens of thousands of rows per batch;
    an SQL OR of a thousand tuples makes PostgreSQL compare every row with every tuple.)"""
    if db.session.get_bind().dialect.name == "postgresql":
        return list(db.session.execute(_title_matches(library_id, wanted)))
    # SQLite: CROSS JOIN keeps the keys as the outer loop (its planner, without statistics, would rather walk the
    # whole library and look each item up in the keys), and "+media.year" keeps it on the sort-title index. The
    # keys are padded to a power of two with rows that match nothing, so a few statements are prepared, not one
    # per batch size; a larger chunk setting goes in slices (SQLite takes at most 32,766 parameters).
    keys = list(wanted)
    found: list[Any] = []
    for start in range(0, len(keys), _TITLE_KEYS_MAX):
        rows = keys[start:start + _TITLE_KEYS_MAX]
        size = 1 << max(0, len(rows) - 1).bit_length()
        rows += [(None, None, None)] * (size - len(rows))
        sql = (f"WITH wanted(media_type, sort_title, year) AS (VALUES {', '.join(['(?, ?, ?)'] * size)}) "  # nosec
               "SELECT media.id, media.media_type, media.title, media.year FROM wanted CROSS JOIN media "
               "ON media.library_id = ? AND media.media_type = wanted.media_type "
               "AND media.sort_title = wanted.sort_title AND +media.year IS wanted.year")
        found += db.session.connection().exec_driver_sql(sql, (*(v for row in rows for v in row), library_id))
    return sorted(found, key=lambda row: row[0])


_TITLE_KEYS_MAX = 4096


def _title_matches(library_id: int, wanted: set[tuple[str, str, int | None]]) -> Any:
    """PostgreSQL: `_same_titles`'s query, one probe of the (library, type, sort title) index per key."""
    keys = unnest_table("wanted", (("media_type", String()), ("sort_title", String()), ("year", Integer())),
                        list(wanted))
    query = each_key(keys, select(Media.id, Media.media_type, Media.title, Media.year).where(
        Media.library_id == library_id, Media.media_type == keys.c.media_type,
        Media.sort_title == keys.c.sort_title, Media.year.is_not_distinct_from(keys.c.year)))
    return query.order_by(query.selected_columns.id)


def _conflicts(item: Incoming, media: Media) -> str | None:
    """The first strong identifier both have and that differs, or None."""
    for name in STRONG_IDS:
        mine = item.ids.get(name)
        theirs = media.plex_guid if name == "plex_guid" else getattr(media, name)
        if mine and theirs and mine != theirs:
            return name
    return None


def _find(item: Incoming, index: _Index) -> tuple[Media | None, str | None, str | None]:
    """(candidate, match mode, matched by) — or (None, mode, reason) when a new item is to be made."""
    for name, value in item.ids.items():
        media = index.by_id.get((item.media_type, name, value))
        if media is None and name == "isbn13":
            media = index.by_id.get((item.media_type, "ean13", value))
        if media is None and name == "ean13" and value[:3] in ("978", "979"):
            media = index.by_id.get((item.media_type, "isbn13", value))
        if media is not None:
            conflict = _conflicts(item, media)
            if conflict:
                return None, IDENTIFIER_CONFLICT, conflict
            return media, MATCHED_BY_IDENTIFIER, name
    mode = FALLBACK_AFTER_IDENTIFIER if item.has_identifier else FALLBACK_TITLE_ONLY
    media = index.by_title.get(item.title_key)
    if media is None:
        return None, mode, None
    conflict = _conflicts(item, media)
    if conflict:
        return None, IDENTIFIER_CONFLICT, conflict
    return media, mode, "title+year"


def _fill(media: Media | NewItem, item: Incoming, index: _Index, people: dict[str, Any],
          genres: dict[str, Any]) -> list[str]:
    """Fill the item's empty fields from the row; returns the names of the fields filled."""
    filled: list[str] = []
    columns = item.columns
    for name in COLUMNS:
        if name in ("media_type", "copies", "type_details", "tmdb_media_type"):
            continue
        new = columns.get(name)
        if new in EMPTY or getattr(media, name) not in EMPTY:
            continue
        if name == "tmdb_id":
            media.tmdb_media_type = columns.get("tmdb_media_type")
        setattr(media, name, new)
        filled.append(name)
    details = dict(media.type_details or {})
    added = {k: v for k, v in columns["type_details"].items() if details.get(k) in EMPTY}
    if added:
        media.type_details = {**details, **added}
        filled.extend(f"details.{k}" for k in added)
    if item.rating is not None and media.rating is None:
        media.rating = item.rating
        filled.append("rating")
    if item.plex_guid and not media.plex_guid:
        media.plex_guid = item.plex_guid
        filled.append("plex_guid")
    new = isinstance(media, NewItem)
    if item.cleaned.people and not (media.people if new else media.id in index.with_people):
        media.people = list(item.cleaned.people) if new else _credits(item.cleaned.people, people)
        if not new:
            index.with_people.add(media.id)
        filled.append("people")
    if item.cleaned.genres and not (media.genres if new else media.id in index.with_genres):
        media.genres = list(item.cleaned.genres) if new else [  # ORM genres for an existing item's relationship
            db.session.get(Genre, g.id) for g in ordered_genres(item.cleaned.genres, genres)]
        if not new:
            index.with_genres.add(media.id)
        filled.append("genres")
    return filled


def _credits(credits: Iterable[Credit], people: dict[str, Any]) -> list[MediaPerson]:
    return [MediaPerson(person_id=person.id, role=credit.role, position=position)
            for person, credit, position in ordered_credits(credits, people)]


_INSERT_COLUMNS = (*COLUMNS, "library_id", "added_by", "import_source", "rating", "plex_guid")
_insert_values = attrgetter(*_INSERT_COLUMNS)


class NewItem:
    """An item this batch creates: plain values until the batch inserts them all at once (a Core insert; ORM
    objects cost more than the rest of an import together). It has the attributes dedupe and "fill" look at."""

    # Slots, not an instance dict: a chunk holds thousands of these (a dict of 30 attributes is four times the size).
    __slots__ = (*COLUMNS, "id", "library_id", "added_by", "import_source", "rating", "plex_guid", "people", "genres",
                 "variant_resolutions")

    def __init__(self, ctx: BatchContext, item: Incoming):
        self.id: int | None = None
        columns = item.columns
        for name in COLUMNS:
            setattr(self, name, columns[name])
        self.library_id, self.added_by, self.import_source = ctx.library_id, ctx.added_by, ctx.import_source
        self.rating, self.plex_guid = item.rating, item.plex_guid
        self.people: list[Credit] = list(item.cleaned.people or ())
        self.genres: list[str] = list(item.cleaned.genres or ())
        self.variant_resolutions = [v.get("resolution") for v in item.variants]

    def row(self, names: list[str]) -> dict[str, Any]:
        """The item's media row; `names`: its people's names, as its search text lists them."""
        values = dict(zip(_INSERT_COLUMNS, _insert_values(self), strict=True))
        values["id"] = self.id
        values["sort_title"] = make_sort_title(self.title)
        values["search_text"] = compose_search_text(
            title=self.title, original_title=self.original_title, people=names, details=self.type_details,
            notes=self.notes, identifiers=(self.isbn13, self.ean13, self.asin))
        values.update(derived_columns(self.media_type, self.formats, self.type_details, self.variant_resolutions))
        return values


def _new_ids(count: int) -> list[int]:
    """Ids for new items. PostgreSQL: from the table's sequence. SQLite: after the highest id; the batch holds the
    database's write lock (see services.imports), so no other insert can take them meanwhile."""
    if db.session.get_bind().dialect.name == "postgresql":
        return list(db.session.scalars(text("SELECT nextval(pg_get_serial_sequence('media', 'id')) "
                                            "FROM generate_series(1, :n)"), {"n": count}))
    highest = db.session.scalar(select(func.max(Media.id))) or 0
    return list(range(highest + 1, highest + 1 + count))


def _insert_new(news: list[NewItem], people: dict[str, Any], genres: dict[str, Any],
                while_writing: Meanwhile | None) -> None:
    """Insert the batch's new items with their people and genres; each NewItem gets its id."""
    if not news:
        return
    for new, media_id in zip(news, _new_ids(len(news)), strict=True):
        new.id = media_id
    credit_rows: list[dict[str, Any]] = []
    genre_rows: list[dict[str, Any]] = []

    def media_rows() -> Iterator[dict[str, Any]]:
        for new in news:
            credits = ordered_credits(new.people, people)  # once per item: its search text and its credit rows
            credit_rows.extend([{"media_id": new.id, "person_id": person.id, "role": credit.role,
                                 "position": position} for person, credit, position in credits])
            genre_rows.extend([{"media_id": new.id, "genre_id": genre.id}
                               for genre in ordered_genres(new.genres, genres)])
            yield new.row([person.name for person, _credit, _position in credits])

    # Ids are chosen first, so the rows go in together (on SQLite the full-text trigger flushes its index once per
    # statement: a statement per row made imports four times slower). On PostgreSQL each item's row goes to the
    # server as soon as it is made (the credit and genre rows are gathered meanwhile).
    insert_stream(Media.__table__, media_rows(), meanwhile=while_writing)
    if credit_rows:
        insert_rows(MediaPerson.__table__, credit_rows)
    if genre_rows:
        insert_rows(MediaGenre.__table__, genre_rows)


def write_batch(ctx: BatchContext, items: list[Incoming | RowError]) -> list[Outcome]:
    """Decide and write a batch (the caller commits or rolls back). One Outcome per item, in order."""
    valid = [i for i in items if isinstance(i, Incoming)]
    index = _load_candidates(ctx, valid)
    matched_ids = index.loaded
    people = get_or_create_people((c.name for i in valid for c in (i.cleaned.people or ())), light=True)
    genres = get_or_create_genres((g for i in valid for g in (i.cleaned.genres or ())), light=True)
    existing_meta: dict[int, set[str]] = {}
    if matched_ids:
        for media_id, key in db.session.execute(select(MediaMetadata.media_id, MediaMetadata.key).where(
                any_of(MediaMetadata.media_id, matched_ids))):
            existing_meta.setdefault(media_id, set()).add(key)

    outcomes: list[Outcome] = []
    touched: list[tuple[Outcome, Incoming, Media | NewItem]] = []
    new_sources: list[tuple[str, Media | NewItem]] = []
    news: list[NewItem] = []
    for item in items:
        if isinstance(item, RowError):
            outcomes.append(Outcome("failed", message=str(item)))
            continue
        outcome, media = _decide(ctx, item, index, people, genres)
        outcomes.append(outcome)
        if media is None:
            continue
        if outcome.outcome == "created" and isinstance(media, NewItem):
            news.append(media)
        touched.append((outcome, item, media))
        for source_id in item.source_ids if ctx.source else ():
            if source_id not in index.by_source:
                index.by_source[source_id] = media
                index.same_source.add(media)
                new_sources.append((source_id, media))
    db.session.flush()  # changes to existing items
    _insert_new(news, people, genres, ctx.while_writing)
    gained = _add_seasons_and_variants(ctx, touched, index.loaded)
    metadata_rows = []
    refreshed: set[int] = set()
    for outcome, item, media in touched:
        outcome.media_id = media.id
        if outcome.message and "{item}" in outcome.message:
            outcome.message = outcome.message.replace("{item}", str(media.id))
        have = existing_meta.setdefault(media.id, set())
        for key, value in item.metadata.items():
            if key not in have:
                have.add(key)
                metadata_rows.append({"media_id": media.id, "key": key, "value": value})
        if media.id in gained and outcome.outcome in ("skipped", "updated"):
            added = "added " + gained[media.id]
            outcome.message = added if outcome.outcome == "skipped" else f"{outcome.message}; {added}"
            outcome.outcome = "updated"
        if outcome.outcome == "updated" and isinstance(media, Media) and media.id not in refreshed:
            refreshed.add(media.id)
            db.session.expire(media, ["seasons"])
            refresh_media_index(media)
    if new_sources:
        insert_rows(MediaSource.__table__, [
            {"media_id": media.id, "source": ctx.source, "source_id": source_id} for source_id, media in new_sources])
    if metadata_rows:
        insert_rows(MediaMetadata.__table__, metadata_rows)
    db.session.flush()
    return outcomes


def _add_seasons_and_variants(ctx: BatchContext, touched: list[tuple[Outcome, Incoming, Media | NewItem]],
                              loaded: set[int]) -> dict[int, str]:
    """Insert the seasons and files (variants) items do not have yet; returns what each item gained, by id.
    A season or file already recorded is left as it is (a member may have edited it)."""
    wanted = [(item, media) for _o, item, media in touched if item.seasons or item.variants]
    if not wanted:
        return {}
    source = ctx.source or "import"
    ids = {media.id for _i, media in wanted if media.id in loaded}
    have_seasons: set[tuple[int, int]] = set()
    have_variants: set[tuple[int, str]] = set()
    if ids:
        have_seasons = {tuple(r) for r in db.session.execute(select(
            MediaSeason.media_id, MediaSeason.season_number).where(any_of(MediaSeason.media_id, ids)))}
        have_variants = {tuple(r) for r in db.session.execute(select(
            MediaVariant.media_id, MediaVariant.source_key).where(any_of(MediaVariant.media_id, ids),
                                                                  MediaVariant.source == source))}
    season_rows: list[dict[str, Any]] = []
    variant_rows: list[dict[str, Any]] = []
    gained: dict[int, list[str]] = {}
    for item, media in wanted:
        for number, available, expected in item.seasons:
            if (media.id, number) not in have_seasons:
                have_seasons.add((media.id, number))
                season_rows.append({"media_id": media.id, "season_number": number, "available_episodes": available,
                                    "expected_episodes": expected, "complete": bool(
                                        expected is not None and available is not None and available >= expected)})
                gained.setdefault(media.id, []).append("seasons")
        for variant in item.variants:
            if (media.id, variant["source_key"]) not in have_variants:
                have_variants.add((media.id, variant["source_key"]))
                variant_rows.append({"media_id": media.id, "source": source, **variant})
                gained.setdefault(media.id, []).append("files")
    if season_rows:
        insert_rows(MediaSeason.__table__, season_rows)
    if variant_rows:
        insert_rows(MediaVariant.__table__, variant_rows)
    return {media_id: " and ".join(dict.fromkeys(kinds)) for media_id, kinds in gained.items()}


def _decide(ctx: BatchContext, item: Incoming, index: _Index, people: dict[str, Any],
            genres: dict[str, Any]) -> tuple[Outcome, Media | NewItem | None]:
    known = next((sid for sid in item.source_ids if sid in index.by_source), None)
    if known is not None:
        media = index.by_source[known]
        filled = _fill(media, item, index, people, genres)
        mode, by = MATCHED_BY_IDENTIFIER, f"source:{ctx.source}"
        if filled:
            return Outcome("updated", mode, by, "filled " + ", ".join(filled)), media
        return Outcome("skipped", mode, by, "already imported, nothing new"), media
    media, mode, by = _find(item, index)
    if media is None:
        media = NewItem(ctx, item)
        index.add(media)  # type: ignore[arg-type]
        message = f"new item: its {by} differs from a matching item's" if mode == IDENTIFIER_CONFLICT else "new item"
        return Outcome("created", mode, by if mode == IDENTIFIER_CONFLICT else None, message), media
    if ctx.match_is_skip:
        return Outcome("skipped", mode, by, "already in the catalog (item {item})"), media
    filled = _fill(media, item, index, people, genres)
    if ctx.source and item.source_id and media in index.same_source:
        media.copies = (media.copies or 1) + 1
        note = f"another copy of item {{item}} (now {media.copies} copies)"
        return Outcome("updated", mode, by, note + ("; filled " + ", ".join(filled) if filled else "")), media
    if filled:
        return Outcome("updated", mode, by, "merged into item {item}: filled " + ", ".join(filled)), media
    return Outcome("skipped", mode, by, "already in the catalog (item {item}), nothing new"), media


__all__ = ["BatchContext", "Incoming", "Outcome", "RowError", "convert", "title_key", "with_title_keys", "write_batch",
           "MATCHED_BY_IDENTIFIER", "FALLBACK_AFTER_IDENTIFIER", "FALLBACK_TITLE_ONLY", "IDENTIFIER_CONFLICT"]
