"""a reply's model and preset as foreign keys on chat_messages

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 10:30:00

The model and preset a reply was asked of lived in chat_messages.details
({"llm_model_id": …, "llm_preset_id": …}); they become columns with ON DELETE SET NULL, so
deleting a model leaves its old replies in place with no model. Ids that point at rows
deleted since are left NULL.
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

MOVED_KEYS = ("llm_model_id", "llm_preset_id")
JSON = sa.JSON().with_variant(postgresql.JSONB(), 'postgresql')
messages = sa.table(
    'chat_messages',
    sa.column('id', sa.Integer()),
    sa.column('role', sa.String()),
    sa.column('details', JSON),
    sa.column('llm_model_id', sa.Integer()),
    sa.column('llm_preset_id', sa.Integer()),
)


def upgrade():
    with op.batch_alter_table('chat_messages', schema=None) as batch_op:
        batch_op.add_column(sa.Column('llm_model_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('llm_preset_id', sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f('ix_chat_messages_llm_model_id'), ['llm_model_id'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_chat_messages_llm_model_id_llm_models'), 'llm_models', ['llm_model_id'], ['id'], ondelete='SET NULL')
        batch_op.create_foreign_key(batch_op.f('fk_chat_messages_llm_preset_id_llm_presets'), 'llm_presets', ['llm_preset_id'], ['id'], ondelete='SET NULL')

    connection = op.get_bind()
    existing = {
        'llm_model_id': set(connection.scalars(sa.text('SELECT id FROM llm_models'))),
        'llm_preset_id': set(connection.scalars(sa.text('SELECT id FROM llm_presets'))),
    }
    rows = connection.execute(
        sa.select(messages.c.id, messages.c.details).where(messages.c.role == 'assistant')
    ).all()
    for message_id, details in rows:
        details = dict(details or {})
        values = {key: _existing_id(details.pop(key, None), existing[key]) for key in MOVED_KEYS}
        connection.execute(
            messages.update().where(messages.c.id == message_id).values(details=details, **values)
        )


def _existing_id(value, ids):
    return value if isinstance(value, int) and value in ids else None


def downgrade():
    connection = op.get_bind()
    rows = connection.execute(
        sa.select(messages.c.id, messages.c.details, messages.c.llm_model_id, messages.c.llm_preset_id)
        .where(messages.c.role == 'assistant')
    ).all()
    for message_id, details, model_id, preset_id in rows:
        details = {**(details or {}), 'llm_model_id': model_id, 'llm_preset_id': preset_id}
        connection.execute(messages.update().where(messages.c.id == message_id).values(details=details))

    with op.batch_alter_table('chat_messages', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_chat_messages_llm_preset_id_llm_presets'), type_='foreignkey')
        batch_op.drop_constraint(batch_op.f('fk_chat_messages_llm_model_id_llm_models'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_chat_messages_llm_model_id'))
        batch_op.drop_column('llm_preset_id')
        batch_op.drop_column('llm_model_id')
