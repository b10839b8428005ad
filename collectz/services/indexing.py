"""Derived data kept in step with an item: the text search matches and the keys that filters and sorts use.

`refresh_media_index(media)` must run after any change to an item or its people (the media service and the
importers call it). The bench seeder writes rows with Core inserts and uses the same pure functions.

Search runs on indexes that the models cannot describe; migration 0003 makes them:
- SQLite: the FTS5 table `media_fts` (trigram tokenizer, external content = media.search_text), kept in step
  by the triggers `media_fts_ai/_ad/_au`. A later migration that rebuilds `media` on SQLite (a batch "move and
  copy") drops those triggers with the old table, so it must create them again (copy them from 0003).
- PostgreSQL: pg_trgm GIN indexes `ix_media_search_trgm` (media.search_text), `ix_media_formats_trgm`
  (media.formats_key) and `ix_people_name_trgm` (people.name_key).
`include_name` keeps them, and the count generations of services.count_cache, out of autogenerate's model/database
comparison (and out of backups).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import select

from collectz.extensions import db
from collectz.models import Media, MediaVariant

SEARCHED_DETAILS = ("series", "series_title", "publisher", "platform", "label", "developer")

# Resolution classes the browse filter offers (worst to best), and the spellings (type details, Plex variants) of each.
RESOLUTIONS = ("SD", "720p", "1080p", "4K")
_RESOLUTION_SPELLINGS: dict[str, tuple[str, ...]] = {
    "SD": ("sd", "480", "480i", "480p", "576", "576i", "576p", "ntsc", "pal", "dvd"),
    "720p": ("720", "720p", "hd"),
    "1080p": ("1080", "1080p", "1080i", "fhd", "full hd"),
    "4K": ("4k", "2160", "2160p", "uhd", "4k uhd", "uhd 4k"),
}
_RESOLUTION_OF = {spelling: cls for cls, spellings in _RESOLUTION_SPELLINGS.items() for spelling in spellings}

FORMAT_SEP = "\t"  # sorts before any printable character, so "dvd" comes before "dvd-r"

SEARCH_TABLES = ("media_fts",)
# SQLite: the tables whose insert trigger feeds a search table (media → media_fts). FTS5 writes out its pending terms
# at the end of every statement, so bulk inserts send such a table's rows in one statement (services.bulk_rows).
SEARCH_FED_TABLES = frozenset({"media"})
# Made by migrations beside the models, derived from the rows, never backed up: count_generations (0008).
DERIVED_TABLES = ("count_generations",)
SEARCH_INDEXES = ("ix_media_search_trgm", "ix_media_formats_trgm", "ix_people_name_trgm")


def resolution_class(raw: Any) -> str | None:
    """'1080', '1080p', 'FHD' → '1080p'; '2160p', 'UHD' → '4K'; unknown → None."""
    if raw is None:
        return None
    return _RESOLUTION_OF.get(" ".join(str(raw).casefold().split()))


def best_resolution(values: Iterable[Any]) -> str | None:
    """The best resolution class among several spellings (a movie's detail, its files), or None."""
    classes = {resolution_class(v) for v in values} - {None}
    return max(classes, key=RESOLUTIONS.index) if classes else None


def format_key(name: str) -> str:
    """A format name as filters compare it: case and spacing folded."""
    return " ".join(name.casefold().split())


def formats_key(formats: Iterable[str] | None) -> str | None:
    """Owned formats, folded and tab-delimited ('\\tblu-ray\\tdvd\\t'), or None when there are none."""
    keys: list[str] = []
    for name in formats or ():
        key = format_key(str(name)).replace(FORMAT_SEP, " ")
        if key and key not in keys:
            keys.append(key)
    if not keys:
        return None
    value = FORMAT_SEP
    for key in keys:
        if len(value) + len(key) + 1 > 255:
            break
        value += key + FORMAT_SEP
    return value if value != FORMAT_SEP else None


def compose_search_text(
    *,
    title: str | None,
    original_title: str | None = None,
    people: Iterable[str] = (),
    details: Mapping[str, Any] | None = None,
    notes: str | None = None,
    identifiers: Iterable[str | None] = (),
) -> str:
    """Title, original title, people, series (and similar), notes and identifiers, lower-cased."""
    details = details or {}
    parts: list[str] = [title or "", original_title or ""]
    parts += [name for name in people if name]
    parts += [str(details[key]) for key in SEARCHED_DETAILS if details.get(key)]
    parts += [notes or ""]
    parts += [value for value in identifiers if value]
    return " \n".join(p.strip() for p in parts if p and p.strip()).casefold()


def derived_columns(media_type: str, formats: Iterable[str] | None, details: Mapping[str, Any] | None,
                    variant_resolutions: Iterable[str | None] = ()) -> dict[str, str | None]:
    """The filter/sort keys of an item: formats_key, platform, and its best resolution class (from the
    "resolution" detail and the resolutions of its variants)."""
    details = details or {}
    platform = str(details.get("platform") or "").strip()[:100] or None
    return {
        "formats_key": formats_key(formats),
        "platform": platform,
        "resolution": best_resolution([details.get("resolution"), *variant_resolutions]),
    }


def build_search_text(media: Media) -> str:
    """Title, original title, people, series (and similar), notes and identifiers, lower-cased."""
    return compose_search_text(
        title=media.title,
        original_title=media.original_title,
        people=[mp.person.name for mp in media.people if mp.person is not None],
        details=media.type_details,
        notes=media.notes,
        identifiers=(media.isbn13, media.ean13, media.asin),
    )


def _variant_resolutions(media: Media) -> list[str]:
    if media.id is None:
        return []
    with db.session.no_autoflush:
        return list(db.session.scalars(select(MediaVariant.resolution).where(
            MediaVariant.media_id == media.id, MediaVariant.resolution.is_not(None))))


def refresh_media_index(media: Media) -> None:
    """Recompute what search matches and what filters/sorts compare; call after any change to an item, its people
    or its variants (files)."""
    media.search_text = build_search_text(media)
    derived = derived_columns(media.media_type or "other", media.formats, media.type_details,
                              _variant_resolutions(media))
    for column, value in derived.items():
        setattr(media, column, value)


def include_name(name: str | None, type_: str, parent_names: Mapping[str, Any]) -> bool:
    """Alembic hook: leave the hand-made search objects (FTS5 tables, trigram indexes) out of autogenerate."""
    if type_ == "table" and name and any(name == t or name.startswith(t + "_") for t in SEARCH_TABLES):
        return False
    if type_ == "table" and name in DERIVED_TABLES:
        return False
    if type_ == "index" and name in SEARCH_INDEXES:
        return False
    return True
