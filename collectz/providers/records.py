"""The one normalised shape every provider returns: our dataclasses, never a provider's raw JSON.

TMDB, Plex, Open Library, MusicBrainz… each turn their answers into a `Candidate` at their own boundary, so forms,
matching and imports only ever see one shape. `Candidate.to_record()` turns it into an import Record (the contract
in `collectz.importers`), which `services.import_writer.convert` validates like any other row.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

from collectz.models.media_types import MEDIA_TYPES, PERSON_ROLES, TMDB_TYPES

# Identifiers that are item columns, and the Record key each goes to; any other identifier (imdb_id, tvdb_id,
# wikidata_id, an Open Library id…) is kept as item metadata under its own name.
RECORD_IDENTIFIERS: dict[str, str] = {
    "isbn13": "isbn",
    "isbn": "isbn",
    "ean13": "ean",
    "upc": "upc",
    "asin": "asin",
    "tmdb_id": "tmdb_id",
    "plex_guid": "plex_guid",
    "calibre_id": "calibre_id",
}


@dataclass
class EpisodeInfo:
    """One episode of a season."""

    number: int
    title: str | None = None
    air_date: date | None = None


@dataclass
class SeasonInfo:
    """One season of a series; `episodes` is filled only when the provider was asked for them."""

    number: int
    episode_count: int | None = None
    name: str | None = None
    air_date: date | None = None
    episodes: list[EpisodeInfo] = field(default_factory=list)


@dataclass
class Candidate:
    """A provider's description of one item, normalised: what a form pre-fills and an import writes.

    `media_type` is our key (`movie`, `tv_series`, `book`, … from models.media_types), `people` holds
    (role, name) pairs with roles from PERSON_ROLES, `details` the type's detail fields, `identifiers` every id the
    provider knows ("tmdb_id", "imdb_id", "tvdb_id", "isbn13", "ean13", "upc", "asin", "plex_guid", …) as text, and
    `extra` anything else worth keeping as item metadata (a film's composer, say). Checked on creation so that a
    provider's mapping mistake fails in its own tests rather than as a rejected import row.
    """

    provider: str
    provider_id: str
    media_type: str
    title: str
    original_title: str | None = None
    year: int | None = None
    release_date: date | None = None
    overview: str | None = None
    runtime: int | None = None
    rating: float | None = None
    genres: list[str] = field(default_factory=list)
    people: list[tuple[str, str]] = field(default_factory=list)
    identifiers: dict[str, str] = field(default_factory=dict)
    cover_url: str | None = None
    seasons: list[SeasonInfo] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.media_type not in MEDIA_TYPES:
            raise ValueError(f"{self.provider}: {self.media_type!r} is not a media type")
        unknown = sorted({role for role, _name in self.people if role not in PERSON_ROLES})
        if unknown:
            raise ValueError(f"{self.provider}: unknown person roles {', '.join(unknown)}")
        if self.rating is not None and not 0 <= self.rating <= 10:
            raise ValueError(f"{self.provider}: rating {self.rating} is not between 0 and 10")
        if self.year is None and self.release_date is not None:
            self.year = self.release_date.year

    def people_in(self, role: str) -> list[str]:
        """The names credited in one role, in order."""
        return [name for person_role, name in self.people if person_role == role]

    def to_record(self, *, source: str | None = None, source_id: str | None = None) -> dict[str, Any]:
        """An import Record (see `collectz.importers`) for this candidate.

        `source_id` is the entry's id in the import's source. When the import's `source` is this candidate's own
        provider (a Plex import of Plex items), the provider's id is that entry id unless another is given.
        Empty values are left out: in a Record, absent means "not given".
        """
        if source_id is None and source is not None and source == self.provider:
            source_id = self.provider_id
        record: dict[str, Any] = {
            "source_id": source_id,
            "media_type": self.media_type,
            "title": self.title,
            "original_title": self.original_title if self.original_title != self.title else None,
            "year": self.year,
            "release_date": self.release_date.isoformat() if self.release_date else None,
            "overview": self.overview,
            "runtime": self.runtime,
            "rating": None if self.rating is None else f"{self.rating:g}",
            "genres": list(dict.fromkeys(self.genres)),
            "people": [[role, name] for role, name in dict.fromkeys((r, n) for r, n in self.people)],
            "details": {key: value for key, value in self.details.items() if value not in (None, "")},
            "cover_url": self.cover_url,
            "seasons": [_season_record(season) for season in self.seasons],
        }
        extra = dict(self.extra)
        for name, value in self.identifiers.items():
            if value in (None, ""):
                continue
            key = RECORD_IDENTIFIERS.get(name)
            if key is None:
                extra.setdefault(name, str(value))
            else:
                record.setdefault(key, str(value))
        if record.get("tmdb_id"):
            record["tmdb_media_type"] = TMDB_TYPES.get(self.media_type)
        record["extra"] = {key: str(value) for key, value in extra.items() if value not in (None, "")}
        return {key: value for key, value in record.items() if value not in (None, "", [], {})}


def _season_record(season: SeasonInfo) -> dict[str, Any]:
    """A season as a Record carries it: the summary, not the episodes (an import row stays small)."""
    summary = {"number": season.number, "episode_count": season.episode_count, "name": season.name,
               "air_date": season.air_date.isoformat() if season.air_date else None}
    return {key: value for key, value in summary.items() if value is not None}


def parse_date(value: Any) -> date | None:
    """A provider's ISO date ("1999-10-15", or a timestamp starting with one) as a date; None when empty or
    unreadable: providers send "" for unknown dates, and a bad date must not sink the whole answer."""
    if not isinstance(value, str) or len(value) < 10:
        return None
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        return None


def clean_text(value: Any) -> str | None:
    """A provider's text with surrounding space removed; None when missing or blank."""
    if not isinstance(value, str):
        return None
    return value.strip() or None


def positive_int(value: Any) -> int | None:
    """A count or duration that providers send as 0 (or null) when they do not know it."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = int(value)
    except ValueError:
        return None
    return number if number > 0 else None


__all__ = ["Candidate", "EpisodeInfo", "SeasonInfo", "RECORD_IDENTIFIERS", "clean_text", "parse_date",
           "positive_int"]


# --- reading provider JSON defensively (one copy for every provider) --------------------------------------------


def as_dict(value: Any) -> dict[str, Any]:
    """`value` when a provider sent an object there, else {} (answers are untrusted: a field may be anything)."""
    return value if isinstance(value, dict) else {}


def as_list(value: Any) -> list[Any]:
    """`value` when a provider sent a list there, else []."""
    return value if isinstance(value, list) else []


def name_of(entry: Any) -> str | None:
    """The cleaned "name" of an object entry (a genre, a company...), or None."""
    return clean_text(entry.get("name")) if isinstance(entry, dict) else None


def path_id(value: int | str, what: str) -> int:
    """A provider id as a positive int: it goes into a URL path or a query, so nothing else may get through.
    ValueError names it (`what`: "a TMDB id", "a Discogs release id"...)."""
    text = str(value).strip()
    if isinstance(value, bool) or not text.isdigit() or int(text) < 1:
        raise ValueError(f"{value!r} is not {what} (a positive whole number)")
    return int(text)


def jsonable(value: Any) -> Any:
    """Plain JSON values of a dataclass dump: dates as ISO text, tuples as lists."""
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value
