"""optimistic locking: a version column on providers, models and presets

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 10:10:00

Every row starts at version 1 (existing rows too, through the server default); the app
bumps it on every change and refuses an UPDATE or DELETE based on an older version.
"""
from alembic import op
import sqlalchemy as sa

# revision identifiers, used by Alembic.
revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

TABLES = ('llm_providers', 'llm_models', 'llm_presets')


def upgrade():
    for table in TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column('version', sa.Integer(), server_default='1', nullable=False))


def downgrade():
    for table in reversed(TABLES):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column('version')
