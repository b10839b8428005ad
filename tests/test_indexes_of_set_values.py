"""The identifier, filter and import-row indexes hold only rows that have a value (migration 0010), and the queries
that ask for a value still find their rows through them, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from flask import Flask
from sqlalchemy import select, text

from collectz.extensions import db
from collectz.models import ImportRow, Media
from collectz.services.bulk_rows import any_of
from tests.conftest import query_plan

# index -> (the column whose value it needs, a query that asks that column for a value)
QUERIES = {
    "ix_media_isbn13": ("isbn13", lambda: select(Media.id, Media.library_id).where(
        any_of(Media.isbn13, ["9780261102217"]))),
    "ix_media_ean13": ("ean13", lambda: select(Media.id).where(Media.ean13 == "5051892002011")),
    "ix_media_asin": ("asin", lambda: select(Media.id).where(any_of(Media.asin, ["B000TZ2DRE", "B01"]))),
    "ix_media_plex_guid": ("plex_guid", lambda: select(Media.id).where(Media.plex_guid == "plex://movie/1")),
    "ix_media_tmdb": ("tmdb_id", lambda: select(Media.id).where(Media.tmdb_media_type == "movie",
                                                                Media.tmdb_id == 550)),
    "ix_media_platform": ("platform", lambda: select(Media.id).where(Media.library_id == 1,
                                                                     Media.platform == "Switch").order_by(Media.id)),
    "ix_media_resolution": ("resolution", lambda: select(Media.id).where(Media.library_id == 1,
                                                                         Media.resolution == "4K")),
    "ix_media_location": ("location", lambda: select(Media.id).where(Media.library_id == 1,
                                                                     Media.location == "Shelf A")),
    "ix_media_signed": ("signed_by", lambda: select(Media.id).where(Media.library_id == 1, Media.signed_by > "")),
    "ix_import_rows_media_id": ("media_id", lambda: select(ImportRow.id).where(ImportRow.media_id == 7)),
}


def index_definition(name: str) -> str:
    """How the database describes an index (its WHERE clause included)."""
    if db.engine.dialect.name == "postgresql":
        return db.session.scalar(text("SELECT indexdef FROM pg_indexes WHERE indexname = :n"), {"n": name})
    return db.session.scalar(text("SELECT sql FROM sqlite_master WHERE type = 'index' AND name = :n"), {"n": name})


@pytest.mark.parametrize("name", sorted(QUERIES))
def test_the_index_holds_rows_with_a_value_and_the_query_for_a_value_uses_it(ctx: Flask, name: str) -> None:
    column, query = QUERIES[name]
    assert f"{column} IS NOT NULL" in index_definition(name)
    if db.engine.dialect.name == "postgresql":
        db.session.execute(text("SET LOCAL enable_seqscan = off"))  # a test's tables are tiny
    assert name in query_plan(query())
    db.session.rollback()
