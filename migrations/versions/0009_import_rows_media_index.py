"""import rows by their item: an index on import_rows.media_id

Deleting or merging an item sets `import_rows.media_id` to NULL on the rows that made it (ON DELETE SET NULL).
Without an index on that column every deleted item read the whole of import_rows, which grows by a row per
imported line: a bulk delete of a few hundred items in a catalog of large imports took seconds.

A plain CREATE INDEX: no table is rebuilt.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-12 10:00:00
"""

from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade():
    op.create_index('ix_import_rows_media_id', 'import_rows', ['media_id'])


def downgrade():
    op.drop_index('ix_import_rows_media_id', table_name='import_rows')
