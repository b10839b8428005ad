"""cover thumbnails; cover downloads

`media.thumb_key`: the cover made small for the library grid (a job makes it after each new cover).
`cover_downloads`: covers to fetch from an import's or a provider's address into storage, one row per item, tried
again with backoff (attempts, last error, next attempt) until the cover arrives or the download gives up.

Plain ADD COLUMN / CREATE TABLE: `media` is not rebuilt, so its SQLite search triggers are untouched. The downgrade
drops the column with SQLite's own ALTER TABLE … DROP COLUMN (3.35+) for the same reason, not with a batch rebuild.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04 10:00:00
"""

from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade():
    op.add_column('media', sa.Column('thumb_key', sa.String(length=255), nullable=True))
    op.create_table(
        'cover_downloads',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('media_id', sa.Integer(), nullable=False),
        sa.Column('url', sa.Text(), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('last_error', sa.String(length=300), nullable=True),
        sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("status IN ('pending', 'failed')", name=op.f('ck_cover_downloads_status')),
        sa.ForeignKeyConstraint(['media_id'], ['media.id'], name=op.f('fk_cover_downloads_media_id_media'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_cover_downloads')),
        sa.UniqueConstraint('media_id', name=op.f('uq_cover_downloads_media_id')),
    )
    op.create_index('ix_cover_downloads_due', 'cover_downloads', ['status', 'next_attempt_at', 'id'])


def downgrade():
    op.drop_index('ix_cover_downloads_due', table_name='cover_downloads')
    op.drop_table('cover_downloads')
    op.drop_column('media', 'thumb_key')
