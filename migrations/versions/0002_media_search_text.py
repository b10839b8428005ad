"""media search text

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 18:46:47.628996
"""

from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('media', schema=None) as batch_op:
        batch_op.add_column(sa.Column('search_text', sa.Text(), server_default='', nullable=False))



def downgrade():
    with op.batch_alter_table('media', schema=None) as batch_op:
        batch_op.drop_column('search_text')

