"""A Plex server's selected sections as import Records: movies, TV shows (with their seasons) and music albums.

The source id of an entry is its Plex guid (`ratingKey:<key>` if it has none), so a repeat import maps every entry
back to the item it made, and the same film in two sections ("Movies" and "4K Movies") is one item. The guid goes in
`plex_guid` (a dedupe identifier) only when it names the item worldwide (`plex://…` or a legacy agent's guid); an
unmatched item's `local://…` guid means something on this server only, so such items dedupe by title + year + type.

A show's seasons (episodes owned per season) and an item's files (resolution, codecs, edition) go in the record's
`seasons` and `variants`; the writer keeps them in `media_seasons` / `media_variants`. The rating key is an alternate
source id: an item the server re-matches (its guid changes, `local://…` → `plex://…`) still maps back to its item.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict
from typing import Any

from collectz.importers import Record
from collectz.providers.plex import PlexClient, PlexItem, PlexVariant
from collectz.services.indexing import best_resolution

SOURCE = "plex"
FORMAT = "Digital"  # what a file on a media server is, among the formats a member owns
MEDIA_TYPES = {"movie": "movie", "show": "tv_series", "album": "audio"}
TMDB_MEDIA_TYPES = {"movie": "movie", "show": "tv"}


def iter_records(client: PlexClient, sections: Iterable[Mapping[str, Any]]) -> Iterator[Record]:
    """Records of every item of the selected sections ({key, title, type} as stored), section by section, in the
    server's order (a resumed import reads them again in the same order)."""
    line = 0
    for section in sections:
        for item in client.iter_items(str(section["key"])):
            line += 1
            yield record_of(item, line=line, section_title=section.get("title"))


def count(client: PlexClient, sections: Iterable[Mapping[str, Any]]) -> int:
    """How many records `iter_records` yields, for a job's total (one cheap request per section)."""
    return sum(client.count(str(section["key"])) for section in sections)


def source_id(item: PlexItem) -> str:
    """The entry's stable id on this server: its guid, else its rating key."""
    return item.guid or f"ratingKey:{item.rating_key}"


def record_of(item: PlexItem, *, line: int | None = None, section_title: str | None = None) -> Record:
    """One Plex item as a Record (empty values left out: rows are stored as JSON, thousands at a time)."""
    media_type = MEDIA_TYPES.get(item.type, "other")
    record: Record = {
        "line": line, "source_id": source_id(item), "media_type": media_type, "title": item.title,
        "original_title": item.original_title, "year": item.year,
        "release_date": item.originally_available_at.isoformat() if item.originally_available_at else None,
        "overview": item.summary, "runtime": item.duration_minutes,
        "rating": str(item.rating) if item.rating is not None else None, "formats": [FORMAT],
        "plex_guid": item.guid if item.is_agent_matched else None, "people": _people(item), "genres": item.genres,
        "details": _details(item, media_type), "extra": _extra(item, section_title),
        "seasons": [{"number": number, "available": owned, "expected": expected}
                    for number, owned, expected in item.seasons],
        "variants": [variant_row(v) for v in item.variants],
        "alt_source_ids": [f"ratingKey:{item.rating_key}"] if item.guid and item.rating_key else [],
    }
    if item.ids.get("tmdb_id") and item.type in TMDB_MEDIA_TYPES:
        record["tmdb_id"] = item.ids["tmdb_id"]
        record["tmdb_media_type"] = TMDB_MEDIA_TYPES[item.type]
    return {key: value for key, value in record.items() if value not in (None, "", [], {})}


def _people(item: PlexItem) -> list[list[str]]:
    if item.type == "album":
        return [["artist", item.artist]] if item.artist else []
    return ([["director", name] for name in item.directors] + [["writer", name] for name in item.writers]
            + [["cast", name] for name in item.roles])


def _details(item: PlexItem, media_type: str) -> dict[str, Any]:
    if media_type == "movie":
        details = {"studio": item.studio, "edition": item.edition,
                   "resolution": best_resolution(v.resolution for v in item.variants)}
    elif media_type == "tv_series":
        details = {"network": item.studio}
    elif media_type == "audio":
        details = {"label": item.studio, "track_count": item.leaf_count}
    else:
        details = {}
    return {key: value for key, value in details.items() if value not in (None, "")}


def _extra(item: PlexItem, section_title: str | None) -> dict[str, str]:
    extra = {
        "plex_rating_key": item.rating_key, "plex_section": section_title, "plex_thumb": item.thumb,
        "imdb_id": item.ids.get("imdb_id"), "tvdb_id": item.ids.get("tvdb_id"), "mbid": item.ids.get("mbid"),
        "content_rating": item.content_rating,
    }
    if item.ids.get("tmdb_id") and item.type not in TMDB_MEDIA_TYPES:
        extra["tmdb_id"] = item.ids["tmdb_id"]
    return {key: str(value) for key, value in extra.items() if value not in (None, "")}


VARIANT_COLUMNS = ("source_key", "resolution", "video_codec", "audio_codec", "container", "edition", "file_path",
                   "size_bytes", "duration_ms")


def variant_row(variant: PlexVariant) -> dict[str, Any]:
    """A variant with the names of the `media_variants` columns (source "plex", source_key = the Plex media id)."""
    row = asdict(variant)
    renamed = {"source_key": row.pop("media_id"), "file_path": row.pop("file"), "size_bytes": row.pop("size"), **row}
    return {key: renamed[key] for key in VARIANT_COLUMNS if renamed.get(key) is not None}


__all__ = ["SOURCE", "count", "iter_records", "record_of", "source_id", "variant_row"]
