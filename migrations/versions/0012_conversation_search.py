"""conversation search: full-text indexes over conversation titles and message texts

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-01 12:40:00

Written after 0010 (the newest revision on this branch); other branches add revisions of
their own, and the merge re-chains this one after the last of them.

SQLite: two FTS5 tables with external content (`fts_conversation_titles` over
conversations.title, `fts_chat_messages` over chat_messages.content), so the text is stored
once; triggers keep them in step with every insert, update and delete, whatever writes the
row (the ORM, a reply's checkpoint UPDATE, a cascade). A later batch migration that rebuilds
`conversations` or `chat_messages` drops these triggers with the old table and must create
them again (`create_sqlite_search()` below, then a 'rebuild').

PostgreSQL: GIN indexes on `to_tsvector('simple', …)` of the same two columns. The search
query uses exactly these expressions, so PostgreSQL answers from the index instead of
parsing every message of the user on each keystroke. 'simple' (no stemming, no stop words)
because conversations are in any language and the search looks for the words as typed.

The names all start with `fts_`: the schema comparison leaves them out, as the models do not
describe them (see `webapp.models.chat.described_by_models`).
"""
from alembic import op

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None

# (FTS table, content table, column)
SQLITE_INDEXES = (
    ('fts_conversation_titles', 'conversations', 'title'),
    ('fts_chat_messages', 'chat_messages', 'content'),
)
POSTGRES_INDEXES = (
    ('fts_conversations_title', 'conversations', 'title'),
    ('fts_chat_messages_content', 'chat_messages', 'content'),
)


def upgrade():
    if op.get_bind().dialect.name == 'postgresql':
        for name, table, column in POSTGRES_INDEXES:
            op.execute(
                f"CREATE INDEX {name} ON {table} USING gin (to_tsvector('simple', {column}))"
            )
        return
    create_sqlite_search()
    for fts, _table, _column in SQLITE_INDEXES:
        op.execute(f"INSERT INTO {fts}({fts}) VALUES ('rebuild')")


def create_sqlite_search():
    for fts, table, column in SQLITE_INDEXES:
        op.execute(
            f"CREATE VIRTUAL TABLE {fts} USING fts5({column}, content='{table}', "
            "content_rowid='id')"
        )
        # External content: FTS5 needs the old text to take a row's words out again.
        remove = (
            f"INSERT INTO {fts}({fts}, rowid, {column}) VALUES ('delete', old.id, old.{column});"
        )
        add = f"INSERT INTO {fts}(rowid, {column}) VALUES (new.id, new.{column});"
        op.execute(f"CREATE TRIGGER {fts}_insert AFTER INSERT ON {table} BEGIN {add} END")
        op.execute(f"CREATE TRIGGER {fts}_delete AFTER DELETE ON {table} BEGIN {remove} END")
        op.execute(
            f"CREATE TRIGGER {fts}_update AFTER UPDATE OF {column} ON {table} "
            f"BEGIN {remove} {add} END"
        )


def downgrade():
    if op.get_bind().dialect.name == 'postgresql':
        for name, _table, _column in POSTGRES_INDEXES:
            op.execute(f"DROP INDEX {name}")
        return
    for fts, _table, _column in SQLITE_INDEXES:
        for event in ('insert', 'delete', 'update'):
            op.execute(f"DROP TRIGGER {fts}_{event}")
        op.execute(f"DROP TABLE {fts}")
