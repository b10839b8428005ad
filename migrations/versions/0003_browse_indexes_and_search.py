"""browse indexes and search

Filter/sort keys derived from each item (formats_key, platform, resolution) with the indexes browsing needs,
and the search indexes the models cannot describe:
- SQLite: FTS5 table media_fts (trigram tokenizer) over media.search_text, kept in step by triggers;
- PostgreSQL: the pg_trgm extension and GIN trigram indexes on media.search_text, media.formats_key
  and people.name_key.
Existing rows get their derived columns and search text computed here.

A later revision that rebuilds `media` on SQLite (a batch "move and copy") drops the triggers with the old table:
it must create them again (SQLITE_FTS below).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25 19:03:55.336501
"""

import json

from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

SQLITE_FTS = [
    "CREATE VIRTUAL TABLE media_fts USING fts5(search_text, content='media', content_rowid='id', "
    "tokenize='trigram')",
    """CREATE TRIGGER media_fts_ai AFTER INSERT ON media BEGIN
         INSERT INTO media_fts(rowid, search_text) VALUES (new.id, new.search_text);
       END""",
    """CREATE TRIGGER media_fts_ad AFTER DELETE ON media BEGIN
         INSERT INTO media_fts(media_fts, rowid, search_text) VALUES ('delete', old.id, old.search_text);
       END""",
    """CREATE TRIGGER media_fts_au AFTER UPDATE OF search_text ON media BEGIN
         INSERT INTO media_fts(media_fts, rowid, search_text) VALUES ('delete', old.id, old.search_text);
         INSERT INTO media_fts(rowid, search_text) VALUES (new.id, new.search_text);
       END""",
]
SQLITE_FTS_DROP = [
    "DROP TRIGGER IF EXISTS media_fts_au",
    "DROP TRIGGER IF EXISTS media_fts_ad",
    "DROP TRIGGER IF EXISTS media_fts_ai",
    "DROP TABLE IF EXISTS media_fts",
]
POSTGRES_TRGM = [
    "CREATE EXTENSION IF NOT EXISTS pg_trgm",
    "CREATE INDEX ix_media_search_trgm ON media USING gin (search_text gin_trgm_ops)",
    "CREATE INDEX ix_media_formats_trgm ON media USING gin (formats_key gin_trgm_ops)",
    "CREATE INDEX ix_people_name_trgm ON people USING gin (name_key gin_trgm_ops)",
]
# The extension stays: other objects may use it, and dropping it needs more rights than using it.
POSTGRES_TRGM_DROP = [
    "DROP INDEX IF EXISTS ix_people_name_trgm",
    "DROP INDEX IF EXISTS ix_media_formats_trgm",
    "DROP INDEX IF EXISTS ix_media_search_trgm",
]

# A frozen copy of services/indexing.py as of this revision, so the backfill never changes meaning.
SEARCHED_DETAILS = ("series", "series_title", "publisher", "platform", "label", "developer")
RESOLUTIONS = ("SD", "720p", "1080p", "4K")
RESOLUTION_OF = {
    **dict.fromkeys(("sd", "480", "480i", "480p", "576", "576i", "576p", "ntsc", "pal", "dvd"), "SD"),
    **dict.fromkeys(("720", "720p", "hd"), "720p"),
    **dict.fromkeys(("1080", "1080p", "1080i", "fhd", "full hd"), "1080p"),
    **dict.fromkeys(("4k", "2160", "2160p", "uhd", "4k uhd", "uhd 4k"), "4K"),
}


def _formats_key(formats):
    keys = []
    for name in formats or ():
        key = " ".join(str(name).casefold().split())
        if key and key not in keys:
            keys.append(key)
    value = "\t"
    for key in keys:
        if len(value) + len(key) + 1 > 255:
            break
        value += key + "\t"
    return value if value != "\t" else None


def _json(value, default):
    if value is None:
        return default
    return json.loads(value) if isinstance(value, str) else value


