"""indexes of set values: identifier, filter and import-row indexes hold only the rows that have a value

Nine media indexes (isbn13, ean13, asin, plex_guid, (tmdb_media_type, tmdb_id), and the platform, resolution,
location and signed-by filters) and import_rows.media_id are only ever asked for a value: a lookup by identifier, a
filter, an item's import rows. Most items leave most of those columns empty, and every row they held for an empty
value cost an index entry (and its share of the write-ahead log) each time an item was written: an import of 100,000
items wrote about 400,000 such entries, and its staged rows another 100,000. Each index now holds the rows whose
column is set (`... WHERE column IS NOT NULL`); PostgreSQL and SQLite both use such an index for `column = ...`,
`IN (...)` and `> ...`. The names, columns and queries stay the same.

Each index is made again from its table (a plain CREATE INDEX: the table is not rebuilt, and writes to it wait for
each index to be made).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-14 10:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None

# name -> (table, columns, the column whose value the index needs)
INDEXES = {
    'ix_media_isbn13': ('media', ['isbn13'], 'isbn13'),
    'ix_media_ean13': ('media', ['ean13'], 'ean13'),
    'ix_media_asin': ('media', ['asin'], 'asin'),
    'ix_media_plex_guid': ('media', ['plex_guid'], 'plex_guid'),
    'ix_media_tmdb': ('media', ['tmdb_media_type', 'tmdb_id'], 'tmdb_id'),
    'ix_media_platform': ('media', ['library_id', 'platform', 'id'], 'platform'),
    'ix_media_resolution': ('media', ['library_id', 'resolution', 'id'], 'resolution'),
    'ix_media_location': ('media', ['library_id', 'location', 'id'], 'location'),
    'ix_media_signed': ('media', ['library_id', 'signed_by', 'id'], 'signed_by'),
    'ix_import_rows_media_id': ('import_rows', ['media_id'], 'media_id'),
}


def upgrade():
    for name, (table, columns, column) in INDEXES.items():
        where = sa.text(f'{column} IS NOT NULL')
        op.drop_index(name, table_name=table)
        op.create_index(name, table, columns, postgresql_where=where, sqlite_where=where)


def downgrade():
    for name, (table, columns, _column) in INDEXES.items():
        op.drop_index(name, table_name=table)
        op.create_index(name, table, columns)
