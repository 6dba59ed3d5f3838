"""llm configuration tables

Revision ID: 0001
Revises: 
Create Date: 2026-11-25 08:46:29.344873

"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    
    op.create_table('llm_providers',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('api_format', sa.String(length=32), server_default='openai', nullable=False),
    sa.Column('base_url', sa.String(length=2000), nullable=False),
    sa.Column('api_prefix', sa.String(length=200), nullable=False),
    sa.Column('api_key', sa.Text(), nullable=True),
    sa.Column('headers', sa.JSON().with_variant(postgresql.JSONB(), 'postgresql'), server_default='{}', nullable=False),
    sa.Column('llm_options_defaults', sa.JSON().with_variant(postgresql.JSONB(), 'postgresql'), server_default='{}', nullable=False),
    sa.Column('message_overhead_tokens', sa.Integer(), server_default='0', nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("api_format IN ('openai')", name=op.f('ck_llm_providers_api_format_supported')),
    sa.CheckConstraint('message_overhead_tokens >= 0', name=op.f('ck_llm_providers_message_overhead_tokens_non_negative')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_llm_providers')),
    sa.UniqueConstraint('name', name=op.f('uq_llm_providers_name'))
    )
    op.create_table('llm_models',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('llm_provider_id', sa.Integer(), nullable=False),
    sa.Column('model', sa.String(length=300), nullable=False),
    sa.Column('name', sa.String(length=300), nullable=False),
    sa.Column('key', sa.String(length=200), nullable=True),
    sa.Column('enabled', sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.Column('comment', sa.Text(), nullable=True),
    sa.Column('supports_tool_calling', sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.Column('supports_response_format_json_object', sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.Column('supports_response_format_json_schema', sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.Column('supports_streaming', sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.Column('supports_parallel_tool_calls', sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.Column('context_window_tokens', sa.Integer(), server_default='0', nullable=False),
    sa.Column('message_overhead_tokens', sa.Integer(), nullable=True),
    sa.Column('connection_tested_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('context_window_tokens >= 0', name=op.f('ck_llm_models_context_window_tokens_non_negative')),
    sa.CheckConstraint('message_overhead_tokens IS NULL OR message_overhead_tokens >= 0', name=op.f('ck_llm_models_message_overhead_tokens_non_negative')),
    sa.ForeignKeyConstraint(['llm_provider_id'], ['llm_providers.id'], name=op.f('fk_llm_models_llm_provider_id_llm_providers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_llm_models')),
    sa.UniqueConstraint('key', name=op.f('uq_llm_models_key')),
    sa.UniqueConstraint('llm_provider_id', 'model', name=op.f('uq_llm_models_llm_provider_id_model'))
    )
    with op.batch_alter_table('llm_models', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_llm_models_llm_provider_id'), ['llm_provider_id'], unique=False)

    op.create_table('llm_presets',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('llm_model_id', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=200), nullable=True),
    sa.Column('name', sa.String(length=300), nullable=False),
    sa.Column('comment', sa.Text(), nullable=True),
    sa.Column('llm_options_overrides', sa.JSON().with_variant(postgresql.JSONB(), 'postgresql'), server_default='{}', nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['llm_model_id'], ['llm_models.id'], name=op.f('fk_llm_presets_llm_model_id_llm_models'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_llm_presets'))
    )
    with op.batch_alter_table('llm_presets', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_llm_presets_llm_model_id'), ['llm_model_id'], unique=False)
        batch_op.create_index('uq_llm_presets_llm_model_id_key', ['llm_model_id', 'key'], unique=True, sqlite_where=sa.text('key IS NOT NULL'), postgresql_where=sa.text('key IS NOT NULL'))

    


def downgrade():
    
    with op.batch_alter_table('llm_presets', schema=None) as batch_op:
        batch_op.drop_index('uq_llm_presets_llm_model_id_key', sqlite_where=sa.text('key IS NOT NULL'), postgresql_where=sa.text('key IS NOT NULL'))
        batch_op.drop_index(batch_op.f('ix_llm_presets_llm_model_id'))

    op.drop_table('llm_presets')
    with op.batch_alter_table('llm_models', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_llm_models_llm_provider_id'))

    op.drop_table('llm_models')
    op.drop_table('llm_providers')
    
