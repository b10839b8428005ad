"""import rows keep their item's id: no foreign key from import_rows.media_id to media

An import row is the record of what happened to one source row ("created item 345"). The foreign key rewrote that
record whenever the catalog changed: deleting item 345 set the row's item to NULL (ON DELETE SET NULL), and a merge
did the same to the rows of the item merged away, so the audit lost which item a row made. Without it the row keeps
the id: the job page marks an item deleted since, and a merge re-points the rows at the survivor
(services.merge). It also spares each imported row a lookup and lock of its item when its outcome is written.

PostgreSQL drops the constraint in place. SQLite cannot, so the table is rebuilt (import_rows has no triggers; its
indexes are made again with it, the partial index of 0010 with its WHERE clause). The downgrade blanks the ids of items
that are gone, then adds the constraint back.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-16 10:00:00
"""

from alembic import op

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None

FK = 'fk_import_rows_media_id_media'


def upgrade():
    if op.get_bind().dialect.name == 'postgresql':
        op.drop_constraint(FK, 'import_rows', type_='foreignkey')
        return
    with op.batch_alter_table('import_rows', recreate='always') as batch_op:
        batch_op.drop_constraint(FK, type_='foreignkey')


def downgrade():
    op.execute('UPDATE import_rows SET media_id = NULL WHERE media_id IS NOT NULL '
               'AND NOT EXISTS (SELECT 1 FROM media WHERE media.id = import_rows.media_id)')
    if op.get_bind().dialect.name == 'postgresql':
        op.create_foreign_key(FK, 'import_rows', 'media', ['media_id'], ['id'], ondelete='SET NULL')
        return
    with op.batch_alter_table('import_rows', recreate='always') as batch_op:
        batch_op.create_foreign_key(FK, 'media', ['media_id'], ['id'], ondelete='SET NULL')
