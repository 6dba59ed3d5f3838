"""config_changes: a history of every change to providers, models and presets

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01 11:00:00

One row per created, updated or deleted provider, model or preset: who (a user's email or a
command name), when, and the field-level before → after (secrets only as "changed"). Another
branch adds 0008; the merge re-chains this one after it.
"""
from alembic import op
import sqlalchemy as sa

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'config_changes',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('changed_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('actor', sa.String(length=320), nullable=False),
        sa.Column('action', sa.String(length=16), nullable=False),
        sa.Column('entity_type', sa.String(length=16), nullable=False),
        sa.Column('entity_id', sa.Integer(), nullable=False),
        sa.Column('entity_label', sa.String(length=1000), nullable=False),
        sa.Column('changes', sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_config_changes')),
    )
    with op.batch_alter_table('config_changes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_config_changes_actor'), ['actor'], unique=False)
        batch_op.create_index(
            batch_op.f('ix_config_changes_changed_at'), ['changed_at'], unique=False
        )
        batch_op.create_index('ix_config_changes_entity', ['entity_type', 'entity_id'], unique=False)


def downgrade():
    with op.batch_alter_table('config_changes', schema=None) as batch_op:
        batch_op.drop_index('ix_config_changes_entity')
        batch_op.drop_index(batch_op.f('ix_config_changes_changed_at'))
        batch_op.drop_index(batch_op.f('ix_config_changes_actor'))
    op.drop_table('config_changes')
