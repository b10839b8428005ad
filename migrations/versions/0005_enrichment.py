"""enrichment reviews; what enrichment did for each import row

`enrichment_reviews`: provider matches the enrichment service would not apply on its own (below
ENRICH_CONFIDENCE_THRESHOLD or ambiguous), waiting in Library → Review for a member's decision.
`import_rows.enrichment`: what enrichment did for the row's item ("matched by ISBN (openlibrary)", "review",
"failed (openlibrary: unavailable) — will retry"...).

Both are plain CREATE TABLE / ADD COLUMN: `media` is not rebuilt, so its SQLite search triggers are untouched.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27 10:00:00
"""

from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'enrichment_reviews',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('media_id', sa.Integer(), nullable=False),
        sa.Column('job_id', sa.Integer(), nullable=True),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('candidates', sa.JSON(), nullable=False),
        sa.Column('chosen_index', sa.Integer(), nullable=True),
        sa.Column('match_mode', sa.String(length=40), nullable=True),
        sa.Column('reason', sa.String(length=300), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('decided_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('decided_by', sa.Integer(), nullable=True),
        sa.CheckConstraint("status IN ('pending', 'accepted', 'kept_manual', 'superseded')",
                           name=op.f('ck_enrichment_reviews_status')),
        sa.ForeignKeyConstraint(['media_id'], ['media.id'], name=op.f('fk_enrichment_reviews_media_id_media'),
                                ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['job_id'], ['sync_jobs.id'], name=op.f('fk_enrichment_reviews_job_id_sync_jobs'),
                                ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['decided_by'], ['users.id'], name=op.f('fk_enrichment_reviews_decided_by_users'),
                                ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_enrichment_reviews')),
    )
    op.create_index('ix_enrichment_reviews_status', 'enrichment_reviews', ['status', 'created_at', 'id'])
    op.create_index('ix_enrichment_reviews_media', 'enrichment_reviews', ['media_id', 'status'])
    op.create_index(op.f('ix_enrichment_reviews_job_id'), 'enrichment_reviews', ['job_id'])
    op.add_column('import_rows', sa.Column('enrichment', sa.String(length=300), nullable=True))


def downgrade():
    with op.batch_alter_table('import_rows') as batch_op:
        batch_op.drop_column('enrichment')
    op.drop_index(op.f('ix_enrichment_reviews_job_id'), table_name='enrichment_reviews')
    op.drop_index('ix_enrichment_reviews_media', table_name='enrichment_reviews')
    op.drop_index('ix_enrichment_reviews_status', table_name='enrichment_reviews')
    op.drop_table('enrichment_reviews')
