"""alternative replies: the user message a reply answers, and which answer is shown

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-01 16:00:00

chat_messages.reply_to_id: the user message an assistant message answers (ON DELETE CASCADE:
the answers go with their question). Regenerating or continuing a reply adds another answer
to the same user message; chat_messages.is_active marks the one the page shows and the next
turn's history uses. Existing replies answer the user message just before them, and are all
active (there was one answer per question).

SQLite cannot add a foreign key to a table in place, so there the table is rebuilt (batch);
the rebuild drops the search triggers of 0012 with the old table, and they are created again.
Nothing references chat_messages but this new column, so dropping the old table (ON DELETE
actions run) takes nothing else with it.
"""
from alembic import op
import sqlalchemy as sa

revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None

FOREIGN_KEY = 'fk_chat_messages_reply_to_id_chat_messages'
INDEX = 'ix_chat_messages_reply_to_id'


def upgrade():
    with op.batch_alter_table('chat_messages', schema=None) as batch_op:
        batch_op.add_column(sa.Column('reply_to_id', sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column('is_active', sa.Boolean(), server_default=sa.true(), nullable=False)
        )
        batch_op.create_index(INDEX, ['reply_to_id'], unique=False)
        batch_op.create_foreign_key(
            FOREIGN_KEY, 'chat_messages', ['reply_to_id'], ['id'], ondelete='CASCADE'
        )
    _restore_sqlite_search()
    op.execute(
        "UPDATE chat_messages SET reply_to_id = ("
        " SELECT max(question.id) FROM chat_messages AS question"
        " WHERE question.conversation_id = chat_messages.conversation_id"
        " AND question.role = 'user' AND question.id < chat_messages.id"
        ") WHERE role = 'assistant'"
    )


def downgrade():
    # The older code shows every message: keep only the answers that were shown.
    op.execute("DELETE FROM chat_messages WHERE NOT is_active")
    # Dropping the old table (SQLite's rebuild) deletes its rows first, and a cascade from a
    # row to the same table being dropped fails ("table is locked"): unlink them first.
    op.execute("UPDATE chat_messages SET reply_to_id = NULL")
    with op.batch_alter_table('chat_messages', schema=None) as batch_op:
        batch_op.drop_constraint(FOREIGN_KEY, type_='foreignkey')
        batch_op.drop_index(INDEX)
        batch_op.drop_column('is_active')
        batch_op.drop_column('reply_to_id')
    _restore_sqlite_search()


def _restore_sqlite_search():
    """The message search triggers as 0012 created them (copied: migrations are frozen),
    and the index rebuilt from the table."""
    if op.get_bind().dialect.name != 'sqlite':
        return
    remove = (
        "INSERT INTO fts_chat_messages(fts_chat_messages, rowid, content) "
        "VALUES ('delete', old.id, old.content);"
    )
    add = "INSERT INTO fts_chat_messages(rowid, content) VALUES (new.id, new.content);"
    op.execute(
        f"CREATE TRIGGER fts_chat_messages_insert AFTER INSERT ON chat_messages BEGIN {add} END"
    )
    op.execute(
        f"CREATE TRIGGER fts_chat_messages_delete AFTER DELETE ON chat_messages BEGIN {remove} END"
    )
    op.execute(
        "CREATE TRIGGER fts_chat_messages_update AFTER UPDATE OF content ON chat_messages "
        f"BEGIN {remove} {add} END"
    )
    op.execute("INSERT INTO fts_chat_messages(fts_chat_messages) VALUES ('rebuild')")
