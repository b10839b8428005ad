"""sync job staging mark; longer import row match modes

`sync_jobs.staged_at`: set when every source row of an import is in import_rows, so a re-run of the staging
step (after a crash) knows whether to read the file again. `import_rows.match_mode` grows to 40 characters
("identifier_no_match_fallback_title").

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25 22:00:00
"""

from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade():
    # A plain ADD COLUMN on both databases: no table rebuild (media's search triggers are untouched).
    op.add_column('sync_jobs', sa.Column('staged_at', sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table('import_rows') as batch_op:
        batch_op.alter_column('match_mode', existing_type=sa.String(length=32), type_=sa.String(length=40),
                              existing_nullable=True)


def downgrade():
    with op.batch_alter_table('import_rows') as batch_op:
        batch_op.alter_column('match_mode', existing_type=sa.String(length=40), type_=sa.String(length=32),
                              existing_nullable=True)
    with op.batch_alter_table('sync_jobs') as batch_op:
        batch_op.drop_column('staged_at')