def _backfill(bind):
    media = sa.table("media", *(sa.column(c) for c in (
        "id", "title", "original_title", "notes", "formats", "type_details", "isbn13", "ean13", "asin",
        "search_text", "formats_key", "platform", "resolution")))
    names = {}
    variants = {}
    for media_id, resolution in bind.execute(sa.text(
            "SELECT media_id, resolution FROM media_variants WHERE resolution IS NOT NULL")):
        variants.setdefault(media_id, []).append(resolution)
    people = sa.text("SELECT mp.media_id, p.name FROM media_people mp JOIN people p ON p.id = mp.person_id "
                     "ORDER BY mp.media_id, mp.position")
    for media_id, name in bind.execute(people):
        names.setdefault(media_id, []).append(name)
    rows = bind.execute(sa.select(media.c.id, media.c.title, media.c.original_title, media.c.notes,
                                  media.c.formats, media.c.type_details, media.c.isbn13, media.c.ean13,
                                  media.c.asin)).all()
    updates = []
    for row in rows:
        details = _json(row.type_details, {}) or {}
        parts = [row.title or "", row.original_title or "", *names.get(row.id, [])]
        parts += [str(details[k]) for k in SEARCHED_DETAILS if details.get(k)]
        parts += [row.notes or "", row.isbn13 or "", row.ean13 or "", row.asin or ""]
        classes = {RESOLUTION_OF.get(" ".join(str(r).casefold().split()))
                   for r in [details.get("resolution"), *variants.get(row.id, [])] if r} - {None}
        updates.append({
            "mid": row.id,
            "search_text": " \n".join(p.strip() for p in parts if p and p.strip()).casefold(),
            "formats_key": _formats_key(_json(row.formats, [])),
            "platform": str(details.get("platform") or "").strip()[:100] or None,
            "resolution": max(classes, key=RESOLUTIONS.index) if classes else None,
        })
    if updates:
        bind.execute(media.update().where(media.c.id == sa.bindparam("mid")).values(
            search_text=sa.bindparam("search_text"), formats_key=sa.bindparam("formats_key"),
            platform=sa.bindparam("platform"), resolution=sa.bindparam("resolution")), updates)


def upgrade():
    with op.batch_alter_table('media', schema=None) as batch_op:
        batch_op.add_column(sa.Column('formats_key', sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column('platform', sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column('resolution', sa.String(length=8), nullable=True))
        batch_op.create_index('ix_media_formats', ['library_id', 'formats_key', 'id'], unique=False)
        batch_op.create_index('ix_media_library', ['library_id', 'id'], unique=False)
        batch_op.create_index('ix_media_location', ['library_id', 'location', 'id'], unique=False)
        batch_op.create_index('ix_media_platform', ['library_id', 'platform', 'id'], unique=False)
        batch_op.create_index('ix_media_rating', ['library_id', 'rating', 'id'], unique=False)
        batch_op.create_index('ix_media_resolution', ['library_id', 'resolution', 'id'], unique=False)
        batch_op.create_index('ix_media_signed', ['library_id', 'signed_by', 'id'], unique=False)
        batch_op.create_index('ix_media_type_year', ['library_id', 'media_type', 'year', 'id', 'resolution', 'rating'],
                              unique=False)

    bind = op.get_bind()
    _backfill(bind)
    if bind.dialect.name == "sqlite":
        for statement in SQLITE_FTS:
            op.execute(statement)
        op.execute("INSERT INTO media_fts(media_fts) VALUES ('rebuild')")
    elif bind.dialect.name == "postgresql":
        for statement in POSTGRES_TRGM:
            op.execute(statement)


def downgrade():
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        for statement in SQLITE_FTS_DROP:
            op.execute(statement)
    elif bind.dialect.name == "postgresql":
        for statement in POSTGRES_TRGM_DROP:
            op.execute(statement)

    with op.batch_alter_table('media', schema=None) as batch_op:
        batch_op.drop_index('ix_media_type_year')
        batch_op.drop_index('ix_media_signed')
        batch_op.drop_index('ix_media_resolution')
        batch_op.drop_index('ix_media_rating')
        batch_op.drop_index('ix_media_platform')
        batch_op.drop_index('ix_media_location')
        batch_op.drop_index('ix_media_library')
        batch_op.drop_index('ix_media_formats')
        batch_op.drop_column('resolution')
        batch_op.drop_column('platform')
        batch_op.drop_column('formats_key')
