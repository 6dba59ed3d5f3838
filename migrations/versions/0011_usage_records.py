"""usage_records: one row per gateway call or chat reply

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01 12:30:00

Who (an app key or a user), which model and preset, the status, the tokens (estimated when
the upstream sent none) and the timings of every request served. A deleted user or model
leaves its rows with NULL there (ON DELETE SET NULL); app_key_id has no foreign key: keys
are revoked, never deleted, and a usage batch must never be refused over one.
"""
from alembic import op
import sqlalchemy as sa

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'usage_records',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('source', sa.String(length=16), nullable=False),
        sa.Column('app_key_id', sa.Integer(), nullable=True),
        sa.Column('user_id', sa.Integer(), nullable=True),
        sa.Column('llm_model_id', sa.Integer(), nullable=True),
        sa.Column('model_key', sa.String(length=300), nullable=True),
        sa.Column('preset_key', sa.String(length=300), nullable=True),
        sa.Column('status', sa.Integer(), nullable=False),
        sa.Column('error_code', sa.String(length=64), nullable=True),
        sa.Column('prompt_tokens', sa.Integer(), nullable=True),
        sa.Column('completion_tokens', sa.Integer(), nullable=True),
        sa.Column('estimated', sa.Boolean(), nullable=False),
        sa.Column('ttft_ms', sa.Float(), nullable=True),
        sa.Column('total_ms', sa.Float(), nullable=False),
        sa.Column('stream', sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(['llm_model_id'], ['llm_models.id'], name=op.f('fk_usage_records_llm_model_id_llm_models'), ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_usage_records_user_id_users'), ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_usage_records')),
    )
    with op.batch_alter_table('usage_records', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_usage_records_app_key_id'), ['app_key_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_usage_records_created_at'), ['created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_usage_records_llm_model_id'), ['llm_model_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_usage_records_user_id'), ['user_id'], unique=False)


def downgrade():
    with op.batch_alter_table('usage_records', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_usage_records_user_id'))
        batch_op.drop_index(batch_op.f('ix_usage_records_llm_model_id'))
        batch_op.drop_index(batch_op.f('ix_usage_records_created_at'))
        batch_op.drop_index(batch_op.f('ix_usage_records_app_key_id'))
    op.drop_table('usage_records')
