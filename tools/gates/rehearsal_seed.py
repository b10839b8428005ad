"""Seed rows for the migration rehearsal: SEED for the tables whose data migrations read, and a generic row
(or generic values for required columns SEED leaves out) for everything else, whatever the revision."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from typing import Any

NOW = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
TODAY = dt.date(2026, 1, 2)

# Rows with meaning (what data migrations look at: titles, people, formats, type details, variants); every other
# table, and every required column not listed, is filled in generically. Columns a revision does not have yet
# are left out, and tables it does not have are skipped.
SEED: dict[str, list[dict[str, Any]]] = {
    "users": [
        {"id": 1, "email": "admin@example.org", "name": "Admin", "role": "admin", "password_hash": "not-a-hash",
         "must_reset": False, "created_at": NOW, "updated_at": NOW},
        {"id": 2, "email": "member@example.org", "name": "Member", "role": "user", "password_hash": "not-a-hash",
         "must_reset": False, "created_at": NOW, "updated_at": NOW},
        {"id": 3, "email": "viewer@example.org", "name": "Viewer", "role": "viewer", "password_hash": "not-a-hash",
         "must_reset": True, "created_at": NOW, "updated_at": NOW},
    ],
    "libraries": [{"id": 2, "name": "Second shelf", "is_default": False, "created_at": NOW}],
    "genres": [{"id": 1, "name": "Science Fiction", "name_key": "science fiction"},
               {"id": 2, "name": "Fantasy", "name_key": "fantasy"}],
    "people": [{"id": 1, "name": "Denis Villeneuve", "name_key": "denis villeneuve"},
               {"id": 2, "name": "Terry Pratchett", "name_key": "terry pratchett"}],
    "media": [
        {"id": 1, "library_id": 1, "media_type": "movie", "title": "Arrival", "sort_title": "arrival", "year": 2016,
         "formats": ["Blu-ray", "4K UHD"], "type_details": {"resolution": "2160p"}, "tmdb_id": 329865,
         "tmdb_media_type": "movie", "copies": 1, "added_by": 2, "notes": "Signed sleeve", "created_at": NOW,
         "updated_at": NOW},
        {"id": 2, "library_id": 1, "media_type": "book", "title": "The Colour of Magic",
         "sort_title": "colour of magic", "year": 1983, "formats": ["Paperback"], "isbn13": "9780552124751",
         "type_details": {"series": "Discworld", "publisher": "Corgi"}, "copies": 2, "added_by": 1,
         "signed_by": "Terry Pratchett", "signed_role": "author", "signed_on": TODAY, "created_at": NOW,
         "updated_at": NOW},
        {"id": 3, "library_id": 2, "media_type": "other", "title": "Board game night", "sort_title": "board game night",
         "formats": [], "type_details": {}, "copies": 1, "added_by": None, "created_at": NOW, "updated_at": NOW},
    ],
    "media_genres": [{"media_id": 1, "genre_id": 1}, {"media_id": 2, "genre_id": 2}],
    "media_people": [{"media_id": 1, "person_id": 1, "role": "director", "position": 0},
                     {"media_id": 2, "person_id": 2, "role": "author", "position": 0}],
    "media_metadata": [{"id": 1, "media_id": 1, "key": "imdb_id", "value": "tt2543164"}],
    "media_sources": [{"id": 1, "media_id": 2, "source": "csv", "source_id": "csv:abc#1", "created_at": NOW}],
    "media_user_state": [{"id": 1, "media_id": 1, "user_id": 2, "rating": 9, "status": "finished",
                          "watchlist": False, "updated_at": NOW}],
    "media_variants": [{"id": 1, "media_id": 1, "source": "plex", "source_key": "/library/metadata/7",
                        "resolution": "4k", "video_codec": "hevc", "size_bytes": 58_000_000_000}],
    "activity_log": [{"id": 1, "actor_id": 1, "action": "media.create", "entity_type": "media", "entity_id": "1",
                      "status": "success", "details": {"title": "Arrival"}, "created_at": NOW}],
    "sync_jobs": [{"id": 1, "kind": "import_csv", "status": "succeeded", "options": {"match": "identifier"},
                   "total": 1, "processed": 1, "created": 1, "updated": 0, "skipped": 0, "failed": 0,
                   "summary": {"created": 1}, "cancel_requested": False, "created_by": 2, "created_at": NOW}],
    "import_rows": [{"id": 1, "job_id": 1, "row_number": 1, "chunk": 0, "outcome": "created",
                     "raw": {"title": "The Colour of Magic"}, "media_id": 2, "updated_at": NOW}],
}


def allowed_values(checks: Sequence[dict[str, Any]]) -> dict[str, str]:
    """The first allowed value of each `column IN (...)` check (SQLite's text, or PostgreSQL's = ANY (ARRAY[...]))."""
    found = {}
    for check in checks:
        sql = check.get("sqltext") or ""
        for pattern in (r"\b(\w+)\s+IN\s*\(\s*'([^']*)'", r"\(?(\w+)\)?(?:::[\w ]+)?\s*=\s*ANY\s*\(+ARRAY\['([^']*)'"):
            for column, value in re.findall(pattern, sql, re.IGNORECASE):
                found.setdefault(column, value)
    return found


def needs_value(column: Any) -> bool:
    if column.nullable or column.server_default is not None:
        return False
    return not (column.primary_key and column.autoincrement in (True, "auto") and not column.foreign_keys
                and _python_type(column) is int and len(column.table.primary_key.columns) == 1)


def _python_type(column: Any) -> type | None:
    try:
        return column.type.python_type
    except NotImplementedError:
        return None


def generic_value(conn: Any, table: Any, column: Any, index: int, allowed: dict[str, str]) -> Any:
    """A value a NOT NULL column accepts: a referenced row's key, an allowed enum value, or one of its type."""
    from sqlalchemy import select

    if column.foreign_keys:
        target = next(iter(column.foreign_keys)).column
        value = conn.execute(select(target).order_by(target).limit(1)).scalar()
        if value is None:
            raise ValueError(f"{column.name} refers to {target.table.name}, which has no rows")
        return value
    if column.name in allowed:
        return allowed[column.name]
    kind = _python_type(column)
    if kind is bool:
        return False
    if kind is int:
        return index + 1
    if kind in (float,) or (kind is not None and kind.__name__ == "Decimal"):
        return 1
    if kind is dt.datetime:
        return NOW
    if kind is dt.date:
        return TODAY
    if kind in (dict, list):
        return {}
    if kind is bytes:
        return b"rehearsal"
    length = getattr(column.type, "length", None) or 64
    return f"rehearsal-{table.name}-{column.name}-{index}"[:length]
